// Gated multimodal unit: gradients, the paper's bimodal form, absent modalities and every subset.
#include <hybrid/fuse/gated.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::gated<4>::op<double, 3, 5>, double>);
static_assert(fuse::gated<7>::op<float, 3, 5, 2>::width == 7);

TEST_CASE("gated: names, shapes and gradients with absent samples (softmax and sigmoid gates)") {
  fuse::gated<4>::op<double, 3, 5> soft;
  const auto names = names_of(soft);
  CHECK(names == std::vector<std::string>{"fusion.proj.0.weight", "fusion.proj.0.bias", "fusion.proj.1.weight",
                                          "fusion.proj.1.bias", "fusion.gate.weight", "fusion.gate.bias"});
  inputs<double> in(4, {3, 5});
  in.present[1] = {1, 0, 1, 0};
  in.present[0] = {1, 1, 0, 0};
  check_fusion_gradients(soft, in);
  fuse::gated<3, fuse::gmu_gate::sigmoid>::op<double, 2, 4, 3> sig;
  inputs<double> in3(3, {2, 4, 3});
  in3.present[2] = {0, 1, 1};
  check_fusion_gradients(sig, in3);
}

TEST_CASE("gated: two modalities with softmax gates are z * h1 + (1 - z) * h2 of the paper") {
  fuse::gated<3>::op<double, 2, 4> g;
  inputs<double> in(2, {2, 4}, {}, 5);
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(g, in).value();
  auto ps = parameters_of(g);  // proj.0.w, proj.0.b, proj.1.w, proj.1.b, gate.w, gate.b
  for (index_t b = 0; b < 2; ++b) {
    std::vector<double> xcat;
    for (index_t c = 0; c < 2; ++c) xcat.push_back(in.pooled[0].value()(b, c));
    for (index_t c = 0; c < 4; ++c) xcat.push_back(in.pooled[1].value()(b, c));
    auto affine = [&](parameter<double>& w, parameter<double>& bias, index_t row, index_t off, index_t n) {
      double s = bias.value()[row];
      for (index_t c = 0; c < n; ++c) s += w.value()(row, c) * xcat[static_cast<std::size_t>(off + c)];
      return s;
    };
    for (index_t f = 0; f < 3; ++f) {
      const double h1 = std::tanh(affine(*ps[0], *ps[1], f, 0, 2)), h2 = std::tanh(affine(*ps[2], *ps[3], f, 2, 4));
      const double a1 = affine(*ps[4], *ps[5], f * 2, 0, 6), a2 = affine(*ps[4], *ps[5], f * 2 + 1, 0, 6);
      const double z = 1 / (1 + std::exp(a2 - a1));
      CHECK(got(b, f) == doctest::Approx(z * h1 + (1 - z) * h2).epsilon(1e-12));
    }
  }
}

TEST_CASE("gated: a sample with one modality gets exactly that modality's projection") {
  fuse::gated<3>::op<double, 2, 4> g;
  inputs<double> in(2, {2, 4});
  in.present[1] = {0, 1};
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(g, in).value();
  auto ps = parameters_of(g);
  for (index_t f = 0; f < 3; ++f) {
    double s = ps[1]->value()[f];
    for (index_t c = 0; c < 2; ++c) s += ps[0]->value()(f, c) * in.pooled[0].value()(0, c);
    CHECK(got(0, f) == doctest::Approx(std::tanh(s)).epsilon(1e-12));
  }
}

TEST_CASE("gated: every subset of modalities gives a valid output that ignores absent inputs") {
  fuse::gated<5>::op<float, 3, 6, 2> soft;
  inputs<float> in(8, {3, 6, 2});
  check_subsets_and_invariance(soft, in);
  fuse::gated<5, fuse::gmu_gate::sigmoid>::op<float, 3, 6, 2> sig;
  check_subsets_and_invariance(sig, in);
}

TEST_CASE("gated: an input of the wrong width is a shape_error naming both shapes") {
  fuse::gated<3>::op<double, 2, 4> g;
  inputs<double> in(2, {2, 5});
  tape::current().reset();
  CHECK_THROWS_WITH_AS(run(g, in), doctest::Contains("[2, 5]"), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
