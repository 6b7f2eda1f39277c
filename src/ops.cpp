// The prebuilt float instantiations of the ops most programs use (hybrid::compiled; see hybrid/core/compiled.hpp).
#include "hybrid/ops/dropout.hpp"
#include "hybrid/ops/fused_linear.hpp"
#include "hybrid/ops/layer_norm.hpp"
#include "hybrid/ops/loss.hpp"
#include "hybrid/ops/matmul.hpp"
#include "hybrid/ops/shape_ops.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid {
template var<float> matmul<gemm::fastest, exec::tbb, float>(const var<float>&, const var<float>&, transpose_flags);
template var<float> fused_linear<gemm::fastest, exec::tbb, simd::native, float>(const var<float>&, const var<float>&,
                                                                               const var<float>*, activation,
                                                                               const var<float>*);
template var<float> concat<exec::tbb, float>(std::span<const var<float>>, int);
template var<float> slice<exec::tbb, float>(const var<float>&, int, index_t, index_t);
template var<float> dropout<exec::tbb, float>(const var<float>&, double, dropout_rng&, bool);
template var<float> detail::softmax_impl<exec::tbb, simd::native, float>(const char*, const var<float>&,
                                                                         const var<float>&, bool);
template var<float> cross_entropy<exec::tbb, simd::native, float>(const var<float>&, std::span<const std::int32_t>,
                                                                  cross_entropy_options, std::span<const float>);
template var<float> loss_detail::pointwise_loss<exec::tbb, float, loss_detail::bce_fn<float>>(
    const char*, const var<float>&, const var<float>&, loss_detail::bce_fn<float>, reduction);
template var<float> detail::normalize<exec::tbb, simd::native, float>(const char*, const var<float>&,
                                                                      const var<float>&, const var<float>*, double,
                                                                      bool);
}  // namespace hybrid
