// Low-rank multimodal fusion: gradients, sum_r prod_m (W_m^(r) [x_m; 1]) + b against naive loops.
#include <hybrid/fuse/low_rank.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::low_rank<4, 2>::op<double, 3, 5>, double>);

TEST_CASE("low_rank: names and gradients with absent samples") {
  fuse::low_rank<3, 2>::op<double, 2, 4, 3> f;
  CHECK(names_of(f) == std::vector<std::string>{"fusion.factor.0.weight", "fusion.factor.0.bias",
                                                "fusion.factor.1.weight", "fusion.factor.1.bias",
                                                "fusion.factor.2.weight", "fusion.factor.2.bias", "fusion.bias"});
  CHECK(parameters_of(f)[2]->shape() == hybrid::shape{6, 4});
  inputs<double> in(3, {2, 4, 3});
  in.present[1] = {0, 1, 1};
  in.present[2] = {1, 0, 0};
  check_fusion_gradients(f, in);
}

TEST_CASE("low_rank: values against the factored formula") {
  constexpr index_t W = 3, R = 2;
  fuse::low_rank<W, R>::op<double, 2, 3> f;
  auto ps = parameters_of(f);
  std::mt19937 rng(6);
  fill_uniform(ps.back()->value(), rng);  // a nonzero output bias
  inputs<double> in(2, {2, 3}, {}, 9);
  in.present[0] = {0, 1};
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(f, in).value();
  for (index_t b = 0; b < 2; ++b)
    for (index_t o = 0; o < W; ++o) {
      double want = ps[4]->value()[o];
      for (index_t r = 0; r < R; ++r) {
        double prod = 1;
        for (std::size_t m = 0; m < 2; ++m) {
          const bool here = in.present[m].empty() || in.present[m][std::size_t(b)];
          double s = ps[2 * m + 1]->value()[r * W + o];  // the column of the appended 1
          for (index_t c = 0; c < in.pooled[m].shape()[1]; ++c)
            s += here ? ps[2 * m]->value()(r * W + o, c) * in.pooled[m].value()(b, c) : 0.0;
          prod *= s;
        }
        want += prod;
      }
      CHECK(got(b, o) == doctest::Approx(want).epsilon(1e-12));
    }
}

TEST_CASE("low_rank: every subset of modalities gives a valid output that ignores absent inputs") {
  fuse::low_rank<4, 3>::op<float, 5, 2, 3> f;
  inputs<float> in(8, {5, 2, 3});
  check_subsets_and_invariance(f, in);
}

}  // namespace HYBRID_TEST_UNIT
