// classify (cross-entropy, label smoothing, masks) and regress (MSE, L1, weighted masks): gradients
// against finite differences and values against naive loops.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/head/classify.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
// x W^T + b from the head's own parameters (weight [out, in], bias [out]).
template <class H>
std::vector<double> naive_linear(H& h, const tensor<double>& x) {
  auto ps = parameters_of(h);
  const tensor<double>&w = ps[0]->value(), &b = ps[1]->value();
  const index_t B = x.dim(0), I = x.dim(1), O = w.dim(0);
  std::vector<double> y(static_cast<std::size_t>(B * O));
  for (index_t r = 0; r < B; ++r)
    for (index_t o = 0; o < O; ++o) {
      double s = b[o];
      for (index_t i = 0; i < I; ++i) s += x(r, i) * w(o, i);
      y[static_cast<std::size_t>(r * O + o)] = s;
    }
  return y;
}
template <class H>
std::vector<parameter<double>*> with_input(H& h, parameter<double>& x) {
  auto ps = parameters_of(h);
  ps.push_back(&x);
  return ps;
}
}  // namespace

TEST_CASE("classify: label smoothing and per-sample masks, gradients and values") {
  constexpr double eps = 0.1;
  head::classify<"topic", 4, head::classify_options{.label_smoothing = eps}>::op<double, 5> h;
  static_assert(head::head_op<decltype(h), double>);
  parameter<double> x("x", {6, 5});
  std::mt19937 rng(1);
  fill_uniform(x.value(), rng);
  const head::task_labels y{{0, 3, head::no_label, 2, 1, 1}, {}, {1, 1, 1, 0, 0.5f, 1}};
  dropout_rng r;
  auto res = check_gradients([&] { return h.loss(h(x.use(), r, true), y); }, with_input(h, x));
  INFO(res.report());
  CHECK(res.ok);

  tape::current().reset();
  const double got = h.loss(h(x.use(), r, false), y).item();
  const auto logits = naive_linear(h, x.value());
  double total = 0, wsum = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    if (y.classes[i] == head::no_label || y.weights[i] == 0) continue;
    const double* z = &logits[i * 4];
    double m = z[0], s = 0, mean = 0;
    for (int c = 0; c < 4; ++c) m = std::max(m, z[c]);
    for (int c = 0; c < 4; ++c) s += std::exp(z[c] - m), mean += z[c] / 4;
    const double lse = m + std::log(s);
    total += y.weights[i] * ((1 - eps) * (lse - z[y.classes[i]]) + eps * (lse - mean));
    wsum += y.weights[i];
  }
  CHECK(got == doctest::Approx(total / wsum).epsilon(1e-12));
  CHECK(head::classify<"topic", 4>::name.view() == "topic");
}

TEST_CASE("classify without a linear layer: no parameters, the input is the logits") {
  head::classify<"topic", 3, head::classify_options{.linear = false}>::op<double, 3> h;
  static_assert(head::head_op<decltype(h), double>);
  CHECK(parameters_of(h).empty());
  parameter<double> x("x", {4, 3});
  std::mt19937 rng(2);
  fill_uniform(x.value(), rng);
  const head::task_labels y{{2, 0, head::no_label, 1}, {}, {}};
  dropout_rng r;
  const var<double> out = h(x.use(), r, false);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(out.data()[i] == x.value()[i]);
  auto res = check_gradients([&] { return h.loss(h(x.use(), r, true), y); }, {&x});
  INFO(res.report());
  CHECK(res.ok);
  // The loss is the mean cross-entropy of the labelled rows, computed on the input itself.
  tape::current().reset();
  const double got = h.loss(h(x.use(), r, false), y).item();
  double total = 0;
  for (index_t i : {0, 1, 3}) {
    double s = 0;
    for (index_t c = 0; c < 3; ++c) s += std::exp(x.value()(i, c));
    total += std::log(s) - x.value()(i, y.classes[static_cast<std::size_t>(i)]);
  }
  CHECK(got == doctest::Approx(total / 3).epsilon(1e-12));
}

TEST_CASE("regress: MSE and L1 over the labelled samples, NaN placeholders ignored") {
  parameter<double> x("x", {5, 3});
  std::mt19937 rng(2);
  fill_uniform(x.value(), rng);
  head::task_labels y{{}, tensor<float>({5, 2}, {0.5f, -1, 0.2f, 0.3f, NAN, NAN, 1, 0, -0.4f, 0.9f}), {1, 2, 0, 1, 0.5f}};
  dropout_rng r;
  auto check = [&](auto& h, bool l1) {
    auto res = check_gradients([&] { return h.loss(h(x.use(), r, true), y); }, with_input(h, x));
    INFO(res.report());
    CHECK(res.ok);
    tape::current().reset();
    const double got = h.loss(h(x.use(), r, false), y).item();
    const auto pred = naive_linear(h, x.value());
    double total = 0, wsum = 0;
    for (std::size_t i = 0; i < 5; ++i) {
      if (y.weights[i] == 0) continue;
      for (std::size_t k = 0; k < 2; ++k) {
        const double d = pred[i * 2 + k] - y.values[static_cast<index_t>(i * 2 + k)];
        total += y.weights[i] * (l1 ? std::abs(d) : d * d);
      }
      wsum += 2 * y.weights[i];
    }
    CHECK(std::isfinite(got));
    CHECK(got == doctest::Approx(total / wsum).epsilon(1e-12));
  };
  head::regress<"score", 2>::op<double, 3> mse;
  head::regress<"score", 2, head::regression_loss::l1>::op<double, 3> l1;
  check(mse, false);
  check(l1, true);

  // No labelled sample: 0, and a zero (not NaN) gradient.
  y.weights = {0, 0, 0, 0, 0};
  tape::current().reset();
  parameter<double> xs("x", x.value());
  var<double> l = mse.loss(mse(xs.use(), r, true), y);
  CHECK(l.item() == 0.0);
  l.backward();
  for (double g : xs.grad()) CHECK(g == 0.0);
  CHECK_FALSE(head::labelled(y));

  y.weights = {1, 1};
  tape::current().reset();
  CHECK_THROWS_AS(mse.loss(mse(x.use(), r, true), y), shape_error);
  y.values = tensor<float>({5, 1});
  CHECK_THROWS_AS(mse.loss(mse(x.use(), r, true), y), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
