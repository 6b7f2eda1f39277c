// Pooling: values against naive loops and PyTorch, gradients (finite differences, ties to the first
// maximum, NaN), the 2 x 2 fast path and general windows bitwise against a scalar reference, global
// average pooling, serial vs tbb bitwise, errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/pool.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

#include "fixtures/torch_conv.inc"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;
using test_util::expect_gradients;

namespace {
template <class T>
parameter<T> from_array(const char* name, hybrid::shape s, const double* v) {
  parameter<T> p(name, s);
  for (index_t i = 0; i < s.numel(); ++i) p.value()[i] = static_cast<T>(v[i]);
  return p;
}
// x [B, C, H, W] pooled with a k x k window and stride s, by the definition.
tensor<double> naive_pool(const tensor<double>& x, index_t k, index_t s, bool max) {
  const index_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
  tensor<double> y({B, C, Ho, Wo});
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < C; ++c)
      for (index_t i = 0; i < Ho; ++i)
        for (index_t j = 0; j < Wo; ++j) {
          double m = -INFINITY, sum = 0;
          for (index_t u = 0; u < k; ++u)
            for (index_t v = 0; v < k; ++v) {
              m = std::max(m, x(b, c, i * s + u, j * s + v));
              sum += x(b, c, i * s + u, j * s + v);
            }
          y(b, c, i, j) = max ? m : sum / double(k * k);
        }
  return y;
}

// The documented pooling semantics in plain loops, for the bitwise tests. Max: the window in row-major
// order, moving to a later element only if it is greater, or a NaN while no NaN is held; the gradient
// goes to that element. Average: the row-major sum times 1 / (k * k); each window element gets dy / (k * k).
template <class T>
struct pooled {
  std::vector<T> y, dx;
};
template <class T>
pooled<T> reference_pool(const tensor<T>& x, const tensor<T>& dy, index_t k, index_t s, bool max) {
  const index_t planes = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3), Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
  const T inv = T(1) / static_cast<T>(k * k);
  pooled<T> r{std::vector<T>(static_cast<std::size_t>(planes * Ho * Wo)), std::vector<T>(static_cast<std::size_t>(x.numel()))};
  for (index_t pl = 0; pl < planes; ++pl)
    for (index_t oh = 0; oh < Ho; ++oh)
      for (index_t ow = 0; ow < Wo; ++ow) {
        const index_t o = (pl * Ho + oh) * Wo + ow;
        const index_t first = pl * H * W + oh * s * W + ow * s;
        index_t best = first;
        T sum = 0;
        for (index_t u = 0; u < k; ++u)
          for (index_t v = 0; v < k; ++v) {
            const index_t at = first + u * W + v;
            if (!std::isnan(x[best]) && (std::isnan(x[at]) || x[at] > x[best])) best = at;
            sum += x[at];
          }
        r.y[static_cast<std::size_t>(o)] = max ? x[best] : sum * inv;
        if (max) {
          r.dx[static_cast<std::size_t>(best)] += dy[o];
        } else {
          for (index_t u = 0; u < k; ++u)
            for (index_t v = 0; v < k; ++v) r.dx[static_cast<std::size_t>(first + u * W + v)] += dy[o] * inv;
        }
      }
  return r;
}
// Index of the first element whose bits differ (NaN payloads and the sign of zero count), -1 if none.
template <class T>
std::ptrdiff_t first_bit_difference(std::type_identity_t<std::span<const T>> got, const std::vector<T>& want) {
  if (got.size() != want.size()) return 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) return static_cast<std::ptrdiff_t>(i);
  return -1;
}
// Values with many ties, both zeros, and NaNs of either sign with distinct payloads, so the bits
// show which NaN won.
template <class T>
void fill_ties_and_nans(tensor<T>& x, std::mt19937& rng) {
  using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  const T values[] = {T(-1), T(0), T(-0.0), T(1), T(2)};
  const bits quiet = std::bit_cast<bits>(std::numeric_limits<T>::quiet_NaN()), sign = bits(1) << (8 * sizeof(T) - 1);
  for (index_t i = 0; i < x.numel(); ++i) {
    const auto draw = rng() % 48;
    x[i] = draw < 40 ? values[draw % 5] : std::bit_cast<T>(quiet | bits(i + 1) | (draw % 2 ? sign : 0));
  }
}
}  // namespace

TEST_CASE("max_pool2d and avg_pool2d match naive loops (overlapping, tiling and gapped windows)") {
  std::mt19937 rng(1);
  auto x = random_param("x", {2, 3, 9, 7}, rng);
  for (index_t k : {1, 2, 3})
    for (index_t s : {0, 1, 2, 4}) {
      CAPTURE(k);
      CAPTURE(s);
      tape::current().reset();
      const index_t st = s == 0 ? k : s;
      var<double> ym = max_pool2d(x.use(), k, s), ya = avg_pool2d(x.use(), k, s);
      const tensor<double> wm = naive_pool(x.value(), k, st, true), wa = naive_pool(x.value(), k, st, false);
      REQUIRE(ym.shape() == wm.shape());
      REQUIRE(ya.shape() == wa.shape());
      for (index_t i = 0; i < wm.numel(); ++i) {
        CHECK(ym[i] == wm[i]);
        CHECK(ya[i] == doctest::Approx(wa[i]).epsilon(1e-14));
      }
    }
}

TEST_CASE("pool1d equals pool2d with H = 1") {
  tape::current().reset();
  std::mt19937 rng(2);
  auto x = random_param("x", {2, 3, 11}, rng);
  var<double> m1 = max_pool1d(x.use(), 3, 2), a1 = avg_pool1d(x.use(), 2);
  const tensor<double> x4 = x.value().reshaped({2, 3, 1, 11});
  REQUIRE(m1.shape() == hybrid::shape{2, 3, 5});
  REQUIRE(a1.shape() == hybrid::shape{2, 3, 5});
  // The 2-D reference with a 1 x k window: pool rows of a [.., 1, 11] image by hand.
  for (index_t r = 0; r < 6; ++r)
    for (index_t j = 0; j < 5; ++j) {
      const double* row = x4.data() + r * 11;
      CHECK(m1[r * 5 + j] == std::max({row[2 * j], row[2 * j + 1], row[2 * j + 2]}));
      CHECK(a1[r * 5 + j] == doctest::Approx((row[2 * j] + row[2 * j + 1]) / 2));
    }
}

TEST_CASE("pooling matches PyTorch (values and gradients)") {
  using namespace torch_conv;
  auto compare = [](std::span<const double> got, const double* want, std::size_t n) {
    REQUIRE(got.size() == n);
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    CHECK(worst < 1e-14);
  };
  auto run = [&](auto pool, hybrid::shape s, const double* in, const double* out, std::size_t n_out, const double* up,
                 const double* grad) {
    tape::current().reset();
    auto x = from_array<double>("x", s, in);
    var<double> y = pool(x.use());
    compare(y.values(), out, n_out);
    std::copy(up, up + n_out, y.grad_data());
    tape::current().run_backward();
    compare(x.grad().span(), grad, static_cast<std::size_t>(s.numel()));
  };
  run([](auto x) { return max_pool2d(x, 3, 2); }, {2, 3, 7, 8}, max_pool2d_in0, max_pool2d_out, std::size(max_pool2d_out),
      max_pool2d_upstream, max_pool2d_grad0);
  run([](auto x) { return avg_pool2d(x, 2); }, {2, 3, 7, 8}, avg_pool2d_in0, avg_pool2d_out, std::size(avg_pool2d_out),
      avg_pool2d_upstream, avg_pool2d_grad0);
  run([](auto x) { return max_pool1d(x, 3, 2); }, {2, 3, 11}, max_pool1d_in0, max_pool1d_out, std::size(max_pool1d_out),
      max_pool1d_upstream, max_pool1d_grad0);
}

TEST_CASE("pool gradients match finite differences") {
  std::mt19937 rng(3);
  auto x = random_param("x", {2, 3, 7, 6}, rng);
  auto x1 = random_param("x1", {3, 2, 10}, rng);
  for (index_t k : {2, 3})
    for (index_t s : {1, 2, 3}) {
      CAPTURE(k);
      CAPTURE(s);
      expect_gradients([&] { return max_pool2d(x.use(), k, s); }, {&x});
      expect_gradients([&] { return avg_pool2d(x.use(), k, s); }, {&x});
      expect_gradients([&] { return max_pool1d(x1.use(), k, s); }, {&x1});
      expect_gradients([&] { return avg_pool1d(x1.use(), k, s); }, {&x1});
    }
}

TEST_CASE("max_pool: the gradient goes to the first maximum on ties; NaN propagates") {
  tape::current().reset();
  parameter<double> x("x", tensor<double>({1, 1, 2, 4}, {1, 3, 3, 0,  //
                                                         3, 2, 5, 5}));
  var<double> y = max_pool2d(x.use(), 2, 2);
  REQUIRE(y.shape() == hybrid::shape{1, 1, 1, 2});
  CHECK(y[0] == 3);
  CHECK(y[1] == 5);
  y.grad_data()[0] = 10;
  y.grad_data()[1] = 20;
  tape::current().run_backward();
  const std::vector<double> want{0, 10, 0, 0, 0, 0, 20, 0};
  CHECK(std::equal(want.begin(), want.end(), x.grad().begin()));

  tape::current().reset();
  x.zero_grad();
  x.value()(0, 0, 0, 1) = NAN;
  x.value()(0, 0, 1, 3) = NAN;
  var<double> z = max_pool2d(x.use(), 2, 2);
  CHECK(std::isnan(z[0]));
  CHECK(std::isnan(z[1]));
  z.grad_data()[0] = 1;
  z.grad_data()[1] = 1;
  tape::current().run_backward();
  CHECK(x.grad()(0, 0, 0, 1) == 1);  // the NaN gets the gradient
  CHECK(x.grad()(0, 0, 1, 3) == 1);
  CHECK(x.grad()(0, 0, 1, 2) == 0);
}

TEST_CASE("pool: the 2 x 2 fast path and general windows equal a scalar reference bitwise (ties, -0.0, NaNs, odd sizes)") {
  auto check = []<class T>(T) {
    std::mt19937 rng(6);
    // [H, W]: odd and even; wide enough for full vectors and a tail.
    const index_t sizes[][2] = {{7, 9}, {8, 10}, {9, 37}, {16, 34}, {2, 2}, {3, 5}};
    const index_t windows[][2] = {{2, 2}, {2, 1}, {3, 2}, {2, 3}};  // [kernel, stride]; [2, 2] is the fast path
    for (const auto& size : sizes)
      for (const auto& window : windows)
        for (bool max : {true, false}) {
          const index_t H = size[0], W = size[1], k = window[0], s = window[1];
          CAPTURE(sizeof(T));
          CAPTURE(H);
          CAPTURE(W);
          CAPTURE(k);
          CAPTURE(s);
          CAPTURE(max);
          if (H < k || W < k) continue;
          tape::current().reset();
          parameter<T> x("x", {2, 3, H, W});
          fill_ties_and_nans(x.value(), rng);
          var<T> y = max ? max_pool2d(x.use(), k, s) : avg_pool2d(x.use(), k, s);
          tensor<T> dy(y.shape());
          fill_uniform(dy, rng);
          const pooled<T> want = reference_pool(x.value(), dy, k, s, max);
          CHECK(first_bit_difference(y.values(), want.y) == -1);
          std::copy(dy.begin(), dy.end(), y.grad_data());
          tape::current().run_backward();
          CHECK(first_bit_difference(x.grad().span(), want.dx) == -1);
          // Without a tape no argmax is kept: the same values.
          tape::current().reset();
          no_grad off;
          var<T> z = max ? max_pool2d(x.use(), k, s) : avg_pool2d(x.use(), k, s);
          CHECK(first_bit_difference(z.values(), want.y) == -1);
        }
  };
  check(float{});
  check(double{});
}

TEST_CASE("global_avg_pool over [B, C, H, W] and [B, C, L]") {
  tape::current().reset();
  std::mt19937 rng(4);
  auto x = random_param("x", {2, 3, 4, 5}, rng);
  auto x1 = random_param("x1", {3, 2, 7}, rng);
  var<double> y = global_avg_pool(x.use()), y1 = global_avg_pool(x1.use());
  REQUIRE(y.shape() == hybrid::shape{2, 3});
  REQUIRE(y1.shape() == hybrid::shape{3, 2});
  for (index_t r = 0; r < 6; ++r) {
    double s = 0;
    for (index_t i = 0; i < 20; ++i) s += x.value()[r * 20 + i];
    CHECK(y[r] == doctest::Approx(s / 20));
    double s1 = 0;
    for (index_t i = 0; i < 7; ++i) s1 += x1.value()[r * 7 + i];
    CHECK(y1[r] == doctest::Approx(s1 / 7));
  }
  expect_gradients([&] { return global_avg_pool(x.use()); }, {&x});
  expect_gradients([&] { return global_avg_pool(x1.use()); }, {&x1});
}

TEST_CASE("pooling: serial and tbb bitwise identical, forward and backward") {
  auto run = []<class Exec>(Exec) {
    tape::current().reset();
    std::mt19937 r(5);
    parameter<float> x("x", {8, 16, 33, 31}), x1("x1", {8, 16, 301});
    fill_uniform(x.value(), r);
    fill_uniform(x1.value(), r);
    const var<float> ys[] = {max_pool2d<Exec>(x.use(), 3, 2), avg_pool2d<Exec>(x.use(), 2), max_pool1d<Exec>(x1.use(), 4),
                             avg_pool1d<Exec>(x1.use(), 3, 1), global_avg_pool<Exec>(x.use())};
    std::vector<float> out;
    for (const auto& y : ys) {
      out.insert(out.end(), y.values().begin(), y.values().end());
      for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = static_cast<float>(std::sin(0.37 * double(i)));
    }
    tape::current().run_backward();
    out.insert(out.end(), x.grad().begin(), x.grad().end());
    out.insert(out.end(), x1.grad().begin(), x1.grad().end());
    return out;
  };
  CHECK(run(exec::serial{}) == run(exec::tbb{}));
}

TEST_CASE("pooling shape errors name the shapes") {
  tape::current().reset();
  parameter<float> x("x", {2, 3, 4, 5}), x1("x1", {2, 3, 5});
  CHECK_THROWS_WITH_AS(max_pool2d(x.use(), 5), doctest::Contains("[2, 3, 4, 5]"), shape_error);
  CHECK_THROWS_WITH_AS(max_pool2d(x.use(), 5), doctest::Contains("[5, 5]"), shape_error);
  CHECK_THROWS_WITH_AS(avg_pool2d(x1.use(), 2), doctest::Contains("[2, 3, 5]"), shape_error);
  CHECK_THROWS_WITH_AS(max_pool1d(x.use(), 2), doctest::Contains("[B, C, L]"), shape_error);
  CHECK_THROWS_WITH_AS(avg_pool1d(x1.use(), 6), doctest::Contains("[6]"), shape_error);
  CHECK_THROWS_WITH_AS(global_avg_pool(parameter<float>("v", {4, 5}).use()), doctest::Contains("[4, 5]"), shape_error);
  CHECK_THROWS_AS(max_pool2d(x.use(), 0), std::invalid_argument);
  CHECK_THROWS_AS(avg_pool1d(x1.use(), 2, -1), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
