// multilabel: BCE-with-logits over independent labels, per-sample masks, pos_weight; gradients against
// finite differences, values against a naive loop.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/head/multilabel.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z))); }

// The mean over labelled samples and labels of pw y softplus(-z) + (1 - y) softplus(z).
template <class H>
double naive_loss(H& h, const tensor<double>& x, const head::task_labels& y, double pw) {
  auto ps = parameters_of(h);
  const tensor<double>&w = ps[0]->value(), &b = ps[1]->value();
  const index_t B = x.dim(0), I = x.dim(1), K = w.dim(0);
  double total = 0, wsum = 0;
  for (index_t r = 0; r < B; ++r) {
    const double sw = y.weights.empty() ? 1.0 : y.weights[static_cast<std::size_t>(r)];
    if (sw == 0) continue;
    for (index_t k = 0; k < K; ++k) {
      double z = b[k];
      for (index_t i = 0; i < I; ++i) z += x(r, i) * w(k, i);
      const double t = y.values(r, k);
      total += sw * (pw * t * softplus(-z) + (1 - t) * softplus(z));
      wsum += sw;
    }
  }
  return wsum ? total / wsum : 0.0;
}
}  // namespace

TEST_CASE("multilabel: gradients, values, masks and pos_weight") {
  using plain = head::multilabel<"keywords", 4>;
  using weighted = head::multilabel<"keywords", 4, head::multilabel_options{.pos_weight = 3}>;
  static_assert(plain::name.view() == "keywords" && plain::outputs == 4);
  plain::op<double, 3> h;
  weighted::op<double, 3> hw;
  static_assert(head::head_op<decltype(h), double>);
  parameter<double> x("x", {5, 3});
  std::mt19937 rng(3);
  fill_uniform(x.value(), rng);
  head::task_labels y{{}, tensor<float>({5, 4}), {1, 0, 0.5f, 1, 2}};
  for (index_t i = 0; i < 20; ++i) y.values[i] = (i * 7 % 3 == 0) ? 1.0f : (i % 5 == 0 ? 0.3f : 0.0f);
  y.values(1, 2) = NAN;  // unlabelled sample: a placeholder that must not leak
  dropout_rng r;
  auto check = [&](auto& head, double pw) {
    auto ps = parameters_of(head);
    ps.push_back(&x);
    auto res = check_gradients([&] { return head.loss(head(x.use(), r, true), y); }, ps);
    INFO(res.report());
    CHECK(res.ok);
    tape::current().reset();
    CHECK(head.loss(head(x.use(), r, false), y).item() == doctest::Approx(naive_loss(head, x.value(), y, pw)).epsilon(1e-12));
  };
  check(h, 1);
  check(hw, 3);

  SUBCASE("sigmoid outputs") {
    tape::current().reset();
    var<double> logits = h(x.use(), r, false);
    var<double> p = decltype(h)::probabilities(logits);
    for (index_t i = 0; i < p.numel(); ++i) CHECK(p[i] == doctest::Approx(1 / (1 + std::exp(-logits[i]))));
  }
  SUBCASE("no labelled sample: zero loss and gradient, no NaN") {
    y.weights.assign(5, 0);
    tape::current().reset();
    parameter<double> xs("x", x.value());
    var<double> l = h.loss(h(xs.use(), r, true), y);
    CHECK(l.item() == 0.0);
    l.backward();
    for (double g : xs.grad()) CHECK(g == 0.0);
  }
  SUBCASE("target shape mismatch") {
    y.values = tensor<float>({5, 3});
    tape::current().reset();
    CHECK_THROWS_WITH_AS(h.loss(h(x.use(), r, true), y), doctest::Contains("keywords"), shape_error);
  }
}

}  // namespace HYBRID_TEST_UNIT
