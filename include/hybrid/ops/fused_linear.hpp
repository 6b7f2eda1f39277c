// fused_linear: act(x W^T + b) + residual for inference (no tape), the bias, activation and residual applied to
// each block of the product while it is in cache instead of in passes of their own over the output.
#pragma once
#include <stdexcept>
#include <type_traits>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/backend/gelu_avx512.hpp"
#include "hybrid/backend/gemm_epilogue.hpp"
#include "hybrid/backend/simd.hpp"
#include "hybrid/ops/matmul.hpp"

namespace hybrid {

// An activation chosen at run time (layers::linear, layers::mlp, the transformer block's MLP).
enum class activation { relu, gelu, gelu_tanh, tanh, sigmoid, identity };

namespace detail {

// y = act(y + bias[column]) + residual(row, column), per element in that order: the order of the unfused
// expression `act(y + b) + r`, with the same activation functions, so both give the same values (a vector pack
// per element in both, except near the ends of rows); GELU on AVX-512 CPUs excepted (backend/gelu_avx512.hpp:
// within 2e-7 of the exact value times max(1, |v|), as the build's xsimd erf).
template <class S, class T>
struct linear_epilogue {
  const T* bias = nullptr;      // [N] or null
  const T* residual = nullptr;  // [M, N] (rows ld_residual apart) or null
  index_t ld_residual = 0;
  activation act = activation::identity;

  void operator()(T* c, index_t ldc, index_t i, index_t j, index_t rows, index_t cols) const {
    switch (act) {
      case activation::relu: return apply(ops::relu{}, c, ldc, i, j, rows, cols);
      case activation::gelu:
#if HYBRID_GEMM_AVX512_COMPILED
        // BERT's GELU dominated this epilogue with the build's 8-wide packs (7% of batch-16 inference).
        if constexpr (std::is_same_v<T, float> && !std::is_same_v<S, simd::scalar>)
          if (gemm::avx512_detail::cpu_has_avx512()) {
            for (index_t r = 0; r < rows; ++r)
              gemm::avx512_detail::gelu_row(c + r * ldc, bias ? bias + j : nullptr,
                                            residual ? residual + (i + r) * ld_residual + j : nullptr, cols);
            return;
          }
#endif
        return apply(ops::gelu{}, c, ldc, i, j, rows, cols);
      case activation::gelu_tanh: return apply(ops::gelu_tanh{}, c, ldc, i, j, rows, cols);
      case activation::tanh: return apply(ops::tanh{}, c, ldc, i, j, rows, cols);
      case activation::sigmoid: return apply(ops::sigmoid{}, c, ldc, i, j, rows, cols);
      case activation::identity: return apply(identity{}, c, ldc, i, j, rows, cols);
    }
  }

 private:
  struct identity {
    template <class P> P f(P x) const { return x; }
  };
  template <class Act>
  void apply(Act f, T* c, index_t ldc, index_t i, index_t j, index_t rows, index_t cols) const {
    using P = typename S::template pack<T>;
    constexpr index_t W = simd::pack_traits<P>::width;
    const T* b = bias ? bias + j : nullptr;
    for (index_t r = 0; r < rows; ++r) {
      T* y = c + r * ldc;
      const T* res = residual ? residual + (i + r) * ld_residual + j : nullptr;
      index_t q = 0;
      for (; q + W <= cols; q += W) step<P>(f, y, b, res, q);
      for (; q < cols; ++q) step<T>(f, y, b, res, q);
    }
  }
  template <class P, class Act>
  static void step(Act f, T* y, const T* b, const T* res, index_t q) {
    using tr = simd::pack_traits<P>;
    P v = tr::load(y + q);
    if (b) v = v + tr::load(b + q);
    v = f.f(v);
    if (res) v = v + tr::load(res + q);
    tr::store(y + q, v);
  }
};

}  // namespace detail

// act(x W^T + b) + residual, where x is [..., in], weight [out, in], bias [out] (or null) and residual the
// output's shape (or null). For inference only: it records nothing, so it refuses inputs that need a gradient
// while the tape records (std::logic_error); layers::linear takes this path by itself when nothing needs one.
// A weight under gemm::prepacked_weights is used packed.
template <class Gemm = gemm::default_policy, class Exec = exec::default_policy, class S = simd::default_policy,
          class T>
var<T> fused_linear(const var<T>& x, const var<T>& weight, std::type_identity_t<const var<T>*> bias, activation act,
                    std::type_identity_t<const var<T>*> residual) {
  const hybrid::shape& sx = x.shape();
  const hybrid::shape& sw = weight.shape();
  if (sw.rank() != 2 || sx.rank() < 1 || sx.dim(-1) != sw.dim(1))
    throw shape_error("fused_linear", "input", sx, "weight [out, in]", sw, "last axis must be in");
  const index_t N = sw.dim(0), K = sw.dim(1), M = sx.numel() / std::max<index_t>(K, 1);
  if (bias && (bias->rank() != 1 || bias->dim(0) != N))
    throw shape_error("fused_linear", "bias", bias->shape(), "weight [out, in]", sw, "bias must be [out]");
  const hybrid::shape so = sx.with(-1, N);
  if (residual && residual->shape() != so)
    throw shape_error("fused_linear", "residual", residual->shape(), "output", so, "must be equal");
  if (tape::current().recording() && (x.requires_grad() || weight.requires_grad() ||
                                      (bias && bias->requires_grad()) || (residual && residual->requires_grad())))
    throw std::logic_error("fused_linear: an input needs a gradient while the tape records (inference only)");

  if (K == 0) throw shape_error("fused_linear", "input", sx, "weight [out, in]", sw, "empty inner dimension");
  var<T> out = make_result<T>(so, false);
  const detail::linear_epilogue<S, T> ep{bias ? bias->data() : nullptr, residual ? residual->data() : nullptr, N,
                                         act};
  if (!detail::run_with_prepacked_weight<Gemm, Exec>(weight.get(), {.b = true}, M, N, K, x.data(), K, weight.data(),
                                                     K, out.data(), N, ep))
    gemm::run_with_epilogue<Gemm, Exec>(false, true, M, N, K, x.data(), K, weight.data(), K, out.data(), N, ep);
  return out;
}

HYBRID_EXTERN_FLOAT(var<float> fused_linear<gemm::fastest, exec::tbb, simd::native, float>(
    const var<float>&, const var<float>&, const var<float>*, activation, const var<float>*))

}  // namespace hybrid
