// concat, sum and mean: values against hand computations with absent samples, gradients (inputs included),
// every subset of modalities, absent samples' inputs ignored.
#include <hybrid/fuse/concat.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

static_assert(fuse::fusion_op<fuse::concat::op<double, 2, 3>, double>);
static_assert(fuse::concat::op<float, 2, 3, 4>::width == 9);
static_assert(fuse::sum<3>::op<float, 3, 3>::width == 3);
static_assert(fuse::mean<3>::op<double, 3, 3, 3>::width == 3);

TEST_CASE("concat, sum, mean: values with absent samples (absent = zeros; mean over the present)") {
  inputs<double> in(3, {2, 2});
  in.pooled[0].value() = tensor<double>({3, 2}, {1, 2, 3, 4, 5, 6});
  in.pooled[1].value() = tensor<double>({3, 2}, {10, 20, 30, 40, 50, 60});
  in.present[0] = {1, 0, 0};
  in.present[1] = {1, 1, 0};
  tape::current().reset();
  no_grad ng;
  const tensor<double> c = run(fuse::concat::op<double, 2, 2>{}, in).value();
  CHECK(c.shape() == shape{3, 4});
  const double want_c[] = {1, 2, 10, 20, 0, 0, 30, 40, 0, 0, 0, 0};
  for (index_t i = 0; i < 12; ++i) CHECK(c[i] == want_c[i]);
  const tensor<double> s = run(fuse::sum<2>::op<double, 2, 2>{}, in).value();
  const double want_s[] = {11, 22, 30, 40, 0, 0};
  for (index_t i = 0; i < 6; ++i) CHECK(s[i] == want_s[i]);
  const tensor<double> m = run(fuse::mean<2>::op<double, 2, 2>{}, in).value();
  const double want_m[] = {5.5, 11, 30, 40, 0, 0};  // sample 2 has no modality: zeros, not NaN
  for (index_t i = 0; i < 6; ++i) CHECK(m[i] == want_m[i]);
}

TEST_CASE("concat, sum, mean: gradients (inputs too) with absent samples; every subset; no parameters") {
  auto check = [](auto op, std::vector<index_t> widths) {
    CHECK(parameters_of(op).empty());
    inputs<double> in(4, widths, {}, 5);
    in.present[0] = {1, 0, 1, 0};
    in.present[1] = {1, 1, 0, 1};
    check_fusion_gradients(op, in);
    inputs<double> all(8, widths, {}, 6);
    check_subsets_and_invariance(op, all);
  };
  check(fuse::concat::op<double, 2, 3, 1>{}, {2, 3, 1});
  check(fuse::sum<3>::op<double, 3, 3, 3>{}, {3, 3, 3});
  check(fuse::mean<3>::op<double, 3, 3, 3>{}, {3, 3, 3});
}

}  // namespace HYBRID_TEST_UNIT
