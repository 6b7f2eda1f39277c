// Direct AVX-512 kernels for 3x3 stride-1 convolutions, read straight from zero-padded planes: no im2col matrix,
// no packing, no col2im. Used by ops/conv.hpp where our AVX-512 kernels run (gemm::fastest / gemm::avx512).
#pragma once
#include <algorithm>
#include <cstring>

#include "hybrid/backend/gemm_avx512.hpp"

namespace hybrid::direct_conv {

// C planes of an image with a zero border: Hp = H + 2 ph rows of Wp = W + 2 pw values, planes Hp * Wp apart,
// followed by `slack` zeros. Why the slack: a kernel's 16-lane load at the right edge of the last row reads up to
// 15 values past the row (lanes beyond the output are masked when stored, or multiply zeros).
struct padded_planes {
  static constexpr index_t slack = 16;
  index_t C, Hp, Wp;
  static index_t floats(index_t C, index_t H, index_t W, index_t ph, index_t pw) {
    return C * (H + 2 * ph) * (W + 2 * pw) + slack;
  }
};

// dst (padded_planes::floats(C, H, W, ph, pw) values) = the planes src [C, H, W] with a zero border of ph rows
// and pw columns.
inline padded_planes pad_planes(const float* src, index_t C, index_t H, index_t W, index_t ph, index_t pw,
                                float* dst) {
  const index_t Hp = H + 2 * ph, Wp = W + 2 * pw;
  for (index_t c = 0; c < C; ++c) {
    float* plane = dst + c * Hp * Wp;
    std::fill_n(plane, ph * Wp, 0.f);
    for (index_t y = 0; y < H; ++y) {
      float* row = plane + (ph + y) * Wp;
      std::fill_n(row, pw, 0.f);
      std::memcpy(row + pw, src + (c * H + y) * W, static_cast<std::size_t>(W) * sizeof(float));
      std::fill_n(row + pw + W, pw, 0.f);
    }
    std::fill_n(plane + (ph + H) * Wp, ph * Wp, 0.f);
  }
  std::fill_n(dst + C * Hp * Wp, padded_planes::slack, 0.f);
  return {C, Hp, Wp};
}

#if HYBRID_GEMM_AVX512_COMPILED
using gemm::avx512_detail::lanes;

// The sum of v's 16 lanes, pairwise (GCC 12 warns, -Wmaybe-uninitialized, inside _mm512_reduce_add_ps and
// _mm512_castps512_ps256, so neither is used).
HYBRID_AVX512_TARGET inline float lane_sum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 d = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

// out[o][y][x] (= or +=) bias[o] + sum over c, ki < 3, kj < 3 of wt[(c * 3 + ki) * 3 + kj][o] * in[c][y + ki][x + kj]
// for o < O, y < Ho, x < Wo (out's planes Ho * Wo apart; in padded so that every tap is inside it). wt is the
// weight transposed, [C * 9][O]; bias may be null; with relu, max(that, 0) is stored. Each output sums its C * 9
// terms in that order, one FMA chain.
// Register block: 4 output channels x 6 vectors of 16 outputs (24 accumulators), the 6 vectors taken in raster
// order over rows of ceil(Wo / 16) vectors; a partial block repeats its last channel / vector and stores it once.
HYBRID_AVX512_TARGET inline void conv3x3_image(const float* in, const padded_planes& p, const float* wt, index_t O,
                                               const float* bias, bool accumulate, float* out, index_t Ho,
                                               index_t Wo, bool relu = false) {
  constexpr int R = 4, V = 6;
  const index_t per_row = (Wo + 15) / 16, vectors = Ho * per_row, plane = p.Hp * p.Wp;
  for (index_t v0 = 0; v0 < vectors; v0 += V) {
    const index_t vc = std::min<index_t>(V, vectors - v0);
    index_t src[V], dst[V];
    __mmask16 keep[V];
    for (int v = 0; v < V; ++v) {
      const index_t s = v0 + std::min<index_t>(v, vc - 1), y = s / per_row, x0 = (s % per_row) * 16;
      src[v] = y * p.Wp + x0;
      dst[v] = y * Wo + x0;
      keep[v] = lanes(Wo - x0);
    }
    for (index_t o0 = 0; o0 < O; o0 += R) {
      const index_t rc = std::min<index_t>(R, O - o0);
      index_t col[R];
      for (int r = 0; r < R; ++r) col[r] = o0 + std::min<index_t>(r, rc - 1);
      __m512 acc[R][V];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 6
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
      const float* w = wt;
      for (index_t c = 0; c < p.C; ++c) {
        const float* pl = in + c * plane;
        for (index_t ki = 0; ki < 3; ++ki)
          for (index_t kj = 0; kj < 3; ++kj, w += O) {
            const float* tap = pl + ki * p.Wp + kj;
            __m512 b[R];
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) b[r] = _mm512_set1_ps(w[col[r]]);
#pragma GCC unroll 6
            for (int v = 0; v < V; ++v) {
              const __m512 x = _mm512_loadu_ps(tap + src[v]);
#pragma GCC unroll 4
              for (int r = 0; r < R; ++r) acc[r][v] = _mm512_fmadd_ps(b[r], x, acc[r][v]);
            }
          }
      }
      // Constant indices only (unrolled, guarded): indexing acc at run time would keep it in memory, not registers.
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        if (r >= rc) break;
        float* o = out + (o0 + r) * Ho * Wo;
        const __m512 add = _mm512_set1_ps(bias ? bias[o0 + r] : 0.f);
#pragma GCC unroll 6
        for (int v = 0; v < V; ++v) {
          if (v >= vc) break;
          __m512 y = bias ? _mm512_add_ps(acc[r][v], add) : acc[r][v];
          if (accumulate) y = _mm512_add_ps(_mm512_maskz_loadu_ps(keep[v], o + dst[v]), y);
          if (relu) y = _mm512_maskz_max_ps(0xFFFF, y, _mm512_setzero_ps());  // max(y, 0): 0 for NaN, as ops::relu
          _mm512_mask_storeu_ps(o + dst[v], keep[v], y);
        }
      }
    }
  }
}

// grad[o][(c * 3 + ki) * 3 + kj] += sum over the n images, y < Ho, x < Wo of dy_i[o][y][x] * in_i[c][y + ki][x + kj]
// (dy_i [O, Ho, Wo]; in_i padded as for conv3x3_image; grad rows C * 9 apart). Sums run per lane over the images
// in order, then across the 16 lanes: fixed by the sizes alone. Register block: 3 output channels x the 9 taps
// (27 accumulators; a partial block repeats its last channel and adds it once).
HYBRID_AVX512_TARGET inline void conv3x3_weight_grad(const float* const* in, const float* const* dy, index_t n,
                                                     const padded_planes& p, index_t O, index_t Ho, index_t Wo,
                                                     float* grad) {
  constexpr int R = 3, T = 9;
  const index_t per_row = (Wo + 15) / 16, plane = p.Hp * p.Wp, P = Ho * Wo;
  for (index_t c = 0; c < p.C; ++c)
    for (index_t o0 = 0; o0 < O; o0 += R) {
      const index_t rc = std::min<index_t>(R, O - o0);
      __m512 acc[R][T];
#pragma GCC unroll 3
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 9
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
      for (index_t i = 0; i < n; ++i) {
        const float* pl = in[i] + c * plane;
        const float* d[R];
        for (int r = 0; r < R; ++r) d[r] = dy[i] + (o0 + std::min<index_t>(r, rc - 1)) * P;
        for (index_t y = 0; y < Ho; ++y)
          for (index_t x0 = 0; x0 < per_row * 16; x0 += 16) {
            // Lanes past Wo load zeros on both sides: their products are 0 whatever the padded plane holds there.
            const __mmask16 m = lanes(Wo - x0);
            __m512 g[R];
#pragma GCC unroll 3
            for (int r = 0; r < R; ++r) g[r] = _mm512_maskz_loadu_ps(m, d[r] + y * Wo + x0);
            const float* row = pl + y * p.Wp + x0;
#pragma GCC unroll 3
            for (int ki = 0; ki < 3; ++ki)
#pragma GCC unroll 3
              for (int kj = 0; kj < 3; ++kj) {
                const __m512 x = _mm512_maskz_loadu_ps(m, row + ki * p.Wp + kj);
#pragma GCC unroll 3
                for (int r = 0; r < R; ++r) acc[r][ki * 3 + kj] = _mm512_fmadd_ps(g[r], x, acc[r][ki * 3 + kj]);
              }
          }
      }
      // Constant indices only (unrolled, guarded): indexing acc at run time would keep it in memory, not registers.
#pragma GCC unroll 3
      for (int r = 0; r < R; ++r)
        if (r < rc)
#pragma GCC unroll 9
          for (int t = 0; t < T; ++t) grad[(o0 + r) * p.C * T + c * T + t] += lane_sum(acc[r][t]);
    }
}
#endif

}  // namespace hybrid::direct_conv
