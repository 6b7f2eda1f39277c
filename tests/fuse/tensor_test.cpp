// Tensor fusion: gradients, the outer product of [1; h_m] against a naive triple loop, absent modalities.
#include <hybrid/fuse/tensor.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::tensor_fusion<4, 2>::op<double, 3, 5>, double>);

TEST_CASE("tensor_fusion: names and gradients with absent samples (two and three modalities)") {
  fuse::tensor_fusion<3, 2>::op<double, 2, 3, 2> f;
  CHECK(names_of(f) == std::vector<std::string>{"fusion.proj.0.weight", "fusion.proj.0.bias", "fusion.proj.1.weight",
                                                "fusion.proj.1.bias", "fusion.proj.2.weight", "fusion.proj.2.bias",
                                                "fusion.out.weight", "fusion.out.bias"});
  CHECK(parameters_of(f)[6]->shape() == hybrid::shape{3, 27});
  inputs<double> in(3, {2, 3, 2});
  in.present[0] = {1, 0, 1};
  in.present[2] = {0, 1, 1};
  check_fusion_gradients(f, in);
  fuse::tensor_fusion<2, 3>::op<double, 4, 2> g;
  inputs<double> in2(2, {4, 2});
  in2.present[1] = {0, 1};
  check_fusion_gradients(g, in2);
}

TEST_CASE("tensor_fusion: values against a naive outer product") {
  fuse::tensor_fusion<2, 2>::op<double, 3, 2, 2> f;
  inputs<double> in(2, {3, 2, 2}, {}, 4);
  in.present[1] = {1, 0};
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(f, in).value();
  auto ps = parameters_of(f);
  for (index_t b = 0; b < 2; ++b) {
    std::array<std::array<double, 3>, 3> z{};  // [1; h_m]
    for (std::size_t m = 0; m < 3; ++m) {
      z[m][0] = 1;
      const bool here = in.present[m].empty() || in.present[m][std::size_t(b)];
      for (index_t p = 0; p < 2; ++p) {
        double s = ps[2 * m + 1]->value()[p];
        for (index_t c = 0; c < in.pooled[m].shape()[1]; ++c) s += ps[2 * m]->value()(p, c) * in.pooled[m].value()(b, c);
        z[m][std::size_t(p) + 1] = here ? s : 0.0;
      }
    }
    for (index_t o = 0; o < 2; ++o) {
      double want = ps[7]->value()[o];
      for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 3; ++j)
          for (index_t k = 0; k < 3; ++k)
            want += ps[6]->value()(o, i * 9 + j * 3 + k) * z[0][std::size_t(i)] * z[1][std::size_t(j)] * z[2][std::size_t(k)];
      CHECK(got(b, o) == doctest::Approx(want).epsilon(1e-12));
    }
  }
}

TEST_CASE("tensor_fusion: every subset of modalities gives a valid output that ignores absent inputs") {
  fuse::tensor_fusion<4, 3>::op<float, 5, 2, 3> f;
  inputs<float> in(8, {5, 2, 3});
  check_subsets_and_invariance(f, in);
}

}  // namespace HYBRID_TEST_UNIT
