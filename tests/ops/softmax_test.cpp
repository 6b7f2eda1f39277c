// softmax / log_softmax: values against a naive reference, gradients with and without masks
// (-1e4 and -inf, fully masked rows), stability, mask broadcasting, serial vs tbb, errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/softmax.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::expect_gradients;

namespace {
const double inf = std::numeric_limits<double>::infinity();

// Inputs in [-2, 2): logits spread enough to exercise saturation.
parameter<double> random_param(const char* name, hybrid::shape s, std::mt19937& rng, double lo = -2, double hi = 2) {
  return test_util::random_param(name, s, rng, lo, hi);
}
// A 0 / `masked` padding mask [B, 1, 1, T]: batch b keeps its first keep[b] positions.
tensor<double> padding_mask(index_t B, index_t T, std::vector<index_t> keep, double masked) {
  tensor<double> m({B, 1, 1, T});
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) m(b, 0, 0, t) = t < keep[std::size_t(b)] ? 0.0 : masked;
  return m;
}
// Naive softmax of each row of x + m (m given per element of x by `mask_at`).
template <class M>
std::vector<double> naive_softmax(const tensor<double>& x, M&& mask_at, bool log) {
  const index_t cols = x.shape().cols(), rows = x.shape().rows();
  std::vector<double> y(std::size_t(x.numel()));
  for (index_t r = 0; r < rows; ++r) {
    double top = -inf, total = 0;
    for (index_t c = 0; c < cols; ++c) top = std::max(top, x[r * cols + c] + mask_at(r, c));
    for (index_t c = 0; c < cols; ++c) total += std::exp(x[r * cols + c] + mask_at(r, c) - top);
    for (index_t c = 0; c < cols; ++c) {
      const double z = x[r * cols + c] + mask_at(r, c) - top;
      y[std::size_t(r * cols + c)] = log ? z - std::log(total) : std::exp(z) / total;
    }
  }
  return y;
}
}  // namespace

TEST_CASE("softmax and log_softmax match a naive reference") {
  tape::current().reset();
  std::mt19937 rng(1);
  for (hybrid::shape s : {hybrid::shape{13}, hybrid::shape{4, 3}, hybrid::shape{2, 3, 17}, hybrid::shape{3, 1}}) {
    CAPTURE(s.str());
    auto x = random_param("x", s, rng, -5, 5);
    var<double> y = softmax(x.use()), ly = log_softmax(x.use());
    REQUIRE(y.shape() == s);
    const auto ref = naive_softmax(x.value(), [](index_t, index_t) { return 0.0; }, false);
    const auto lref = naive_softmax(x.value(), [](index_t, index_t) { return 0.0; }, true);
    for (index_t i = 0; i < x.numel(); ++i) {
      CHECK(y[i] == doctest::Approx(ref[std::size_t(i)]).epsilon(1e-13));
      CHECK(ly[i] == doctest::Approx(lref[std::size_t(i)]).epsilon(1e-13));
    }
  }
  // Stable for large inputs, in float too.
  parameter<float> big("big", tensor<float>({3}, {1000.f, 1001.f, 1002.f}));
  var<float> b = softmax(big.use()), lb = log_softmax(big.use());
  const double e0 = std::exp(-2.0), e1 = std::exp(-1.0), total = e0 + e1 + 1;
  CHECK(b[0] == doctest::Approx(e0 / total).epsilon(1e-6));
  CHECK(b[2] == doctest::Approx(1 / total).epsilon(1e-6));
  CHECK(lb[0] == doctest::Approx(-2 - std::log(total)).epsilon(1e-6));
}

TEST_CASE("masks broadcast like BERT's extended attention mask") {
  tape::current().reset();
  std::mt19937 rng(2);
  auto x = random_param("x", {2, 3, 4, 5}, rng);
  const tensor<double> pad = padding_mask(2, 5, {5, 3}, -1e4);
  tensor<double> causal({4, 5});
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 5; ++j) causal(i, j) = j <= i + 1 ? 0.0 : -inf;
  tensor<double> full({2, 3, 4, 5});
  fill_uniform(full, rng, -3, 0);
  tensor<double> per_row({2, 3, 4, 1});
  fill_uniform(per_row, rng, -3, 3);
  for (int which = 0; which < 4; ++which) {
    CAPTURE(which);
    const tensor<double>& m = which == 0 ? pad : which == 1 ? causal : which == 2 ? full : per_row;
    auto mask_at = [&](index_t r, index_t c) {
      const index_t b = r / 12, i = r % 4;
      switch (which) {
        case 0: return pad(b, 0, 0, c);
        case 1: return causal(i, c);
        case 2: return full[r * 5 + c];
        default: return per_row[r];
      }
    };
    for (bool log : {false, true}) {
      var<double> y = log ? log_softmax(x.use(), constant(m)) : softmax(x.use(), constant(m));
      const auto ref = naive_softmax(x.value(), mask_at, log);
      for (index_t i = 0; i < x.numel(); ++i) {
        if (std::isinf(ref[std::size_t(i)])) CHECK(y[i] == ref[std::size_t(i)]);
        else CHECK(y[i] == doctest::Approx(ref[std::size_t(i)]).epsilon(1e-12));
      }
    }
  }
  // The helper attention reuses: row r of [B, H, T, T] reads mask row b of [B, 1, 1, T].
  const row_broadcast rb = row_broadcast::make("attention", "mask", {2, 3, 4, 5}, {2, 1, 1, 5});
  CHECK(rb.col_step == 1);
  for (index_t r = 0; r < 24; ++r) CHECK(rb.row_offset(r) == (r / 12) * 5);
  const row_broadcast rc = row_broadcast::make("attention", "mask", {2, 3, 4, 5}, {4, 5});
  for (index_t r = 0; r < 24; ++r) CHECK(rc.row_offset(r) == (r % 4) * 5);
}

TEST_CASE("softmax gradients, with -1e4 masks and fully masked rows") {
  std::mt19937 rng(3);
  auto x1 = random_param("x1", {11}, rng);
  auto x2 = random_param("x2", {5, 9}, rng);
  auto x3 = random_param("x3", {3, 2, 19}, rng);
  auto s4 = random_param("s4", {2, 3, 4, 6}, rng);
  for (bool log : {false, true}) {
    CAPTURE(log);
    auto op = [log](const var<double>& x, const var<double>& m = {}) { return log ? log_softmax(x, m) : softmax(x, m); };
    expect_gradients([&] { return op(x1.use()); }, {&x1});
    expect_gradients([&] { return op(x2.use()); }, {&x2});
    expect_gradients([&] { return op(x3.use()); }, {&x3});
    // log_softmax outputs near -1e4 where masked: a wider finite-difference step keeps the
    // numeric side's cancellation error (1e4 * 1e-16 / eps) below the tolerance.
    const gradient_check_options masked{.eps = log ? 1e-4 : 1e-6};
    // Attention scores with a padding mask: some -1e4 entries, one batch fully padded beyond 2.
    const tensor<double> pad = padding_mask(2, 6, {6, 2}, -1e4);
    expect_gradients([&] { return op(s4.use(), constant(pad)); }, {&s4}, masked);
    // A mask of x's own shape with scattered -1e4 entries.
    tensor<double> m({3, 2, 19}, 0.0);
    for (index_t i = 0; i < m.numel(); i += 3) m[i] = -1e4;
    expect_gradients([&] { return op(x3.use(), constant(m)); }, {&x3}, masked);
    // Every entry of the first row masked with -1e4: still a (uniform-ish) softmax, like PyTorch.
    tensor<double> r0({5, 9}, 0.0);
    for (index_t c = 0; c < 9; ++c) r0[c] = -1e4;
    expect_gradients([&] { return op(x2.use(), constant(r0)); }, {&x2}, masked);
  }
  // -inf: masked entries are exactly 0, a fully masked row is all zeros with no gradient.
  tensor<double> m({5, 9}, 0.0);
  for (index_t c = 0; c < 9; ++c) m(1, c) = -inf;
  m(3, 4) = -inf;
  m(0, 0) = -inf;
  expect_gradients([&] { return softmax(x2.use(), constant(m)); }, {&x2});
  tape::current().reset();
  x2.zero_grad();
  var<double> y = softmax(x2.use(), constant(m));
  for (index_t c = 0; c < 9; ++c) CHECK(y[9 + c] == 0.0);
  CHECK(y[3 * 9 + 4] == 0.0);
  // log_softmax: -inf where masked, zeros (and no gradient) for the fully masked row.
  tape::current().reset();
  var<double> ly = log_softmax(x2.use(), constant(m));
  CHECK(ly[0] == -inf);
  for (index_t c = 0; c < 9; ++c) CHECK(ly[9 + c] == 0.0);
  for (index_t i = 0; i < ly.numel(); ++i) ly.grad_data()[i] = 1.0 + double(i % 5);
  tape::current().run_backward();
  for (index_t c = 0; c < 9; ++c) CHECK(x2.grad()[9 + c] == 0.0);
  for (index_t i = 0; i < x2.numel(); ++i) CHECK(std::isfinite(x2.grad()[i]));
}

TEST_CASE("the mask gets no gradient") {
  tape::current().reset();
  std::mt19937 rng(4);
  parameter<double> x = random_param("x", {2, 4}, rng), m = random_param("m", {4}, rng);
  var<double> y = softmax(x.use(), m.use());
  for (index_t i = 0; i < 8; ++i) y.grad_data()[i] = double(i);
  tape::current().run_backward();
  for (double g : m.grad()) CHECK(g == 0);
  bool any = false;
  for (double g : x.grad()) any = any || g != 0;
  CHECK(any);
}

TEST_CASE("serial and tbb bitwise identical; scalar fallback within rounding") {
  std::mt19937 rng(5);
  parameter<float> x("x", {4, 6, 33, 67});
  fill_uniform(x.value(), rng, -8, 8);
  tensor<float> pad({4, 1, 1, 67}, 0.f);
  for (index_t b = 0; b < 4; ++b)
    for (index_t t = 60 - 10 * b; t < 67; ++t) pad(b, 0, 0, t) = b == 3 ? -std::numeric_limits<float>::infinity() : -1e4f;
  auto run = [&]<class Exec, class Simd>(bool log) {
    tape::current().reset();
    x.zero_grad();
    var<float> y = log ? log_softmax<Exec, Simd>(x.use(), constant(pad)) : softmax<Exec, Simd>(x.use(), constant(pad));
    for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = float(std::sin(0.1 * double(i)));
    tape::current().run_backward();
    std::vector<float> out(y.values().begin(), y.values().end());
    out.insert(out.end(), x.grad().begin(), x.grad().end());
    return out;
  };
  for (bool log : {false, true}) {
    CAPTURE(log);
    const auto serial = run.template operator()<exec::serial, simd::native>(log);
    const auto tbb = run.template operator()<exec::tbb, simd::native>(log);
    CHECK(serial == tbb);
    const auto scalar = run.template operator()<exec::tbb, simd::scalar>(log);
    double worst = 0;
    for (std::size_t i = 0; i < tbb.size(); ++i) {
      if (std::isinf(tbb[i])) CHECK(scalar[i] == tbb[i]);
      else worst = std::max(worst, std::abs(double(scalar[i]) - tbb[i]) / (1 + std::abs(double(tbb[i]))));
    }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("softmax shape errors name both shapes") {
  tape::current().reset();
  parameter<float> x("x", {2, 3, 4, 5}), bad("bad", {2, 1, 1, 6});
  CHECK_THROWS_WITH_AS(softmax(x.use(), bad.use()), doctest::Contains("[2, 3, 4, 5]"), shape_error);
  CHECK_THROWS_WITH_AS(log_softmax(x.use(), bad.use()), doctest::Contains("[2, 1, 1, 6]"), shape_error);
  parameter<float> wrong_batch("w", {3, 1, 1, 5}), scalar("s", hybrid::shape{});
  CHECK_THROWS_WITH_AS(softmax(x.use(), wrong_batch.use()), doctest::Contains("[3, 1, 1, 5]"), shape_error);
  CHECK_THROWS_AS(softmax(scalar.use()), shape_error);
  parameter<float> row("row", {5});
  CHECK_THROWS_AS(softmax(row.use(), x.use()), shape_error);  // mask of higher rank than x
}

}  // namespace HYBRID_TEST_UNIT
