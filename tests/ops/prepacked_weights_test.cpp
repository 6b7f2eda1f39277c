// gemm::prepacked_weights: products with a parameter's W packed once give the bits of ordinary products, repack
// when W changes, leave non-parameters alone, keep gradients, refuse optimizer steps, and free the copies.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <random>
#include <stdexcept>
#include <vector>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/backend/prepacked_weights.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/optim/sgd.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
std::vector<float> values_of(const var<float>& v) { return {v.values().begin(), v.values().end()}; }
// Whether products here take the prepacked path at all (our AVX-512 kernel is the default's choice).
bool prepacking_here() { return gemm::fastest::takes_packed_operands(); }
}  // namespace

TEST_CASE("prepacked weights: the same bits as ordinary products, any shape, tiles or one call") {
  struct cfg {
    index_t M, N, K;
    bool tb;
  };
  const cfg cases[] = {{128, 768, 256, true}, {128, 256, 1024, true}, {5, 33, 1000, true},
                       {300, 70, 65, false},  {1, 1, 1, true},       {600, 1030, 40, false}};
  std::mt19937 rng(3);
  for (const auto& c : cases) {
    CAPTURE(c.M);
    CAPTURE(c.N);
    CAPTURE(c.K);
    CAPTURE(c.tb);
    tape::current().reset();
    parameter<float> x("x", {c.M, c.K}), w("w", c.tb ? hybrid::shape{c.N, c.K} : hybrid::shape{c.K, c.N});
    fill_uniform(x.value(), rng);
    fill_uniform(w.value(), rng);
    no_grad ng;
    const auto plain_tbb = values_of(matmul<gemm::fastest, exec::tbb>(x.use(), w.use(), {.b = c.tb}));
    const auto plain_serial = values_of(matmul<gemm::fastest, exec::serial>(x.use(), w.use(), {.b = c.tb}));
    {
      gemm::prepacked_weights scope;
      CHECK(gemm::prepacked_weights::active());
      CHECK(values_of(matmul<gemm::fastest, exec::tbb>(x.use(), w.use(), {.b = c.tb})) == plain_tbb);
      CHECK(values_of(matmul<gemm::fastest, exec::serial>(x.use(), w.use(), {.b = c.tb})) == plain_serial);
      CHECK(gemm::prepacked_weights::size() == (prepacking_here() ? 1u : 0u));  // one copy, reused
    }
    CHECK_FALSE(gemm::prepacked_weights::active());
    CHECK(gemm::prepacked_weights::size() == 0);  // freed with the last scope
  }
}

TEST_CASE("prepacked weights: a changed weight is packed again; only parameters are packed") {
  tape::current().reset();
  std::mt19937 rng(4);
  parameter<float> x("x", {64, 96}), w("w", {80, 96});
  fill_uniform(x.value(), rng);
  fill_uniform(w.value(), rng);
  no_grad ng;
  gemm::prepacked_weights scope;
  const auto before = values_of(matmul(x.use(), w.use(), {.b = true}));
  for (float& v : w.value()) v = v * 0.5f + 0.25f;  // the whole weight changes (a checkpoint loaded, say)
  const auto after = values_of(matmul(x.use(), w.use(), {.b = true}));
  CHECK(after != before);
  {
    gemm::prepacked_weights nested;  // scopes nest; the copies live until the outer one ends
  }
  CHECK(gemm::prepacked_weights::active());
  const auto again = values_of(matmul(x.use(), w.use(), {.b = true}));
  CHECK(again == after);
  // A right operand that is not a parameter's value (here a constant, elsewhere an activation whose buffer is
  // reused call after call) is never cached.
  const std::size_t held = gemm::prepacked_weights::size();
  tensor<float> other({96, 80});
  fill_uniform(other, rng);
  (void)matmul(x.use(), constant(other));
  CHECK(gemm::prepacked_weights::size() == held);
}

TEST_CASE("prepacked weights: gradients unchanged, optimizer steps refused") {
  auto run = [](bool packed) {
    tape::current().reset();
    std::mt19937 rng(5);
    parameter<float> x("x", {40, 64}), w("w", {48, 64});
    fill_uniform(x.value(), rng);
    fill_uniform(w.value(), rng);
    std::optional<gemm::prepacked_weights> scope;
    if (packed) scope.emplace();
    var<float> y = matmul(x.use(), w.use(), {.b = true});
    for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = static_cast<float>(std::sin(0.3 * double(i)));
    tape::current().run_backward();
    std::vector<float> out = values_of(y);
    out.insert(out.end(), x.grad().begin(), x.grad().end());
    out.insert(out.end(), w.grad().begin(), w.grad().end());
    return out;
  };
  CHECK(run(true) == run(false));

  tape::current().reset();
  parameter<float> w("w", {4, 4});
  optim::sgd<float> opt({&w}, {.lr = 0.1});
  {
    gemm::prepacked_weights scope;
    CHECK_THROWS_AS(opt.step(), std::logic_error);
  }
  CHECK_NOTHROW(opt.step());
}

}  // namespace HYBRID_TEST_UNIT
