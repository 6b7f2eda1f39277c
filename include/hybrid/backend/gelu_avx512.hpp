// GELU (the erf form) on 16 floats at a time, for GEMM epilogues that run where the CPU has AVX-512 (fused_linear):
// twice the width of the build's xsimd packs, and no branch per pack (xsimd's erf picks a formula per pack).
#pragma once
#include "hybrid/backend/gemm_avx512.hpp"

namespace hybrid::gemm::avx512_detail {

#if HYBRID_GEMM_AVX512_COMPILED
// e^a for a <= 0 (GELU needs e^(-x^2)): a = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7
// (relative error below 2e-8 there), times 2^n by vscalefps (0 once a < -104: below the smallest denormal).
HYBRID_AVX512_TARGET inline __m512 exp_nonpositive(__m512 a) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
  // Zero-masked forms (all lanes kept): the plain ones trip GCC 12's -Wmaybe-uninitialized in its headers.
  const __mmask16 all = 0xFFFF;
  a = _mm512_maskz_max_ps(all, a, _mm512_set1_ps(-104.f));
  const __m512 n =
      _mm512_maskz_roundscale_ps(all, _mm512_mul_ps(a, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, a);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(all, p, n);
}

// gelu(v) = v (1 + erf(v / sqrt 2)) / 2. With x = |v| / sqrt 2, erfc(x) = t P(t) e^(-x^2), t = 1 / (1 + p x)
// (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7 for x >= 0), and 1 + erf(v / sqrt 2) is 2 - erfc(x)
// for v >= 0 and erfc(x) itself for v < 0 (no cancellation on the negative side).
HYBRID_AVX512_TARGET inline __m512 gelu16(__m512 v) {
  const __m512 x = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0.70710678118654752f));
  const __m512 t =
      _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), x, _mm512_set1_ps(1.f)));
  __m512 poly = _mm512_set1_ps(1.061405429f);
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
  const __m512 minus_x2 = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), x);
  const __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(poly, t), exp_nonpositive(minus_x2));
  const __mmask16 negative = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 one_plus_erf = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.f), erfc), erfc);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), one_plus_erf);
}

// y[j] = gelu(y[j] + b[j]) + r[j] for j < n (b, r may be null): one row of a GEMM epilogue.
HYBRID_AVX512_TARGET inline void gelu_row(float* y, const float* b, const float* r, index_t n) {
  for (index_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes(n - j);
    __m512 v = _mm512_maskz_loadu_ps(m, y + j);
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b + j));
    v = gelu16(v);
    if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + j));
    _mm512_mask_storeu_ps(y + j, m, v);
  }
}
#endif

}  // namespace hybrid::gemm::avx512_detail
