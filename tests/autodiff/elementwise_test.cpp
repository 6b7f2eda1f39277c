// Fused elementwise expressions: values, gradients (finite differences), broadcasting, fusion, policies.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/shape_ops.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;
using test_util::expect_gradients;

TEST_CASE("elementwise values match scalar math") {
  tape::current().reset();
  parameter<float> x("x", tensor<float>({2, 3}, {-1.5f, -0.2f, 0.f, 0.3f, 1.f, 2.5f}));
  var<float> y = gelu(x * 2.f + 1.f);
  for (int i = 0; i < 6; ++i) {
    const double v = 2.0 * x.value()[i] + 1.0;
    CHECK(y[i] == doctest::Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))).epsilon(1e-6));
  }
}

TEST_CASE("every unary op has correct gradients") {
  std::mt19937 rng(7);
  auto x = random_param("x", {3, 5}, rng);
  auto pos = random_param("pos", {3, 5}, rng, 0.2, 2.0);
  expect_gradients([&] { return var<double>(-x); }, {&x});
  expect_gradients([&] { return var<double>(exp(x)); }, {&x});
  expect_gradients([&] { return var<double>(log(pos)); }, {&pos});
  expect_gradients([&] { return var<double>(sqrt(pos)); }, {&pos});
  expect_gradients([&] { return var<double>(rsqrt(pos)); }, {&pos});
  expect_gradients([&] { return var<double>(abs(x)); }, {&x});
  expect_gradients([&] { return var<double>(tanh(x)); }, {&x});
  expect_gradients([&] { return var<double>(sigmoid(x * 3.0)); }, {&x});
  expect_gradients([&] { return var<double>(relu(x)); }, {&x});
  expect_gradients([&] { return var<double>(gelu(x * 2.0)); }, {&x});
  expect_gradients([&] { return var<double>(gelu_tanh(x * 2.0)); }, {&x});
  expect_gradients([&] { return var<double>(softplus(x * 5.0)); }, {&x});
  expect_gradients([&] { return var<double>(pow(pos, 2.5)); }, {&pos});
  expect_gradients([&] { return var<double>(pow(x, 3.0)); }, {&x});
  expect_gradients([&] { return var<double>(clamp(x, -0.5, 0.4)); }, {&x});
  expect_gradients([&] { return var<double>(square(x)); }, {&x});
}

TEST_CASE("binary ops, scalars and broadcasting have correct gradients") {
  std::mt19937 rng(11);
  auto a = random_param("a", {4, 6}, rng);
  auto b = random_param("b", {4, 6}, rng);
  auto pos = random_param("pos", {4, 6}, rng, 0.5, 2.0);
  auto row = random_param("row", {6}, rng);
  auto col = random_param("col", {4, 1}, rng, 0.5, 1.5);
  auto s = random_param("s", {1}, rng);
  expect_gradients([&] { return var<double>(a + b); }, {&a, &b});
  expect_gradients([&] { return var<double>(a - b * 2.0); }, {&a, &b});
  expect_gradients([&] { return var<double>(3.0 - a * b); }, {&a, &b});
  expect_gradients([&] { return var<double>(a / pos); }, {&a, &pos});
  expect_gradients([&] { return var<double>(2.0 / pos); }, {&pos});
  expect_gradients([&] { return var<double>(pow(pos, b)); }, {&pos, &b});
  expect_gradients([&] { return var<double>(maximum(a, b)); }, {&a, &b});
  expect_gradients([&] { return var<double>(minimum(a, 0.1)); }, {&a});
  expect_gradients([&] { return var<double>(gelu(a * row + col)); }, {&a, &row, &col});
  expect_gradients([&] { return var<double>(a * s + row / col); }, {&a, &s, &row, &col});
  expect_gradients([&] { return var<double>(a * a * a); }, {&a});
}

TEST_CASE("an intermediate operand's new adjoint is written once, or accumulated when shared") {
  // A full-shape leaf that alone reads its node stores into a new adjoint (not zeroed first); two leaves of one
  // node, a node and a view of it, or a node that a later pass adds to must accumulate. check_gradients poisons
  // new adjoints with NaN, so an element left unwritten fails too.
  std::mt19937 rng(17);
  auto a = random_param("a", {4, 6}, rng);
  auto b = random_param("b", {4, 6}, rng);
  auto row = random_param("row", {6}, rng);
  expect_gradients([&] { const var<double> t = a * b; return var<double>(exp(t) + row); }, {&a, &b, &row});
  expect_gradients([&] { const var<double> t = a * b; return var<double>(t * t + t); }, {&a, &b});
  expect_gradients([&] { const var<double> t = a - b; return var<double>(t * reshape(reshape(t, {24}), {4, 6})); },
                   {&a, &b});
  expect_gradients([&] {
    const var<double> t = a * b;
    const var<double> u = tanh(t), v = exp(t * 0.5);
    return var<double>(u * v);
  }, {&a, &b});
}

TEST_CASE("where and masks") {
  std::mt19937 rng(3);
  auto a = random_param("a", {3, 4}, rng);
  auto b = random_param("b", {3, 4}, rng);
  tensor<double> m({3, 4}, {1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0});
  expect_gradients([&] { return var<double>(where(constant(m), a * 2.0, b)); }, {&a, &b});
  // Large constants make the finite difference noisy at eps 1e-6 (|L| ~ 1e4); the map is linear in a.
  expect_gradients([&] { return var<double>(where(constant(m), a, -1e4)); }, {&a}, {.eps = 1e-3});
}

TEST_CASE("a chain is one tape entry and one result buffer") {
  tape::current().reset();
  parameter<float> x("x", {64, 32}), w("w", {64, 32}), b("b", {32});
  var<float> xv = x.use(), wv = w.use(), bv = b.use();
  const auto before = tape::current().entries();
  var<float> y = gelu(xv * wv + bv);
  CHECK(y.shape() == hybrid::shape{64, 32});
  CHECK(tape::current().entries() == before + 1);
}

TEST_CASE("rank-3 tensors with a row bias and a [B,T,1] column") {
  std::mt19937 rng(5);
  auto x = random_param("x", {2, 3, 5}, rng);
  auto bias = random_param("bias", {5}, rng);
  auto scale = random_param("scale", {2, 3, 1}, rng);
  expect_gradients([&] { return var<double>(tanh(x * scale + bias)); }, {&x, &bias, &scale});
}

TEST_CASE("mismatched shapes throw naming both shapes") {
  tape::current().reset();
  parameter<float> a("a", {3, 4}), b("b", {4, 3});
  try {
    var<float> y = a + b;
    (void)y;
    FAIL("expected a shape_error");
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("[3, 4]") != std::string::npos);
    CHECK(std::string(e.what()).find("[4, 3]") != std::string::npos);
  }
}

TEST_CASE("no_grad records nothing and allocates no adjoint") {
  tape::current().reset();
  parameter<float> x("x", {8, 8});
  no_grad guard;
  var<float> y = exp(x * 2.f);
  CHECK(tape::current().entries() == 0);
  CHECK_FALSE(y.requires_grad());
}

TEST_CASE("xsimd and scalar policies agree; serial and tbb are bitwise identical") {
  std::mt19937 rng(9);
  // Large enough for many chunks, odd width for SIMD tails.
  parameter<float> x("x", {1000, 37}), b("b", {37});
  fill_uniform(x.value(), rng, -3, 3);
  fill_uniform(b.value(), rng);
  auto run = [&]<class Simd, class Exec>() {
    tape::current().reset();
    x.zero_grad();
    b.zero_grad();
    var<float> y = evaluate<Simd, Exec>(gelu(x * b + 0.5f) * sigmoid(x));
    for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = 1.0f;
    tape::current().run_backward();
    std::vector<float> r(y.values().begin(), y.values().end());
    r.insert(r.end(), x.grad().begin(), x.grad().end());
    r.insert(r.end(), b.grad().begin(), b.grad().end());
    return r;
  };
  auto vec_tbb = run.operator()<simd::native, exec::tbb>();
  auto vec_serial = run.operator()<simd::native, exec::serial>();
  auto scal = run.operator()<simd::scalar, exec::tbb>();
  CHECK(vec_tbb == vec_serial);
  REQUIRE(vec_tbb.size() == scal.size());
  double worst = 0;
  for (std::size_t i = 0; i < scal.size(); ++i)
    worst = std::max(worst, std::abs(double(vec_tbb[i]) - scal[i]) / (1e-3 + std::abs(double(scal[i]))));
  CHECK(worst < 1e-4);
}

}  // namespace HYBRID_TEST_UNIT
