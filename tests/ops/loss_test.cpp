// Losses: values and gradients against PyTorch fixtures and naive references, finite-difference
// gradients, ignore_index, label smoothing, weights, all-ignored, policies, and errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <cstdint>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/loss.hpp>
#include <vector>

#include "fixtures/torch_loss.inc"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::expect_gradients;

namespace {
parameter<double> param_from(const char* name, hybrid::shape s, std::span<const double> v) {
  return parameter<double>(name, tensor<double>::from(s, v));
}
// Inputs in [-2, 2): logits spread enough to exercise saturation.
parameter<double> random_param(const char* name, hybrid::shape s, std::mt19937& rng, double lo = -2, double hi = 2) {
  return test_util::random_param(name, s, rng, lo, hi);
}
template <class A, class B>
void expect_close(const A& got, const B& want, double tol = 1e-12) {
  REQUIRE(std::size(got) == std::size(want));
  for (std::size_t i = 0; i < std::size(want); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol).scale(1));
  }
}
// Backward from a loss var: seeds its gradient with `upstream` (or 1) and runs the tape.
void backward_with(const var<double>& loss, std::span<const double> upstream = {}) {
  for (index_t i = 0; i < loss.numel(); ++i) loss.grad_data()[i] = upstream.empty() ? 1.0 : upstream[std::size_t(i)];
  tape::current().run_backward();
}
// Naive cross entropy of one row with label smoothing eps (log-softmax in long double).
double naive_ce_row(const double* x, int C, int t, double eps) {
  long double m = x[0], s = 0, mean = 0;
  for (int c = 1; c < C; ++c) m = std::max<long double>(m, x[c]);
  for (int c = 0; c < C; ++c) s += std::exp(x[c] - m), mean += x[c];
  const long double lse = m + std::log(s);
  mean /= C;
  return double((1 - eps) * (lse - x[t]) + eps * (lse - mean));
}
}  // namespace

TEST_CASE("cross_entropy matches PyTorch: mean, label smoothing, sum, none, weights, rank 3") {
  struct fx_case {
    const char* name;
    double ls;
    hybrid::reduction red;
    std::span<const double> loss, grad;
  };
  using namespace torch_loss;
  const fx_case cases[] = {{"mean", 0.0, reduction::mean, ce_mean_loss, ce_mean_grad},
                           {"mean_ls", 0.1, reduction::mean, ce_mean_ls_loss, ce_mean_ls_grad},
                           {"sum_ls", 0.2, reduction::sum, ce_sum_ls_loss, ce_sum_ls_grad},
                           {"none_ls", 0.1, reduction::none, ce_none_ls_loss, ce_none_ls_grad}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    tape::current().reset();
    auto x = param_from("x", {5, 7}, ce_logits);
    auto loss = cross_entropy(x.use(), ce_targets, {.label_smoothing = c.ls, .reduction = c.red});
    CHECK(loss.shape() == (c.red == reduction::none ? hybrid::shape{5} : hybrid::shape{}));
    expect_close(loss.values(), c.loss);
    backward_with(loss, c.red == reduction::none ? std::span<const double>(ce_upstream) : std::span<const double>{});
    expect_close(x.grad().span(), c.grad);
  }
  SUBCASE("per-row weights: sum(w l) / sum(w over counted rows), weight 0 skipped") {
    tape::current().reset();
    auto x = param_from("x", {5, 7}, ce_logits);
    auto loss = cross_entropy(x.use(), ce_targets, {.label_smoothing = 0.1}, ce_weights);
    expect_close(loss.values(), ce_weighted_loss);
    loss.backward();
    expect_close(x.grad().span(), ce_weighted_grad);
  }
  SUBCASE("rank 3 logits [B, T, C] with targets [B, T] flattened") {
    tape::current().reset();
    auto x = param_from("x", {2, 3, 4}, ce3_logits);
    auto loss = cross_entropy(x.use(), ce3_targets, {.label_smoothing = 0.05});
    expect_close(loss.values(), ce3_loss);
    loss.backward();
    expect_close(x.grad().span(), ce3_grad);
  }
}

TEST_CASE("cross_entropy values against a naive log-softmax, float and double") {
  std::mt19937 rng(5);
  const int N = 9, C = 13;
  tensor<double> xd({N, C});
  fill_uniform(xd, rng, -6, 6);
  std::vector<std::int32_t> t = {0, 12, 5, -100, 7, 7, 1, 11, 3};
  for (double eps : {0.0, 0.3}) {
    double want = 0;
    for (int r = 0; r < N; ++r)
      if (t[std::size_t(r)] != -100) want += naive_ce_row(xd.data() + r * C, C, t[std::size_t(r)], eps);
    want /= N - 1;
    tape::current().reset();
    CHECK(cross_entropy(constant(xd), t, {.label_smoothing = eps}).item() == doctest::Approx(want).epsilon(1e-13));
    tensor<float> xf({N, C});
    std::copy(xd.begin(), xd.end(), xf.begin());
    CHECK(cross_entropy(constant(xf), t, {.label_smoothing = eps}).item() == doctest::Approx(want).epsilon(1e-6));
  }
  // Huge logits stay finite (a naive exp would overflow).
  tape::current().reset();
  tensor<float> big({2, 3}, {1000.f, -1000.f, 0.f, 88.f, 89.f, 90.f});
  std::vector<std::int32_t> tb = {0, 1};
  auto l = cross_entropy(constant(big), tb, {.reduction = reduction::none});
  CHECK(l[0] == doctest::Approx(0.0));
  CHECK(l[1] == doctest::Approx(1.0 + std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0)).epsilon(1e-6));
}

TEST_CASE("cross_entropy gradients by finite differences") {
  std::mt19937 rng(9);
  auto x = random_param("x", {6, 5}, rng);
  std::vector<std::int32_t> t = {4, 0, -100, 2, 2, 1};
  std::vector<double> w = {1.0, 0.5, 3.0, 0.0, 2.0, 1.5};
  for (double eps : {0.0, 0.15})
    for (auto red : {reduction::mean, reduction::sum, reduction::none}) {
      CAPTURE(eps);
      CAPTURE(int(red));
      expect_gradients([&] { return cross_entropy(x.use(), t, {.label_smoothing = eps, .reduction = red}); }, {&x});
      expect_gradients([&] { return cross_entropy(x.use(), t, {.label_smoothing = eps, .reduction = red}, w); }, {&x});
    }
  // Rank 3, odd sizes (a SIMD tail), a custom ignore_index that is also a valid class.
  auto x3 = random_param("x3", {2, 3, 11}, rng);
  std::vector<std::int32_t> t3 = {10, 3, 0, 5, 9, 3};
  expect_gradients([&] { return cross_entropy(x3.use(), t3, {.ignore_index = 3, .label_smoothing = 0.1}); }, {&x3});
  // Rank 1: a single row.
  auto x1 = random_param("x1", {7}, rng);
  std::vector<std::int32_t> t1 = {6};
  expect_gradients([&] { return cross_entropy(x1.use(), t1); }, {&x1});
}

TEST_CASE("cross_entropy: all targets ignored gives 0 and a zero gradient (PyTorch: NaN)") {
  tape::current().reset();
  parameter<double> x("x", tensor<double>({2, 3}, {1, 2, 3, 4, 5, 6}));
  std::vector<std::int32_t> t = {-100, -100};
  auto loss = cross_entropy(x.use(), t);
  CHECK(loss.item() == 0.0);
  loss.backward();
  for (double g : x.grad()) CHECK(g == 0.0);
  // All weights zero: the same; masked rows are not even checked (a placeholder label 99 is fine).
  tape::current().reset();
  x.zero_grad();
  std::vector<std::int32_t> t2 = {99, 1};
  std::vector<double> w = {0.0, 0.0};
  auto masked = cross_entropy(x.use(), t2, {}, w);
  CHECK(masked.item() == 0.0);
  masked.backward();
  for (double g : x.grad()) CHECK(g == 0.0);
  // Sum and none over nothing are 0 as well.
  tape::current().reset();
  CHECK(cross_entropy(x.use(), t, {.reduction = reduction::sum}).item() == 0.0);
}

TEST_CASE("cross_entropy serial and tbb, native and scalar SIMD") {
  tape::current().reset();
  std::mt19937 rng(13);
  const int N = 512, C = 301;
  parameter<float> x("x", {N, C});
  fill_uniform(x.value(), rng, -4, 4);
  std::vector<std::int32_t> t(N);
  for (int r = 0; r < N; ++r) t[std::size_t(r)] = r % 17 == 0 ? -100 : int(rng() % C);
  auto run = [&]<class Exec, class Simd>() {
    tape::current().reset();
    x.zero_grad();
    auto l = cross_entropy<Exec, Simd>(x.use(), t, {.label_smoothing = 0.1});
    l.backward();
    return std::pair{l.item(), x.grad().clone()};
  };
  auto [l_tbb, g_tbb] = run.operator()<exec::tbb, simd::native>();
  auto [l_ser, g_ser] = run.operator()<exec::serial, simd::native>();
  auto [l_sca, g_sca] = run.operator()<exec::tbb, simd::scalar>();
  CHECK(l_tbb == l_ser);
  CHECK(std::equal(g_tbb.begin(), g_tbb.end(), g_ser.begin()));
  CHECK(l_sca == doctest::Approx(l_tbb).epsilon(1e-5));
  for (index_t i = 0; i < g_tbb.numel(); i += 97) CHECK(g_sca[i] == doctest::Approx(g_tbb[i]).epsilon(1e-4).scale(1e-6));
}

TEST_CASE("cross_entropy errors") {
  tape::current().reset();
  parameter<float> x("x", {4, 5});
  std::vector<std::int32_t> three = {0, 1, 2};
  CHECK_THROWS_WITH_AS(cross_entropy(x.use(), three), doctest::Contains("[4, 5]"), shape_error);
  CHECK_THROWS_WITH_AS(cross_entropy(x.use(), three), doctest::Contains("[3]"), shape_error);
  std::vector<std::int32_t> bad = {0, 1, 5, 2};
  CHECK_THROWS_WITH_AS(cross_entropy(x.use(), bad), doctest::Contains("target 5 at row 2"), shape_error);
  CHECK_THROWS_WITH_AS(cross_entropy(x.use(), bad), doctest::Contains("5 classes"), shape_error);
  std::vector<std::int32_t> neg = {0, -1, 1, 2};
  CHECK_THROWS_WITH_AS(cross_entropy(x.use(), neg), doctest::Contains("target -1"), shape_error);
  std::vector<std::int32_t> ok = {0, 1, 2, 3};
  std::vector<float> w = {1, 1};
  CHECK_THROWS_WITH_AS(cross_entropy(x.use(), ok, {}, w), doctest::Contains("weights [2]"), shape_error);
  CHECK_THROWS_AS(cross_entropy(x.use(), ok, {.label_smoothing = 1.5}), std::invalid_argument);
  parameter<float> empty("e", {4, 0});
  CHECK_THROWS_AS(cross_entropy(empty.use(), ok), shape_error);
}

TEST_CASE("bce_with_logits matches PyTorch, with pos_weight and target gradients") {
  using namespace torch_loss;
  struct fx_case {
    const char* name;
    bool pw;
    hybrid::reduction red;
    std::span<const double> loss, dx, dy;
  };
  const fx_case cases[] = {{"mean", false, reduction::mean, bce_mean_loss, bce_mean_dx, bce_mean_dy},
                           {"pw_mean", true, reduction::mean, bce_pw_mean_loss, bce_pw_mean_dx, bce_pw_mean_dy},
                           {"pw_none", true, reduction::none, bce_pw_none_loss, bce_pw_none_dx, bce_pw_none_dy}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    tape::current().reset();
    auto x = param_from("x", {3, 4}, bce_logits);
    auto y = param_from("y", {3, 4}, bce_targets);
    auto loss = c.pw ? bce_with_logits(x.use(), y.use(), bce_pos_weight, {.reduction = c.red})
                     : bce_with_logits(x.use(), y.use(), {.reduction = c.red});
    expect_close(loss.values(), c.loss);
    backward_with(loss, c.red == reduction::none ? std::span<const double>(bce_upstream) : std::span<const double>{});
    expect_close(x.grad().span(), c.dx);
    expect_close(y.grad().span(), c.dy);
  }
}

TEST_CASE("bce_with_logits: stable at extremes, gradients, constant targets") {
  tape::current().reset();
  tensor<float> x({4}, {100.f, -100.f, 0.f, 30.f}), y({4}, {1.f, 0.f, 1.f, 0.f});
  auto l = bce_with_logits(constant(x), y, {.reduction = reduction::none});
  CHECK(l[0] < 1e-40f);  // log1p(exp(-100)), no overflow or cancellation
  CHECK(l[1] < 1e-40f);
  CHECK(l[2] == doctest::Approx(std::log(2.0)));
  CHECK(l[3] == doctest::Approx(30.0));
  std::mt19937 rng(21);
  auto xs = random_param("x", {2, 3, 5}, rng, -5, 5);
  auto ys = random_param("y", {2, 3, 5}, rng, 0, 1);
  tensor<double> pw({5}, {0.5, 1, 2, 3, 0.1}), one({1}, {2.5});
  expect_gradients([&] { return bce_with_logits(xs.use(), ys.use()); }, {&xs, &ys});
  expect_gradients([&] { return bce_with_logits(xs.use(), ys.use(), pw.span(), {.reduction = reduction::sum}); },
                   {&xs, &ys});
  expect_gradients([&] { return bce_with_logits(xs.use(), ys.value(), one.span(), {.reduction = reduction::none}); },
                   {&xs});
}

TEST_CASE("mse_loss and l1_loss match PyTorch, including the target's gradient") {
  using namespace torch_loss;
  struct fx_case {
    const char* name;
    bool l1;
    hybrid::reduction red;
    std::span<const double> loss, dx, dy;
  };
  const fx_case cases[] = {{"mse_mean", false, reduction::mean, mse_mean_loss, mse_mean_dx, mse_mean_dy},
                           {"mse_sum", false, reduction::sum, mse_sum_loss, mse_sum_dx, mse_sum_dy},
                           {"l1_mean", true, reduction::mean, l1_mean_loss, l1_mean_dx, l1_mean_dy},
                           {"l1_sum", true, reduction::sum, l1_sum_loss, l1_sum_dx, l1_sum_dy}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    tape::current().reset();
    auto x = param_from("x", {3, 4}, reg_pred);
    auto y = param_from("y", {3, 4}, reg_target);
    auto loss = c.l1 ? l1_loss(x.use(), y.use(), {.reduction = c.red}) : mse_loss(x.use(), y.use(), {.reduction = c.red});
    expect_close(loss.values(), c.loss);
    loss.backward();
    expect_close(x.grad().span(), c.dx);
    expect_close(y.grad().span(), c.dy);
  }
}

TEST_CASE("mse_loss and l1_loss: naive values, gradients, constant targets, empty input") {
  std::mt19937 rng(31);
  auto x = random_param("x", {3, 2, 5}, rng);
  auto y = random_param("y", {3, 2, 5}, rng);
  tape::current().reset();
  double sq = 0, ab = 0;
  for (index_t i = 0; i < 30; ++i) {
    const double d = x.value()[i] - y.value()[i];
    sq += d * d, ab += std::abs(d);
  }
  CHECK(mse_loss(x.use(), y.value()).item() == doctest::Approx(sq / 30).epsilon(1e-14));
  CHECK(l1_loss(x.use(), y.value(), {.reduction = reduction::sum}).item() == doctest::Approx(ab).epsilon(1e-14));
  auto none = mse_loss(x.use(), y.use(), {.reduction = reduction::none});
  CHECK(none.shape() == x.shape());
  for (auto red : {reduction::mean, reduction::sum, reduction::none}) {
    expect_gradients([&] { return mse_loss(x.use(), y.use(), {.reduction = red}); }, {&x, &y});
    expect_gradients([&] { return l1_loss(x.use(), y.use(), {.reduction = red}); }, {&x, &y});
  }
  // A constant target gets no gradient; a rank-0 pair works; an empty mean is 0.
  expect_gradients([&] { return mse_loss(x.use(), y.value()); }, {&x});
  tape::current().reset();
  parameter<double> s("s", tensor<double>(hybrid::shape{}, {3.0}));
  CHECK(mse_loss(s.use(), tensor<double>(hybrid::shape{}, {1.0})).item() == 4.0);
  parameter<double> e("e", {0, 3});
  CHECK(l1_loss(e.use(), tensor<double>({0, 3})).item() == 0.0);
}

TEST_CASE("pointwise losses: serial and tbb identical on a large float input") {
  std::mt19937 rng(41);
  parameter<float> x("x", {700, 129}), y("y", {700, 129});
  fill_uniform(x.value(), rng, -3, 3);
  fill_uniform(y.value(), rng, 0, 1);
  auto run = [&]<class Exec>(int which) {
    tape::current().reset();
    x.zero_grad();
    y.zero_grad();
    var<float> l = which == 0   ? bce_with_logits<Exec>(x.use(), y.use())
                   : which == 1 ? mse_loss<Exec>(x.use(), y.use())
                                : l1_loss<Exec>(x.use(), y.use());
    l.backward();
    return std::tuple{l.item(), x.grad().clone(), y.grad().clone()};
  };
  for (int which = 0; which < 3; ++which) {
    CAPTURE(which);
    auto [la, gxa, gya] = run.operator()<exec::tbb>(which);
    auto [lb, gxb, gyb] = run.operator()<exec::serial>(which);
    CHECK(la == lb);
    CHECK(std::equal(gxa.begin(), gxa.end(), gxb.begin()));
    CHECK(std::equal(gya.begin(), gya.end(), gyb.begin()));
  }
}

TEST_CASE("pointwise loss shape errors name both shapes") {
  tape::current().reset();
  parameter<float> x("x", {3, 4}), y("y", {4, 3});
  CHECK_THROWS_WITH_AS(mse_loss(x.use(), y.use()), doctest::Contains("[3, 4]"), shape_error);
  CHECK_THROWS_WITH_AS(l1_loss(x.use(), y.value()), doctest::Contains("[4, 3]"), shape_error);
  CHECK_THROWS_WITH_AS(bce_with_logits(x.use(), y.use()), doctest::Contains("bce_with_logits"), shape_error);
  tensor<float> y2({3, 4}, 0.f), pw({3}, 1.f);
  CHECK_THROWS_WITH_AS(bce_with_logits(x.use(), y2, pw.span()), doctest::Contains("pos_weight [3]"), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
