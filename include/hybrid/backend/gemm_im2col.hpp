// Convolution products on our AVX-512 GEMM with the im2col matrix never stored: its panels are packed straight
// from the image (implicit GEMM). Used by ops/conv.hpp where gemm::fastest / gemm::avx512 run the AVX-512 kernel.
#pragma once
#include <algorithm>
#include <cstdint>

#include "hybrid/backend/gemm_avx512.hpp"

namespace hybrid::gemm {

// One image [C, H, W] seen as its im2col matrix: row (c * kh + ki) * kw + kj, column oh * Wo + ow holds
// image[c][oh * sh - ph + ki][ow - pw + kj], or 0 where the window leaves the image. Column stride 1 only.
struct im2col_image {
  const float* image;
  index_t C, H, W, kh, kw, sh, ph, pw, Ho, Wo;
  index_t rows() const { return C * kh * kw; }
  index_t cols() const { return Ho * Wo; }
};

#if HYBRID_GEMM_AVX512_COMPILED
namespace avx512_detail {

HYBRID_AVX512_TARGET inline __mmask16 lanes_between(index_t lo, index_t hi) {
  return static_cast<__mmask16>(lanes(hi) & ~lanes(lo));
}

// Row r of the im2col matrix: which plane, and which tap of the kernel window.
struct im2col_row {
  const float* plane;
  index_t ki, kj;
};
inline im2col_row row_of(const im2col_image& g, index_t r) {
  const index_t taps = g.kh * g.kw, c = r / taps, t = r - c * taps;
  return {g.image + c * g.H * g.W, t / g.kw, t % g.kw};
}

// v with lanes [lo, hi) (none when hi <= lo) loaded from row ih of the plane, lane L from input column iw0 + L.
// The base address may lie before the row (lanes below lo are masked, never read): it is computed as an
// integer, so no out-of-range pointer is formed.
HYBRID_AVX512_TARGET inline __m512 load_lanes(__m512 v, const im2col_image& g, const float* plane, index_t ih,
                                              index_t iw0, index_t lo, index_t hi) {
  const auto base = reinterpret_cast<std::uintptr_t>(plane + ih * g.W) + static_cast<std::uintptr_t>(iw0) * sizeof(float);
  return _mm512_mask_loadu_ps(v, lanes_between(lo, hi), reinterpret_cast<const float*>(base));
}

// Columns q, q + 1, ..., q + count - 1 (count <= 16) of im2col row `row` in the lanes of one register, zero beyond
// count and outside the image; (oh, ow) is column q's output position. Each run of lanes inside one output row
// is one masked load from the input row (usually the only one: Wo a multiple of 16).
HYBRID_AVX512_TARGET inline __m512 im2col_load16(const im2col_image& g, const im2col_row& row, index_t oh, index_t ow,
                                                  index_t count) {
  __m512 v = _mm512_setzero_ps();
  for (index_t lane = 0; lane < count; ++oh, ow = 0) {
    const index_t len = std::min(count - lane, g.Wo - ow), ih = oh * g.sh - g.ph + row.ki;
    const index_t iw0 = ow - g.pw + row.kj - lane;  // lane L reads input column iw0 + L
    if (ih >= 0 && ih < g.H) v = load_lanes(v, g, row.plane, ih, iw0, std::max(lane, -iw0), std::min(lane + len, g.W - iw0));
    lane += len;
  }
  return v;
}

// The im2col matrix as op(B) (K = its rows, columns = output positions): the forward product W * im2col.
struct im2col_b {
  im2col_image g;
  HYBRID_AVX512_TARGET const float* pack(index_t p0, index_t j0, index_t kc, index_t nc, float* dst) const {
    // Output positions of each half-panel's first column, worked out once (nc <= NC); rows outer, so each row's
    // plane and tap are worked out once too.
    constexpr index_t halves = 2 * NC / NR;
    index_t oh[halves], ow[halves], count[halves];
    const index_t n_halves = (nc + 15) / 16;
    for (index_t h = 0; h < n_halves; ++h) {
      const index_t q = j0 + 16 * h;
      oh[h] = q / g.Wo;
      ow[h] = q % g.Wo;
      count[h] = std::min<index_t>(16, nc - 16 * h);
    }
    for (index_t p = 0; p < kc; ++p) {
      const im2col_row row = row_of(g, p0 + p);
      for (index_t h = 0; h < n_halves; ++h)
        _mm512_store_ps(dst + (h / 2) * NR * kc + p * NR + (h % 2) * 16, im2col_load16(g, row, oh[h], ow[h], count[h]));
      if (n_halves % 2)  // the last panel's second half: zero padding
        _mm512_store_ps(dst + (n_halves / 2) * NR * kc + p * NR + 16, _mm512_setzero_ps());
    }
    return dst;
  }
};

// The im2col matrix as op(A) (rows = its rows, K = output positions): the weight gradient im2col * dY^T.
// 16 positions of MR rows at a time, transposed in registers as pack_a does for a row-major A.
struct im2col_a {
  im2col_image g;
  HYBRID_AVX512_TARGET const float* pack(index_t i0, index_t p0, index_t mc, index_t kc, float* dst) const {
    float* const panels = dst;
    const __mmask16 st = lanes(MR);
    for (index_t ir = 0; ir < mc; ir += MR, dst += MR * kc) {
      const index_t mr = std::min(MR, mc - ir);
      im2col_row rows[MR];
      for (index_t j = 0; j < mr; ++j) rows[j] = row_of(g, i0 + ir + j);
      for (index_t p = 0; p < kc; p += 16) {
        const index_t count = std::min<index_t>(16, kc - p), q = p0 + p, oh = q / g.Wo, ow = q % g.Wo;
        __m512 r[16], out[16];
        for (index_t j = 0; j < 16; ++j) r[j] = j < mr ? im2col_load16(g, rows[j], oh, ow, count) : _mm512_setzero_ps();
        transpose16(r, out);
        for (index_t c = 0; c < count; ++c) _mm512_mask_storeu_ps(dst + (p + c) * MR, st, out[c]);
      }
    }
    return panels;
  }
};

}  // namespace avx512_detail
#endif

// The two products below run only where the policy's takes_packed_operands() (gemm::avx512, gemm::fastest) is true.
// out[O, P] = weight[O, K] * im2col(x) (K = x.rows(), P = x.cols(); out's rows P apart), on the calling thread.
inline void conv_product_from_image([[maybe_unused]] const im2col_image& x, [[maybe_unused]] const float* weight,
                                    [[maybe_unused]] index_t O, [[maybe_unused]] float* out) {
#if HYBRID_GEMM_AVX512_COMPILED
  avx512_detail::sgemm_from(O, x.cols(), x.rows(), 1.f, avx512_detail::dense_a{false, weight, x.rows()},
                            avx512_detail::im2col_b{x}, 0.f, out, x.cols());
#endif
}

// grad_t[K, O] = im2col(x) * dy^T + beta * grad_t (dy [O, P], rows P apart; grad_t is the weight gradient
// transposed, rows O apart), on the calling thread.
inline void conv_weight_grad_from_image([[maybe_unused]] const im2col_image& x, [[maybe_unused]] const float* dy,
                                        [[maybe_unused]] index_t O, [[maybe_unused]] float beta,
                                        [[maybe_unused]] float* grad_t) {
#if HYBRID_GEMM_AVX512_COMPILED
  avx512_detail::sgemm_from(x.rows(), O, x.cols(), 1.f, avx512_detail::im2col_a{x},
                            avx512_detail::dense_b{true, dy, x.cols()}, beta, grad_t, O);
#endif
}

}  // namespace hybrid::gemm
