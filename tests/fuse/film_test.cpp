// FiLM: gradients, h' = gamma * h + beta against a hand computation, identity without conditioning.
#include <hybrid/fuse/film.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::film<4>::op<double, 4, 3>, double>);
static_assert(fuse::film<3, 1>::op<float, 5, 3, 2>::width == 3);

TEST_CASE("film: names and gradients with absent samples") {
  fuse::film<3, 1>::op<double, 2, 3, 4> f;
  CHECK(names_of(f) == std::vector<std::string>{"fusion.gamma.weight", "fusion.gamma.bias", "fusion.beta.weight",
                                                "fusion.beta.bias"});
  inputs<double> in(4, {2, 3, 4});
  in.present[0] = {1, 0, 1, 0};
  in.present[2] = {1, 1, 0, 0};
  in.present[1] = {0, 1, 1, 1};
  check_fusion_gradients(f, in);
  fuse::film<4>::op<double, 4, 2> two;
  inputs<double> in2(3, {4, 2});
  check_fusion_gradients(two, in2);
}

TEST_CASE("film: values against a hand computation; no conditioning leaves h unchanged") {
  fuse::film<2>::op<double, 2, 1> f;
  auto ps = parameters_of(f);  // gamma.weight [2, 1], gamma.bias [2], beta.weight [2, 1], beta.bias [2]
  ps[0]->value() = tensor<double>({2, 1}, {0.5, -1.0});
  ps[1]->value() = tensor<double>({2}, {0.25, 0.0});
  ps[2]->value() = tensor<double>({2, 1}, {2.0, 0.0});
  ps[3]->value() = tensor<double>({2}, {0.0, 1.0});
  inputs<double> in(2, {2, 1});
  in.pooled[0].value() = tensor<double>({2, 2}, {1.0, 2.0, 3.0, -4.0});
  in.pooled[1].value() = tensor<double>({2, 1}, {2.0, 5.0});
  in.present[1] = {1, 0};
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(f, in).value();
  // Sample 0: c = 2, gamma = 1 + (0.5 * 2 + 0.25, -1 * 2) = (2.25, -1), beta = (4, 1).
  CHECK(got(0, 0) == doctest::Approx(2.25 * 1.0 + 4.0));
  CHECK(got(0, 1) == doctest::Approx(-1.0 * 2.0 + 1.0));
  // Sample 1 has no conditioning modality: h itself.
  CHECK(got(1, 0) == 3.0);
  CHECK(got(1, 1) == -4.0);
}

TEST_CASE("film: every subset of modalities gives a valid output that ignores absent inputs") {
  fuse::film<3, 2>::op<float, 4, 2, 3> f;
  inputs<float> in(8, {4, 2, 3});
  check_subsets_and_invariance(f, in);
}

}  // namespace HYBRID_TEST_UNIT
