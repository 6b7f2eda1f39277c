// GradNorm: the weight update against hand-computed values, and in a model: the representation
// gradient norms equal those of separate forward passes and the probe leaves the gradients alone.
#include <doctest/doctest.h>

#include <hybrid/mtl/gradnorm.hpp>

#include "tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("GradNorm updates the weights toward balanced gradient norms (hand-computed)") {
  mtl::gradnorm<>::op<double, 2> gn;
  parameter<double> a("a", {1}), b("b", {1});
  std::vector<double> norms;
  mtl::weighting_context<double> ctx;
  ctx.gradient_norms = [&](std::span<const var<double>> seeds) {
    CHECK(seeds.size() == 2);
    return norms;
  };
  auto step = [&](double la, double lb) {
    tape::current().reset();
    a.value()[0] = la;
    b.value()[0] = lb;
    return gn.terms({reshape(a.use(), shape{}), reshape(b.use(), shape{})}, ctx);
  };
  // Step 1: L = L(0) = (2, 1), norms (3, 1): G = (3, 1), targets (2, 2): w -= 0.025 (3, -1) = (0.925, 1.025),
  // renormalised to sum 2: (0.948718, 1.051282). The step's loss uses w = (1, 1).
  norms = {3, 1};
  auto t = step(2, 1);
  CHECK(t[0].item() == doctest::Approx(2));
  CHECK(gn.weights()[0] == doctest::Approx(0.9487179487179488));
  CHECK(gn.weights()[1] == doctest::Approx(1.0512820512820513));
  // Step 2: L = (1, 0.9), ratios (0.5, 0.9), norms (2, 2): G = (1.897, 2.103) against targets (1.207, 2.916).
  norms = {2, 2};
  t = step(1, 0.9);
  CHECK(t[1].item() == doctest::Approx(0.9 * 1.0512820512820513));
  CHECK(gn.weights()[0] == doctest::Approx(0.8987179487179487));
  CHECK(gn.weights()[1] == doctest::Approx(1.1012820512820514));
  // One task only: nothing to balance, no probe.
  norms = {};
  tape::current().reset();
  a.value()[0] = 1;
  const auto t1 = gn.terms({reshape(a.use(), shape{}), var<double>()}, mtl::weighting_context<double>{});
  CHECK(t1[0].item() == doctest::Approx(0.8987179487179487));
}

TEST_CASE("GradNorm in a model: norms of the fused gradients, gradients unchanged by the probe") {
  tiny::two_task<mtl::gradnorm<>> m;
  tiny::randomize(m, 1);
  const batch b = tiny::two_task_batch(6, 2);
  auto* weights = parameters_of(m).back();
  CHECK(weights->name() == "mtl.loss_weights");
  CHECK_FALSE(weights->trainable());

  std::array<double, 2> expected{};
  for (std::size_t k = 0; k < 2; ++k) {
    tape::current().reset();
    auto out = m(b, true);
    out.fused.retain_grad();  // an intermediate value: its adjoint is released after backward otherwise
    m.losses(out, b)[k].backward();
    double n = 0;
    for (double g : out.fused.grads()) n += g * g;
    expected[k] = std::sqrt(n);
  }
  tape::current().reset();
  zero_grad(m);
  auto out2 = m(b, true);
  var<double> loss = m.loss(out2, b);  // runs the probe: one pass per task through the heads
  for (const auto& g : tiny::gradients_of(m))
    for (double v : g) CHECK(v == 0.0);  // the probe left no trace
  loss.backward();
  const auto with_gradnorm = tiny::gradients_of(m);
  // The loss used w = (1, 1): the same gradients as equal weighting.
  tiny::two_task<> plain;
  auto pp = parameters_of(plain), mp = parameters_of(m);
  for (std::size_t p = 0; p < pp.size(); ++p) pp[p]->value() = mp[p]->value();
  tape::current().reset();
  auto out3 = plain(b, true);
  plain.loss(out3, b).backward();
  const auto equal = tiny::gradients_of(plain);
  for (std::size_t p = 0; p < equal.size(); ++p)
    for (std::size_t i = 0; i < equal[p].size(); ++i) CHECK(with_gradnorm[p][i] == doctest::Approx(equal[p][i]));
  // First step: ratios 1, so the update is -lr sign(G_k - mean G) |g_k| from the true norms.
  const double mean_g = (expected[0] + expected[1]) / 2;
  std::array<double, 2> w{};
  for (std::size_t k = 0; k < 2; ++k) w[k] = 1 - 0.025 * (expected[k] > mean_g ? expected[k] : -expected[k]);
  const double s = w[0] + w[1];
  CHECK(m.weighting().weights()[0] == doctest::Approx(2 * w[0] / s));
}

}  // namespace HYBRID_TEST_UNIT
