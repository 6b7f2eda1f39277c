// layer_norm / rms_norm: values against a naive reference, gradients for x, gamma and beta, float
// against double, serial vs tbb bitwise (gamma/beta partial sums), errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/layer_norm.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;
using test_util::expect_gradients;

namespace {
// Naive layer norm (centered) or RMS norm of each row, in double.
template <class T>
std::vector<double> naive_norm(const tensor<T>& x, const tensor<T>& g, const tensor<T>* b, double eps, bool centered) {
  const index_t cols = x.shape().cols(), rows = x.shape().rows();
  std::vector<double> y(std::size_t(x.numel()));
  for (index_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    if (centered) {
      for (index_t c = 0; c < cols; ++c) mu += x[r * cols + c];
      mu /= double(cols);
    }
    for (index_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mu) * (x[r * cols + c] - mu);
    var /= double(cols);
    for (index_t c = 0; c < cols; ++c)
      y[std::size_t(r * cols + c)] = (x[r * cols + c] - mu) / std::sqrt(var + eps) * g[c] + (b ? double((*b)[c]) : 0.0);
  }
  return y;
}
}  // namespace

TEST_CASE("layer_norm and rms_norm match a naive reference") {
  tape::current().reset();
  std::mt19937 rng(1);
  for (hybrid::shape s : {hybrid::shape{7}, hybrid::shape{4, 10}, hybrid::shape{2, 3, 17}}) {
    CAPTURE(s.str());
    auto x = random_param("x", s, rng, -3, 5);
    auto g = random_param("g", {s.cols()}, rng, 0.5, 1.5);
    auto b = random_param("b", {s.cols()}, rng);
    for (double eps : {1e-12, 1e-5, 0.5}) {
      var<double> y = layer_norm(x.use(), g.use(), b.use(), eps);
      var<double> z = rms_norm(x.use(), g.use(), eps);
      REQUIRE(y.shape() == s);
      const auto ref = naive_norm(x.value(), g.value(), &b.value(), eps, true);
      const auto rref = naive_norm(x.value(), g.value(), static_cast<const tensor<double>*>(nullptr), eps, false);
      for (index_t i = 0; i < x.numel(); ++i) {
        CHECK(y[i] == doctest::Approx(ref[std::size_t(i)]).epsilon(1e-12));
        CHECK(z[i] == doctest::Approx(rref[std::size_t(i)]).epsilon(1e-12));
      }
    }
  }
  // Hand-computed: [1, 2, 3] has mean 2 and biased variance 2/3.
  parameter<double> x("x", tensor<double>({3}, {1, 2, 3})), g("g", tensor<double>({3}, {1, 1, 2})),
      b("b", tensor<double>({3}, {0, 1, 0}));
  var<double> y = layer_norm(x.use(), g.use(), b.use(), 0.0);
  CHECK(y[0] == doctest::Approx(-std::sqrt(1.5)));
  CHECK(y[1] == doctest::Approx(1.0));
  CHECK(y[2] == doctest::Approx(2 * std::sqrt(1.5)));
}

TEST_CASE("layer_norm gradients for x, gamma and beta") {
  std::mt19937 rng(2);
  for (hybrid::shape s : {hybrid::shape{9}, hybrid::shape{5, 3}, hybrid::shape{2, 3, 19}, hybrid::shape{2, 1, 2, 8}}) {
    CAPTURE(s.str());
    auto x = random_param("x", s, rng, -2, 2);
    auto g = random_param("gamma", {s.cols()}, rng, 0.5, 1.5);
    auto b = random_param("beta", {s.cols()}, rng);
    for (double eps : {1e-12, 1e-5}) {
      expect_gradients([&] { return layer_norm(x.use(), g.use(), b.use(), eps); }, {&x, &g, &b});
      expect_gradients([&] { return rms_norm(x.use(), g.use(), eps); }, {&x, &g});
    }
  }
  // Far from zero mean (two-pass variance), and with x a constant (only gamma, beta need gradients).
  auto x = random_param("x", {6, 11}, rng, 99, 101);
  auto g = random_param("gamma", {11}, rng, 0.5, 1.5);
  auto b = random_param("beta", {11}, rng);
  expect_gradients([&] { return layer_norm(x.use(), g.use(), b.use(), 1e-12); }, {&x, &g, &b});
  const tensor<double> xc = x.value().clone();
  expect_gradients([&] { return layer_norm(constant(xc), g.use(), b.use()); }, {&g, &b});
  // A frozen gamma gets nothing, the others still do.
  g.set_trainable(false);
  expect_gradients([&] { return layer_norm(x.use(), g.use(), b.use()); }, {&x, &g, &b});
  for (double v : g.grad()) CHECK(v == 0);
}

TEST_CASE("float layer_norm with BERT's eps is close to the double reference") {
  tape::current().reset();
  std::mt19937 rng(3);
  parameter<float> x("x", {3, 5, 256}), g("g", {256}), b("b", {256});
  fill_uniform(x.value(), rng, -4, 6);
  fill_uniform(g.value(), rng, 0.5, 1.5);
  fill_uniform(b.value(), rng);
  var<float> y = layer_norm(x.use(), g.use(), b.use(), 1e-12);
  const auto ref = naive_norm(x.value(), g.value(), &b.value(), 1e-12, true);
  double worst = 0;
  for (index_t i = 0; i < y.numel(); ++i) worst = std::max(worst, std::abs(y[i] - ref[std::size_t(i)]));
  CHECK(worst < 2e-5);
}

TEST_CASE("serial and tbb bitwise identical; scalar fallback within rounding") {
  std::mt19937 rng(4);
  parameter<float> x("x", {32, 40, 200}), g("g", {200}), b("b", {200});
  fill_uniform(x.value(), rng, -3, 3);
  fill_uniform(g.value(), rng, 0.5, 1.5);
  fill_uniform(b.value(), rng);
  auto run = [&]<class Exec, class Simd>(bool rms) {
    tape::current().reset();
    for (auto* p : {&x, &g, &b}) p->zero_grad();
    var<float> y = rms ? rms_norm<Exec, Simd>(x.use(), g.use()) : layer_norm<Exec, Simd>(x.use(), g.use(), b.use(), 1e-12);
    for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = float(std::sin(0.1 * double(i)));
    tape::current().run_backward();
    std::vector<float> out(y.values().begin(), y.values().end());
    for (auto* p : {&x, &g, &b}) out.insert(out.end(), p->grad().begin(), p->grad().end());
    return out;
  };
  for (bool rms : {false, true}) {
    CAPTURE(rms);
    const auto serial = run.template operator()<exec::serial, simd::native>(rms);
    const auto tbb = run.template operator()<exec::tbb, simd::native>(rms);
    CHECK(serial == tbb);
    const auto scalar = run.template operator()<exec::tbb, simd::scalar>(rms);
    double worst = 0;
    for (std::size_t i = 0; i < tbb.size(); ++i)
      worst = std::max(worst, std::abs(double(scalar[i]) - tbb[i]) / (1 + std::abs(double(tbb[i]))));
    CHECK(worst < 1e-4);
  }
}

TEST_CASE("layer_norm shape errors name both shapes") {
  tape::current().reset();
  parameter<float> x("x", {2, 3, 8}), g("g", {8}), b("b", {8}), g7("g7", {7}), b2("b2", {1, 8});
  CHECK_THROWS_WITH_AS(layer_norm(x.use(), g7.use(), b.use()), doctest::Contains("[2, 3, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(layer_norm(x.use(), g7.use(), b.use()), doctest::Contains("[7]"), shape_error);
  CHECK_THROWS_WITH_AS(layer_norm(x.use(), g.use(), b2.use()), doctest::Contains("[1, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(rms_norm(x.use(), g7.use()), doctest::Contains("rms_norm"), shape_error);
  parameter<float> s("s", hybrid::shape{});
  CHECK_THROWS_AS(layer_norm(s.use(), g.use(), b.use()), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
