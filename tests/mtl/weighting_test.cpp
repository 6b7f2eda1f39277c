// Loss weighting: equal, fixed, uncertainty, DWA and random weighting against hand-computed values,
// as model options (names, gradients), and masked tasks (no labels: no term, no NaN).
#include <doctest/doctest.h>

#include <hybrid/mtl/weighting.hpp>

#include "tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
// Two scalar "losses" that are leaves, so the terms' gradients can be checked.
struct scalar_losses {
  parameter<double> a{"a", tensor<double>({1}, {1.5})}, b{"b", tensor<double>({1}, {0.4})};
  std::array<var<double>, 2> use() const {
    return {reshape(a.use(), shape{}), reshape(b.use(), shape{})};
  }
};
template <std::size_t K>
double total(const std::array<var<double>, K>& terms) {
  double s = 0;
  for (const auto& t : terms)
    if (t.valid()) s += t.item();
  return s;
}
}  // namespace

TEST_CASE("equal and fixed weighting") {
  tape::current().reset();
  scalar_losses l;
  mtl::equal_weighting::op<double, 2> eq;
  CHECK(total(eq.terms(l.use(), {})) == doctest::Approx(1.9));
  CHECK(eq.weights() == std::array<double, 2>{1, 1});
  mtl::fixed_weighting<mtl::task_weights{0.5, 3}>::op<double, 2> fw;
  CHECK(total(fw.terms(l.use(), {})) == doctest::Approx(0.75 + 1.2));
  CHECK(fw.weights() == std::array<double, 2>{0.5, 3});
  using three = mtl::fixed_weighting<mtl::task_weights{1, 2, 3}>::op<double, 2>;
  CHECK_THROWS_AS(three(), std::invalid_argument);
  // An absent task has no term.
  auto ls = l.use();
  ls[1] = {};
  const auto t = fw.terms(ls, {});
  CHECK_FALSE(t[1].valid());
  CHECK(t[0].item() == doctest::Approx(0.75));
}

TEST_CASE("uncertainty weighting: exp(-s) L + s, values and gradients") {
  mtl::uncertainty_weighting::op<double, 2> uw;
  uw.log_vars().value()[0] = 0.3;
  uw.log_vars().value()[1] = -0.2;
  scalar_losses l;
  tape::current().reset();
  const auto terms = uw.terms(l.use(), {});
  CHECK(terms[0].shape() == shape{});
  CHECK(total(terms) == doctest::Approx(std::exp(-0.3) * 1.5 + 0.3 + std::exp(0.2) * 0.4 - 0.2));
  CHECK(uw.weights()[1] == doctest::Approx(std::exp(0.2)));
  var<double> sum = terms[0] + terms[1];
  sum.backward();
  CHECK(uw.log_vars().grad()[0] == doctest::Approx(1 - std::exp(-0.3) * 1.5));  // d/ds = 1 - exp(-s) L
  CHECK(l.a.grad()[0] == doctest::Approx(std::exp(-0.3)));
  auto res = check_gradients(
      [&] {
        const auto t = uw.terms(l.use(), {});
        return var<double>(t[0] + t[1]);
      },
      {&uw.log_vars(), &l.a, &l.b});
  INFO(res.report());
  CHECK(res.ok);
  // An absent task adds neither its loss nor its log-variance.
  tape::current().reset();
  uw.log_vars().zero_grad();
  auto ls = l.use();
  ls[0] = {};
  const auto t = uw.terms(ls, {});
  CHECK_FALSE(t[0].valid());
  t[1].backward();
  CHECK(uw.log_vars().grad()[0] == 0.0);
}

TEST_CASE("DWA: w = K softmax(r / T) from the last two epochs' mean losses") {
  mtl::dwa<mtl::dwa_options{.temperature = 2}>::op<double, 2> d;
  parameter<double> a("a", {1}), b("b", {1});
  auto feed = [&](double la, double lb) {
    tape::current().reset();
    a.value()[0] = la;
    b.value()[0] = lb;
    return d.terms({reshape(a.use(), shape{}), reshape(b.use(), shape{})}, {});
  };
  feed(2.5, 1);  // epoch 1: means (2, 1)
  feed(1.5, 1);
  d.end_epoch();
  CHECK(d.weights() == std::array<double, 2>{1, 1});
  feed(1, 0.9);  // epoch 2: means (1, 0.9)
  d.end_epoch();
  // r = (0.5, 0.9): w = 2 exp(r/2) / (exp(0.25) + exp(0.45)).
  const double z = std::exp(0.25) + std::exp(0.45);
  CHECK(d.weights()[0] == doctest::Approx(2 * std::exp(0.25) / z));
  CHECK(d.weights()[1] == doctest::Approx(2 * std::exp(0.45) / z));
  const auto t = feed(1, 1);
  CHECK(t[0].item() == doctest::Approx(2 * std::exp(0.25) / z));
}

TEST_CASE("random loss weighting: softmax of seeded normal draws, new each step") {
  mtl::random_weighting<mtl::random_weighting_options{.seed = 99}>::op<double, 3> rw;
  std::mt19937_64 rng(99);
  std::normal_distribution<double> normal;
  scalar_losses l;
  for (int step = 0; step < 3; ++step) {
    tape::current().reset();
    auto ls = l.use();
    const std::array<var<double>, 3> three{ls[0], ls[1], ls[0]};
    const auto t = rw.terms(three, {});
    double e[3], z = 0;
    for (double& v : e) z += (v = std::exp(normal(rng)));
    for (int k = 0; k < 3; ++k) CHECK(rw.weights()[static_cast<std::size_t>(k)] == doctest::Approx(e[k] / z));
    CHECK(t[2].item() == doctest::Approx(1.5 * e[2] / z));
  }
}

namespace {
using uw_net = tiny::two_task<mtl::uncertainty_weighting>;
}

TEST_CASE("a weighting is the model's 4th argument: names, loss and gradients") {
  static_assert(std::is_same_v<tiny::two_task<>::weighting_recipe, mtl::equal_weighting>);
  uw_net m;
  auto names = parameters_of(m);
  CHECK(names.back()->name() == "mtl.log_vars");
  m.weighting().log_vars().value()[0] = 0.4;
  const batch b = tiny::two_task_batch(5, 3);
  tape::current().reset();
  auto out = m(b, true);
  const auto l = m.losses(out, b);
  CHECK(m.loss(out, b).item() ==
        doctest::Approx(std::exp(-0.4) * l[0].item() + 0.4 + l[1].item()));
  tiny::randomize(m, 4);
  auto res = check_gradients([&] { return m.loss(m(b, true), b); }, parameters_of(m), {.rtol = 1e-5, .atol = 1e-9});
  INFO(res.report());
  CHECK(res.ok);
}

TEST_CASE("a task without labels in a batch contributes nothing and no NaN") {
  uw_net m;
  tiny::randomize(m, 5);
  batch b = tiny::two_task_batch(6, 6);
  for (int how = 0; how < 2; ++how) {
    batch masked = b;
    if (how == 0) masked.labels["topic"].classes.assign(6, head::no_label);
    else masked.labels["topic"].weights.assign(6, 0.0f);
    zero_grad(m);
    tape::current().reset();
    auto out = m(masked, true);
    CHECK_FALSE(m.losses(out, masked)[0].valid());
    var<double> l = m.loss(out, masked);
    // Only the score task: exp(-s1) L1 + s1.
    const double s1 = m.weighting().log_vars().value()[1];
    CHECK(l.item() == doctest::Approx(std::exp(-s1) * m.losses(out, masked)[1].item() + s1));
    l.backward();
    for (auto* p : parameters_of(m))
      for (double g : p->grad()) CHECK(std::isfinite(g));
    CHECK(m.weighting().log_vars().grad()[0] == 0.0);
    CHECK(m.head<"topic">().loss(out["topic"], masked.labels["topic"]).item() == 0.0);  // direct call: 0, not NaN
  }
  b.labels.clear();
  tape::current().reset();
  auto out = m(b, true);
  CHECK_THROWS_AS(m.loss(out, b), std::invalid_argument);
}

TEST_CASE("model::end_epoch drives DWA") {
  tiny::two_task<mtl::dwa<>> m;
  const batch b = tiny::two_task_batch(4, 7);
  for (int epoch = 0; epoch < 3; ++epoch) {
    tape::current().reset();
    auto out = m(b, true);
    (void)m.loss(out, b);
    m.end_epoch();
  }
  // The same batch every epoch: the ratios are 1, the weights stay 1.
  CHECK(m.weighting().weights()[0] == doctest::Approx(1));
  tiny::two_task<> plain;
  plain.end_epoch();  // no-op for weightings without epochs
}

}  // namespace HYBRID_TEST_UNIT
