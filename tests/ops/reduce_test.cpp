// Reductions: values against naive loops, gradients (finite differences), max ties and NaN, whole-tensor
// sums, serial vs tbb bitwise, scalar vs SIMD, errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/reduce.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;
using test_util::expect_gradients;

namespace {
// Seeds y's adjoint with fixed values and runs the backward pass.
template <class T>
void backward_with_weights(const var<T>& y) {
  for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = static_cast<T>(std::sin(0.37 * double(i)) + 0.1);
  tape::current().run_backward();
}
}  // namespace

TEST_CASE("sum, mean and max_over along every axis match naive loops") {
  tape::current().reset();
  std::mt19937 rng(1);
  auto p = random_param("x", {3, 4, 5}, rng);
  const tensor<double>& x = p.value();
  const index_t dims[3] = {3, 4, 5};
  for (int axis = 0; axis < 3; ++axis) {
    CAPTURE(axis);
    var<double> s = sum(p.use(), axis), m = mean(p.use(), axis - 3), mx = max_over(p.use(), axis);
    var<double> sk = sum(p.use(), axis, true);
    CHECK(s.shape() == hybrid::shape{3, 4, 5}.dropped(axis));
    CHECK(m.shape() == s.shape());
    CHECK(sk.shape() == hybrid::shape{3, 4, 5}.with(axis, 1));
    // The two kept axes, in order, index the output.
    const int a = axis == 0 ? 1 : 0, b = axis == 2 ? 1 : 2;
    for (index_t i = 0; i < dims[a]; ++i)
      for (index_t j = 0; j < dims[b]; ++j) {
        double total = 0, best = -1e300;
        for (index_t k = 0; k < dims[axis]; ++k) {
          index_t id[3];
          id[axis] = k, id[a] = i, id[b] = j;
          total += x(id[0], id[1], id[2]);
          best = std::max(best, x(id[0], id[1], id[2]));
        }
        const index_t o = i * dims[b] + j;
        CHECK(s[o] == doctest::Approx(total).epsilon(1e-13));
        CHECK(sk[o] == s[o]);
        CHECK(m[o] == doctest::Approx(total / double(dims[axis])).epsilon(1e-13));
        CHECK(mx[o] == best);
      }
  }
  var<double> t = sum(p.use()), tm = mean(p.use());
  CHECK(t.rank() == 0);
  CHECK(tm.shape() == hybrid::shape{});
  double total = 0;
  for (double v : x) total += v;
  CHECK(t.item() == doctest::Approx(total).epsilon(1e-13));
  CHECK(tm.item() == doctest::Approx(total / 60).epsilon(1e-13));
}

TEST_CASE("reduction gradients, several ranks and axes") {
  std::mt19937 rng(2);
  auto v = random_param("v", {7}, rng);
  auto x3 = random_param("x3", {3, 5, 4}, rng);
  auto x4 = random_param("x4", {2, 3, 1, 5}, rng);
  auto x2 = random_param("x2", {9, 17}, rng);  // rows longer than a pack, with a tail
  for (int axis : {0, 1, 2, -1}) {
    CAPTURE(axis);
    for (bool keep : {false, true}) {
      expect_gradients([&] { return sum(x3.use(), axis, keep); }, {&x3});
      expect_gradients([&] { return mean(x3.use(), axis, keep); }, {&x3});
      expect_gradients([&] { return max_over(x3.use(), axis, keep); }, {&x3});
    }
  }
  for (int axis : {0, 1, 2, 3}) {
    expect_gradients([&] { return mean(x4.use(), axis); }, {&x4});
    expect_gradients([&] { return max_over(x4.use(), axis, true); }, {&x4});
  }
  expect_gradients([&] { return sum(x2.use(), 1); }, {&x2});
  expect_gradients([&] { return max_over(x2.use(), 0); }, {&x2});
  expect_gradients([&] { return sum(v.use(), 0); }, {&v});
  expect_gradients([&] { return max_over(v.use(), -1); }, {&v});
  expect_gradients([&] { return sum(x3.use()); }, {&x3});
  expect_gradients([&] { return mean(x4.use()); }, {&x4});
}

TEST_CASE("max_over: the first maximal element gets the gradient, NaN propagates") {
  tape::current().reset();
  parameter<double> x("x", tensor<double>({2, 4}, {1, 3, 3, 2, 5, 5, 0, 5}));
  var<double> m = max_over(x.use(), 1);
  CHECK(m[0] == 3);
  CHECK(m[1] == 5);
  sum(m).backward();
  const double expect[8] = {0, 1, 0, 0, 1, 0, 0, 0};
  for (int i = 0; i < 8; ++i) CHECK(x.grad()[i] == expect[i]);
  // Along axis 0 the ties are between rows: column 1 has 3 vs 5, column 3 has 2 vs 5.
  parameter<double> y("y", tensor<double>({3, 2}, {4, 1, 4, 7, 2, 7}));
  tape::current().reset();
  var<double> my = max_over(y.use(), 0);
  sum(my).backward();
  const double expect_y[6] = {1, 0, 0, 1, 0, 0};
  for (int i = 0; i < 6; ++i) CHECK(y.grad()[i] == expect_y[i]);

  tape::current().reset();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  parameter<double> z("z", tensor<double>({1, 4}, {1, nan, 9, nan}));
  var<double> mz = max_over(z.use(), 1);
  CHECK(std::isnan(mz[0]));
  sum(mz).backward();
  CHECK(z.grad()[1] == 1);
  CHECK(z.grad()[0] + z.grad()[2] + z.grad()[3] == 0);
}

TEST_CASE("gradients accumulate across passes, and no_grad records nothing") {
  parameter<double> x("x", tensor<double>({2, 3}, {1, 2, 3, 4, 5, 6}));
  for (int pass = 0; pass < 2; ++pass) {
    tape::current().reset();
    sum(sum(sum(x.use(), 0), 0, true)).backward();
  }
  for (double g : x.grad()) CHECK(g == 2);
  tape::current().reset();
  no_grad ng;
  var<double> s = mean(x.use(), 1);
  CHECK(!s.requires_grad());
  CHECK(tape::current().entries() == 0);
  CHECK(s[1] == 5);
}

TEST_CASE("serial and tbb bitwise identical; scalar fallback within rounding") {
  std::mt19937 rng(3);
  parameter<float> x("x", {48, 129, 40});
  fill_uniform(x.value(), rng);
  auto run = [&]<class Exec, class Simd>(int axis) {
    tape::current().reset();
    x.zero_grad();
    var<float> y = axis == 9 ? sum<Exec, Simd>(x.use()) : axis == 8 ? max_over<Exec>(x.use(), 1) : mean<Exec, Simd>(x.use(), axis);
    backward_with_weights(y);
    std::vector<float> out(y.values().begin(), y.values().end());
    out.insert(out.end(), x.grad().begin(), x.grad().end());
    return out;
  };
  for (int axis : {0, 1, 2, 8, 9}) {
    CAPTURE(axis);
    const auto serial = run.template operator()<exec::serial, simd::native>(axis);
    const auto tbb = run.template operator()<exec::tbb, simd::native>(axis);
    CHECK(serial == tbb);
    const auto scalar = run.template operator()<exec::tbb, simd::scalar>(axis);
    REQUIRE(scalar.size() == tbb.size());
    double worst = 0;
    for (std::size_t i = 0; i < tbb.size(); ++i)
      worst = std::max(worst, std::abs(double(scalar[i]) - tbb[i]) / (1 + std::abs(double(tbb[i]))));
    CHECK(worst < 1e-4);
  }
}

TEST_CASE("reduction errors name the shape") {
  tape::current().reset();
  parameter<float> x("x", {3, 4});
  CHECK_THROWS_WITH_AS(sum(x.use(), 2), doctest::Contains("[3, 4]"), shape_error);
  CHECK_THROWS_WITH_AS(mean(x.use(), -3), doctest::Contains("[3, 4]"), shape_error);
  CHECK_THROWS_WITH_AS(max_over(x.use(), 5), doctest::Contains("max_over"), shape_error);
  parameter<float> e("e", {3, 0});
  CHECK_THROWS_AS(max_over(e.use(), 1), shape_error);
  CHECK(sum(e.use(), 1)[2] == 0);
  CHECK(std::isnan(mean(e.use(), 1)[0]));
  CHECK(sum(e.use()).item() == 0);
}

}  // namespace HYBRID_TEST_UNIT
