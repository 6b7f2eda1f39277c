// Bayesian late fusion: gradients, the product-of-experts arithmetic against hand-computed numbers,
// absent modalities leaving the sum and the (n - 1) count, and its composition with a cross-entropy loss.
#include <hybrid/fuse/bayes.hpp>
#include <hybrid/ops/loss.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::bayes<3>::op<double, 4, 2>, double>);
static_assert(fuse::bayes<5>::op<float, 4, 2>::width == 5);

namespace {
// Experts with zero weights and bias log p output exactly p, whatever the input.
template <class Op>
void set_experts(Op& op, const std::vector<std::vector<double>>& posteriors, std::vector<double> prior = {}) {
  auto ps = parameters_of(op);
  for (std::size_t m = 0; m < posteriors.size(); ++m) {
    ps[2 * m]->value().fill(0.0);
    for (std::size_t c = 0; c < posteriors[m].size(); ++c) ps[2 * m + 1]->value()[index_t(c)] = std::log(posteriors[m][c]);
  }
  for (std::size_t c = 0; c < prior.size(); ++c) ps.back()->value()[index_t(c)] = std::log(prior[c]);
}
}  // namespace

TEST_CASE("bayes: names and gradients with absent samples (uniform and learned prior)") {
  fuse::bayes<3>::op<double, 2, 4> u;
  CHECK(names_of(u) == std::vector<std::string>{"fusion.expert.0.weight", "fusion.expert.0.bias",
                                                "fusion.expert.1.weight", "fusion.expert.1.bias"});
  inputs<double> in(4, {2, 4});
  in.present[0] = {1, 0, 1, 0};
  in.present[1] = {1, 1, 0, 0};
  check_fusion_gradients(u, in);
  fuse::bayes<3, fuse::bayes_prior::learned>::op<double, 2, 4, 3> l;
  CHECK(names_of(l).back() == "fusion.prior");
  std::mt19937 rng(2);
  fill_uniform(parameters_of(l).back()->value(), rng);
  inputs<double> in3(4, {2, 4, 3});
  in3.present[2] = {1, 0, 1, 0};
  in3.present[1] = {1, 1, 0, 0};
  check_fusion_gradients(l, in3);
}

TEST_CASE("bayes: the fused posterior is the renormalised product of experts over the prior") {
  // p1 = (0.8, 0.2), p2 = (0.6, 0.4), p3 = (0.5, 0.5).
  // Uniform prior, two experts: (0.48, 0.08) / 0.56 = (6/7, 1/7).
  // Prior (0.75, 0.25), two experts: (0.48 / 0.75, 0.08 / 0.25) = (0.64, 0.32) -> (2/3, 1/3).
  // Prior (0.75, 0.25), three experts: (0.24 / 0.5625, 0.04 / 0.0625) = (0.4267, 0.64) -> (0.4, 0.6).
  tape::current().reset();
  no_grad ng;
  {
    fuse::bayes<2>::op<double, 3, 2> f;
    set_experts(f, {{0.8, 0.2}, {0.6, 0.4}});
    inputs<double> in(3, {3, 2});
    in.present[1] = {1, 0, 0};
    in.present[0] = {1, 1, 0};
    const tensor<double> got = run(f, in).value();
    CHECK(std::exp(got(0, 0)) == doctest::Approx(6.0 / 7).epsilon(1e-12));
    CHECK(std::exp(got(0, 1)) == doctest::Approx(1.0 / 7).epsilon(1e-12));
    CHECK(std::exp(got(1, 0)) == doctest::Approx(0.8).epsilon(1e-12));  // one expert: its own posterior
    CHECK(std::exp(got(2, 0)) == doctest::Approx(0.5).epsilon(1e-12));  // none: the (uniform) prior
  }
  {
    fuse::bayes<2, fuse::bayes_prior::learned>::op<double, 3, 2, 1> f;
    set_experts(f, {{0.8, 0.2}, {0.6, 0.4}, {0.5, 0.5}}, {0.75, 0.25});
    inputs<double> in(4, {3, 2, 1});
    in.present[0] = {1, 1, 0, 0};
    in.present[1] = {1, 1, 1, 0};
    in.present[2] = {1, 0, 0, 0};
    const tensor<double> got = run(f, in).value();
    CHECK(std::exp(got(0, 0)) == doctest::Approx(0.4).epsilon(1e-12));
    CHECK(std::exp(got(0, 1)) == doctest::Approx(0.6).epsilon(1e-12));
    CHECK(std::exp(got(1, 0)) == doctest::Approx(2.0 / 3).epsilon(1e-12));
    CHECK(std::exp(got(1, 1)) == doctest::Approx(1.0 / 3).epsilon(1e-12));
    CHECK(std::exp(got(2, 0)) == doctest::Approx(0.6).epsilon(1e-12));   // one expert: no prior term
    CHECK(std::exp(got(3, 0)) == doctest::Approx(0.75).epsilon(1e-12));  // none: the learned prior
  }
}

TEST_CASE("bayes: cross_entropy on the output is the negative log-likelihood of the fused posterior") {
  fuse::bayes<3>::op<double, 2, 3> f;
  inputs<double> in(2, {2, 3});
  tape::current().reset();
  no_grad ng;
  const var<double> logp = run(f, in);
  const std::vector<std::int32_t> labels{2, 0};
  const double nll = cross_entropy(logp, std::span<const std::int32_t>(labels)).item();
  CHECK(nll == doctest::Approx(-(logp.values()[2] + logp.values()[3]) / 2).epsilon(1e-12));
}

TEST_CASE("bayes: every subset of modalities gives a valid output that ignores absent inputs") {
  fuse::bayes<4, fuse::bayes_prior::learned>::op<float, 5, 2, 3> f;
  inputs<float> in(8, {5, 2, 3});
  check_subsets_and_invariance(f, in);
}

}  // namespace HYBRID_TEST_UNIT
