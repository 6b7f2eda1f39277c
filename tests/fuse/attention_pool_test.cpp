// Attention pooling over modalities: gradients, weights against a hand computation, weights summing to
// one over the present modalities, every subset.
#include <hybrid/fuse/attention_pool.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::attention_pool<4>::op<double, 3, 5>, double>);

TEST_CASE("attention_pool: names and gradients with absent samples") {
  fuse::attention_pool<3>::op<double, 2, 4, 3> f;
  CHECK(names_of(f) == std::vector<std::string>{"fusion.proj.0.weight", "fusion.proj.0.bias", "fusion.proj.1.weight",
                                                "fusion.proj.1.bias", "fusion.proj.2.weight", "fusion.proj.2.bias",
                                                "fusion.query", "fusion.priority"});
  std::mt19937 rng(4);
  fill_uniform(parameters_of(f).back()->value(), rng);  // nonzero priorities
  inputs<double> in(4, {2, 4, 3});
  in.present[0] = {1, 0, 1, 0};
  in.present[2] = {1, 1, 0, 0};
  check_fusion_gradients(f, in);
}

TEST_CASE("attention_pool: weights and output against a hand computation") {
  fuse::attention_pool<2>::op<double, 1, 1> f;
  auto ps = parameters_of(f);  // proj.0 (w, b), proj.1 (w, b), query, priority
  ps[0]->value() = tensor<double>({2, 1}, {1.0, 0.0});
  ps[1]->value() = tensor<double>({2}, {0.0, 0.5});
  ps[2]->value() = tensor<double>({2, 1}, {0.0, 2.0});
  ps[3]->value() = tensor<double>({2}, {-0.5, 0.0});
  ps[4]->value() = tensor<double>({2}, {1.0, 2.0});
  ps[5]->value() = tensor<double>({2}, {0.25, 0.0});
  inputs<double> in(1, {1, 1});
  in.pooled[0].value()[0] = 0.3;
  in.pooled[1].value()[0] = -0.2;
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(f, in).value();
  const double u0[2] = {std::tanh(0.3), std::tanh(0.5)}, u1[2] = {std::tanh(-0.5), std::tanh(-0.4)};
  const double s0 = u0[0] + 2 * u0[1] + 0.25, s1 = u1[0] + 2 * u1[1];
  const double a0 = 1 / (1 + std::exp(s1 - s0)), a1 = 1 - a0;
  CHECK(f.weights()(0, 0) == doctest::Approx(a0).epsilon(1e-12));
  CHECK(f.weights()(0, 1) == doctest::Approx(a1).epsilon(1e-12));
  CHECK(got(0, 0) == doctest::Approx(a0 * u0[0] + a1 * u1[0]).epsilon(1e-12));
  CHECK(got(0, 1) == doctest::Approx(a0 * u0[1] + a1 * u1[1]).epsilon(1e-12));
}

TEST_CASE("attention_pool: weights sum to one over the present modalities, zero on absent ones") {
  fuse::attention_pool<4>::op<float, 5, 2, 3> f;
  inputs<float> in(8, {5, 2, 3});
  check_subsets_and_invariance(f, in);
  const tensor<float>& w = f.weights();
  REQUIRE(w.shape() == hybrid::shape{8, 3});
  for (index_t b = 0; b < 8; ++b) {
    double total = 0;
    for (index_t m = 0; m < 3; ++m) {
      if (!((b >> m) & 1)) CHECK(w(b, m) == 0.0f);
      CHECK(w(b, m) >= 0.0f);
      total += w(b, m);
    }
    CHECK(total == doctest::Approx(b == 0 ? 0.0 : 1.0).epsilon(1e-6));
  }
}

}  // namespace HYBRID_TEST_UNIT
