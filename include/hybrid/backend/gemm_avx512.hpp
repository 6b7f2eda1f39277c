// Our own AVX-512 single-precision GEMM policy (gemm::avx512): a packed, register-blocked kernel chosen at run
// time where the CPU has AVX-512; double, other CPUs and other compilers go to a fallback policy.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "hybrid/backend/gemm_eigen.hpp"
#include "hybrid/backend/gemm_epilogue.hpp"
#ifdef HYBRID_WITH_OPENBLAS
#include "hybrid/backend/gemm_blas.hpp"
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define HYBRID_GEMM_AVX512_COMPILED 1
#include <immintrin.h>
// Only these functions use AVX-512: the rest of the build keeps its -march (x86-64-v3 by default).
#define HYBRID_AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#else
#define HYBRID_GEMM_AVX512_COMPILED 0
#endif

namespace hybrid::gemm {

namespace avx512_detail {

// How many per-thread pack buffers our kernel has allocated in this process: two on each thread's first product,
// none after (when a given oneTBB worker runs its first product is up to the scheduler). Tests of "no allocation per
// call after warm-up" tell these apart from allocations per call (tests/enc/bert_test.cpp).
inline std::atomic<long>& pack_buffers_allocated() {
  static std::atomic<long> count{0};
  return count;
}

// Whether this CPU (and its OS) runs AVX-512 F/VL/BW/DQ code; asked once.
inline bool cpu_has_avx512() {
#if HYBRID_GEMM_AVX512_COMPILED
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return ok;
#else
  return false;
#endif
}

#if HYBRID_GEMM_AVX512_COMPILED
// Micro-tile MR x NR = 14 x 32: 28 zmm accumulators, 2 for the row of B, 1 for the broadcast of A.
inline constexpr index_t MR = 14, NR = 32;
// Cache blocks: a KC x NR panel of B stays in L1 (at most 48 KiB), an MC x KC block of A in L2, a KC x NC block
// of B in L2/L3 (on Zen 5, KC 256 to 512 and MC 168 to 336 measured alike within the noise). KC is fixed by K
// alone (see kc_of): each C element sums its K terms in the same order whatever the tiling or thread count.
inline constexpr index_t KC_MAX = 384, MC = 14 * 16, NC = 512;

// K split into equal blocks of at most KC_MAX.
inline index_t kc_of(index_t K) {
  const index_t blocks = (K + KC_MAX - 1) / KC_MAX;
  return (K + blocks - 1) / blocks;
}

struct aligned_delete {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
};
// Per-thread pack buffers, allocated on a thread's first call and reused afterwards.
inline float* pack_buffer(int which) {
  static constexpr std::size_t sizes[2] = {static_cast<std::size_t>(MC * KC_MAX),
                                           static_cast<std::size_t>(KC_MAX * NC)};
  thread_local std::unique_ptr<float[], aligned_delete> bufs[2];
  if (!bufs[which]) {
    bufs[which].reset(new (std::align_val_t{64}) float[sizes[which]]);
    pack_buffers_allocated().fetch_add(1, std::memory_order_relaxed);
  }
  return bufs[which].get();
}

HYBRID_AVX512_TARGET inline __mmask16 lanes(index_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// out[c] = column c of the 16 x 16 block whose rows are r[0..15] (r is overwritten).
HYBRID_AVX512_TARGET inline void transpose16(__m512* r, __m512* out) {
  // Zero-masked forms (all lanes kept): the plain ones trip GCC 12's -Wmaybe-uninitialized in its headers.
  const __mmask16 all = 0xFFFF;
  const __mmask8 all8 = 0xFF;
  // Unpack pairs of rows, then pairs of pairs, then gather 128-bit lanes.
  __m512 t[16];
  for (int j = 0; j < 16; j += 2) {
    t[j] = _mm512_maskz_unpacklo_ps(all, r[j], r[j + 1]);
    t[j + 1] = _mm512_maskz_unpackhi_ps(all, r[j], r[j + 1]);
  }
  for (int j = 0; j < 16; j += 4) {
    const __m512d a0 = _mm512_castps_pd(t[j]), a1 = _mm512_castps_pd(t[j + 1]);
    const __m512d b0 = _mm512_castps_pd(t[j + 2]), b1 = _mm512_castps_pd(t[j + 3]);
    r[j] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(all8, a0, b0));
    r[j + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(all8, a0, b0));
    r[j + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(all8, a1, b1));
    r[j + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(all8, a1, b1));
  }
  // r[4g + s], 128-bit lane L: rows 4g..4g+3 of column 4L + s. Gather lane L of the four groups.
  for (int s = 0; s < 4; ++s) {
    const __m512 t0 = _mm512_maskz_shuffle_f32x4(all, r[s], r[4 + s], 0x88),
                 t1 = _mm512_maskz_shuffle_f32x4(all, r[8 + s], r[12 + s], 0x88);
    const __m512 u0 = _mm512_maskz_shuffle_f32x4(all, r[s], r[4 + s], 0xDD),
                 u1 = _mm512_maskz_shuffle_f32x4(all, r[8 + s], r[12 + s], 0xDD);
    out[s] = _mm512_maskz_shuffle_f32x4(all, t0, t1, 0x88);
    out[8 + s] = _mm512_maskz_shuffle_f32x4(all, t0, t1, 0xDD);
    out[4 + s] = _mm512_maskz_shuffle_f32x4(all, u0, u1, 0x88);
    out[12 + s] = _mm512_maskz_shuffle_f32x4(all, u0, u1, 0xDD);
  }
}

// op(A) rows [0, m) x K range [0, kc) into panels of MR rows: panel p holds, for each k, MR values (zero padded).
HYBRID_AVX512_TARGET inline void pack_a(bool ta, index_t m, index_t kc, const float* A, index_t lda, float* dst) {
  if (ta) {  // A stored K x M: row p of the storage holds all m values of one k; read each row once, in order
    const __mmask16 st = lanes(MR);
    for (index_t p = 0; p < kc; ++p) {
      const float* s = A + p * lda;
      if (p + 8 < kc)  // rows are lda apart (often 4 KiB or more): fetch 8 ahead, the prefetchers do not
        for (index_t i = 0; i < m; i += 16) _mm_prefetch(reinterpret_cast<const char*>(s + 8 * lda + i), _MM_HINT_T0);
      for (index_t i0 = 0, q = 0; i0 < m; i0 += MR, ++q)
        _mm512_mask_storeu_ps(dst + q * MR * kc + p * MR, st, _mm512_maskz_loadu_ps(lanes(m - i0), s + i0));
    }
    return;
  }
  // A stored M x K: rows are contiguous in k; 16 k at a time through a 16 x 16 transpose.
  const __mmask16 st = lanes(MR);
  for (index_t i0 = 0; i0 < m; i0 += MR, dst += MR * kc) {
    const index_t mr = std::min(MR, m - i0);
    index_t p = 0;
    for (; p + 16 <= kc; p += 16) {
      __m512 r[16], out[16];
      for (int j = 0; j < 16; ++j) r[j] = j < mr ? _mm512_loadu_ps(A + (i0 + j) * lda + p) : _mm512_setzero_ps();
      transpose16(r, out);
      for (int c = 0; c < 16; ++c) _mm512_mask_storeu_ps(dst + (p + c) * MR, st, out[c]);
    }
    for (; p < kc; ++p)
      for (index_t r = 0; r < MR; ++r) dst[p * MR + r] = r < mr ? A[(i0 + r) * lda + p] : 0.f;
  }
}

// op(B) K range [0, kc) x columns [0, n) into panels of NR columns: for each k, NR values (zero padded).
HYBRID_AVX512_TARGET inline void pack_b(bool tb, index_t kc, index_t n, const float* B, index_t ldb, float* dst) {
  for (index_t j0 = 0; j0 < n; j0 += NR) {
    const index_t nr = std::min(NR, n - j0);
    if (!tb) {  // B stored K x N: NR contiguous values per k
      const __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
      for (index_t p = 0; p < kc; ++p) {
        const float* s = B + p * ldb + j0;
        _mm512_store_ps(dst + p * NR, _mm512_maskz_loadu_ps(m0, s));
        _mm512_store_ps(dst + p * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
      }
    } else {  // B stored N x K: transpose 16 x 16 blocks in registers
      index_t p = 0;
      for (; p + 16 <= kc; p += 16)
        for (index_t h = 0; h < NR; h += 16) {
          __m512 r[16];
          for (int j = 0; j < 16; ++j)
            r[j] = (j0 + h + j < n) ? _mm512_loadu_ps(B + (j0 + h + j) * ldb + p) : _mm512_setzero_ps();
          __m512 out[16];
          transpose16(r, out);
          for (int c = 0; c < 16; ++c) _mm512_store_ps(dst + (p + c) * NR + h, out[c]);
        }
      for (; p < kc; ++p)
        for (index_t j = 0; j < NR; ++j) dst[p * NR + j] = j < nr ? B[(j0 + j) * ldb + p] : 0.f;
    }
    dst += NR * kc;
  }
}

// C[mr x nr] = alpha * a_panel * b_panel + beta * C, or = alpha * a_panel * b_panel (C not read) when
// overwrite. The k loop runs in order 0..kc-1 with one FMA chain per element.
HYBRID_AVX512_TARGET inline void kernel(index_t kc, const float* a, const float* b, float* C, index_t ldc, index_t mr,
                                        index_t nr, float alpha, float beta, bool overwrite) {
  __m512 c0[MR], c1[MR];
  // C's rows are fetched while the k loop runs (without this, K = N = 1024 products lose about 10%).
#pragma GCC unroll 14
  for (int r = 0; r < MR; ++r)
    if (r < mr) {
      _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 31), _MM_HINT_T0);
    }
#pragma GCC unroll 14
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (index_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      c0[r] = _mm512_fmadd_ps(ar, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(ar, b1, c1[r]);
    }
    a += MR;
    b += NR;
  }
  const __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
    float* c = C + r * ldc;
    if (overwrite) {
      _mm512_mask_storeu_ps(c, m0, _mm512_mul_ps(va, c0[r]));
      _mm512_mask_storeu_ps(c + 16, m1, _mm512_mul_ps(va, c1[r]));
    } else {
      _mm512_mask_storeu_ps(c, m0, _mm512_fmadd_ps(va, c0[r], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, c))));
      _mm512_mask_storeu_ps(c + 16, m1,
                            _mm512_fmadd_ps(va, c1[r], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16))));
    }
  }
}

// Where the kernel's operands come from: each source packs a block of op(A) (rows i0.., K range p0..) or of
// op(B) (K range p0.., columns j0..) into the panel layouts above and returns where its panels are (the buffer it
// was given, or a copy packed earlier). An ordinary matrix (dense_a / dense_b), an operand packed once for all the
// tiles of a product (shared_a, prepacked_b), or a matrix that is never stored (the im2col matrix of a
// convolution), packed from its source.
struct dense_a {
  bool ta;
  const float* A;
  index_t lda;
  HYBRID_AVX512_TARGET const float* pack(index_t i0, index_t p0, index_t mc, index_t kc, float* dst) const {
    pack_a(ta, mc, kc, ta ? A + p0 * lda + i0 : A + i0 * lda + p0, lda, dst);
    return dst;
  }
};
// op(A) packed whole: for each K block (the blocks of kc_of(K), kc deep), all its rows as consecutive MR-row
// panels (rows rounded up to a multiple of MR), so a tile that takes every row finds its panels in place.
struct shared_a {
  const float* data = nullptr;
  index_t rows = 0;  // M rounded up to a multiple of MR
  static index_t rows_of(index_t M) { return (M + MR - 1) / MR * MR; }
  // Where the panels of rows i0.. (a multiple of MR) of the K block at p0, kc deep, start.
  static index_t offset(index_t rows, index_t i0, index_t p0, index_t kc) { return p0 * rows + i0 * kc; }
  const float* pack(index_t i0, index_t p0, index_t, index_t kc, float*) const {
    return data + offset(rows, i0, p0, kc);
  }
};
struct dense_b {
  bool tb;
  const float* B;
  index_t ldb;
  HYBRID_AVX512_TARGET const float* pack(index_t p0, index_t j0, index_t kc, index_t nc, float* dst) const {
    pack_b(tb, kc, nc, tb ? B + j0 * ldb + p0 : B + p0 * ldb + j0, ldb, dst);
    return dst;
  }
};

// op(B) packed whole: for each K block (kc_of(K) rows, the blocks sgemm_from uses), all N columns as consecutive
// NR-column panels, so any tile whose columns start at a multiple of NR finds its panels in place.
struct packed_panels {
  const float* data = nullptr;
  index_t panels = 0;  // NR-column panels per K block
  const float* block(index_t p0) const { return data + p0 * panels * NR; }  // blocks before p0 are kc_of(K) deep
  static index_t panels_of(index_t N) { return (N + NR - 1) / NR; }
  static index_t floats(index_t K, index_t N) { return panels_of(N) * NR * K; }
};
// Columns [j0, j0 + n) (j0 a multiple of NR) of the K block at p0 of op(B) into their place in dst (a
// packed_panels layout of K x N).
HYBRID_AVX512_TARGET inline void pack_panels(bool tb, index_t K, index_t N, const float* B, index_t ldb, index_t p0,
                                             index_t j0, index_t n, float* dst) {
  const index_t kc = std::min(kc_of(K), K - p0);
  pack_b(tb, kc, n, tb ? B + j0 * ldb + p0 : B + p0 * ldb + j0, ldb,
         dst + p0 * packed_panels::panels_of(N) * NR + (j0 / NR) * kc * NR);
}

// A weight packed once and kept (gemm::prepacked_weights).
struct packed_weight {
  std::unique_ptr<float[], aligned_delete> data;
  index_t K = 0, N = 0;
  HYBRID_AVX512_TARGET void pack(bool tb, index_t k, index_t n, const float* B, index_t ldb) {
    K = k;
    N = n;
    data.reset(new (std::align_val_t{64}) float[static_cast<std::size_t>(packed_panels::floats(k, n))]);
    for (index_t p0 = 0; p0 < k; p0 += kc_of(k)) pack_panels(tb, k, n, B, ldb, p0, 0, n, data.get());
  }
  packed_panels panels() const { return {data.get(), packed_panels::panels_of(N)}; }
};
// op(B) from panels packed beforehand: a tile whose first column is col0 (a multiple of NR) reads them in place.
struct prepacked_b {
  packed_panels w;
  index_t col0;
  const float* pack(index_t p0, index_t j0, index_t kc, index_t, float*) const {
    return w.block(p0) + ((col0 + j0) / NR) * kc * NR;
  }
};

// Buffers for an op(B) packed once per product and read by all its tiles, lent by a pool: a thread waiting for
// the tiles may run another product meanwhile (oneTBB lets it take other tasks), so one thread_local buffer
// could be in use below it.
class panel_buffer {
 public:
  explicit panel_buffer(std::size_t floats) {
    {
      std::lock_guard lock(mutex());
      auto& free = pool();
      for (std::size_t i = 0; i < free.size(); ++i)
        if (free[i].second >= floats) {
          data_ = std::move(free[i].first);
          capacity_ = free[i].second;
          free.erase(free.begin() + static_cast<std::ptrdiff_t>(i));
          return;
        }
    }
    data_.reset(new (std::align_val_t{64}) float[floats]);
    capacity_ = floats;
  }
  ~panel_buffer() {
    std::lock_guard lock(mutex());
    auto& free = pool();
    if (free.size() < 8) free.emplace_back(std::move(data_), capacity_);
  }
  panel_buffer(const panel_buffer&) = delete;
  panel_buffer& operator=(const panel_buffer&) = delete;
  float* get() const { return data_.get(); }

 private:
  using buffer = std::unique_ptr<float[], aligned_delete>;
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::vector<std::pair<buffer, std::size_t>>& pool() {
    static std::vector<std::pair<buffer, std::size_t>> p;
    return p;
  }
  buffer data_;
  std::size_t capacity_ = 0;
};

// One single-threaded GEMM, row-major C[m x n] = alpha * op(A) * op(B) + beta * C (C not read when beta == 0),
// with op(A) and op(B) packed from the sources a and b. Then, when an epilogue is given, ep(c, ldc, i, j, rows,
// cols) on each block of C as soon as its sum is complete, while it is still in L1 (bias, activation, residual
// of a linear layer: gemm_epilogue.hpp); i and j are the block's first row and column in this C.
template <class SourceA, class SourceB, class Epilogue = no_epilogue>
HYBRID_AVX512_TARGET void sgemm_from(index_t m, index_t n, index_t k, float alpha, const SourceA& a, const SourceB& b,
                                     float beta, float* C, index_t ldc, const Epilogue& ep = {}) {
  constexpr bool has_epilogue = !std::is_same_v<Epilogue, no_epilogue>;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    scale_by_beta(m, n, beta, C, ldc);
    if constexpr (has_epilogue) ep(C, ldc, index_t{0}, index_t{0}, m, n);
    return;
  }
  float* pa = pack_buffer(0);
  float* pb = pack_buffer(1);
  const index_t kcb = kc_of(k);
  for (index_t j0 = 0; j0 < n; j0 += NC) {
    const index_t nc = std::min(NC, n - j0);
    for (index_t p0 = 0; p0 < k; p0 += kcb) {
      const index_t kc = std::min(kcb, k - p0);
      const bool first = p0 == 0;
      const bool overwrite = first && beta == 0.f;
      const bool last = p0 + kc >= k;
      const float beta_k = first ? beta : 1.f;
      const float* bp = b.pack(p0, j0, kc, nc, pb);
      // The epilogue of a block runs after the next block's product: straight after the kernel's masked stores,
      // its loads of the same lines cannot be forwarded from them and wait (most of the epilogue's time).
      struct block {
        float* c = nullptr;
        index_t i = 0, j = 0, rows = 0, cols = 0;
      } pending;
      for (index_t i0 = 0; i0 < m; i0 += MC) {
        const index_t mc = std::min(MC, m - i0);
        const float* ap = a.pack(i0, p0, mc, kc, pa);
        for (index_t jr = 0; jr < nc; jr += NR)
          for (index_t ir = 0; ir < mc; ir += MR) {
            float* c = C + (i0 + ir) * ldc + j0 + jr;
            const index_t mr = std::min(MR, mc - ir), nr = std::min(NR, nc - jr);
            kernel(kc, ap + ir * kc, bp + jr * kc, c, ldc, mr, nr, alpha, beta_k, overwrite);
            if constexpr (has_epilogue)
              if (last) {
                if (pending.c) ep(pending.c, ldc, pending.i, pending.j, pending.rows, pending.cols);
                pending = {c, i0 + ir, j0 + jr, mr, nr};
              }
          }
      }
      if constexpr (has_epilogue)
        if (pending.c) ep(pending.c, ldc, pending.i, pending.j, pending.rows, pending.cols);
    }
  }
}

HYBRID_AVX512_TARGET inline void sgemm(bool ta, bool tb, index_t m, index_t n, index_t k, float alpha, const float* A,
                                       index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  sgemm_from(m, n, k, alpha, dense_a{ta, A, lda}, dense_b{tb, B, ldb}, beta, C, ldc);
}
#endif

// Tiles of at most 512 x 512, halved until there are 4 when the product is large (fixed by the sizes alone;
// the results do not even depend on it, as every C element sums its K terms in one fixed order).
struct avx512_tiling {
  index_t mb, nb, m_tiles, n_tiles;
  avx512_tiling(index_t M, index_t N, index_t K) {
    mb = std::max<index_t>(M, 1);
    nb = std::max<index_t>(N, 1);
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    if (flops >= 4e6) {
      mb = std::min<index_t>(mb, 512);
      nb = std::min<index_t>(nb, 512);
      auto count = [&] { return ((M + mb - 1) / mb) * ((N + nb - 1) / nb); };
      while (count() < 4) {
        // Few rows (batch-1 inference: M = 128): split the columns only, so op(B), usually a weight too big
        // for the cache, is packed once, not once per row tile; op(A) is small and stays in cache.
        if (M <= 256 && nb >= 128) nb = (nb / 2 + 31) / 32 * 32;
        else if (mb >= nb && mb >= 128) mb = (mb + 1) / 2;
        else if (nb >= 128) nb = (nb / 2 + 31) / 32 * 32;
        else break;
      }
    }
    m_tiles = (M + mb - 1) / mb;
    n_tiles = (N + nb - 1) / nb;
  }
  index_t count() const { return m_tiles * n_tiles; }
};

// f(m0, n0, m, n) for each tile of an M x N product (column offsets are multiples of NR), in parallel; on one
// thread (exec::serial, or oneTBB limited to one) a single call for the whole product: the same bits (each C
// element's sum does not depend on the tiling), without packing the operands again per tile (dW-shaped
// products, small M and N with K = 2048: ~1.2x faster).
template <class Exec, class F>
void for_each_tile(index_t M, index_t N, index_t K, F&& f) {
  if (M == 0 || N == 0) return;
  if (Exec::concurrency() == 1) {
    f(index_t{0}, index_t{0}, M, N);
    return;
  }
  const avx512_tiling t(M, N, K);
  Exec::for_each(t.count(), [&](index_t i) {
    const index_t m0 = (i / t.n_tiles) * t.mb, n0 = (i % t.n_tiles) * t.nb;
    f(m0, n0, std::min(t.mb, M - m0), std::min(t.nb, N - n0));
  });
}

#if HYBRID_GEMM_AVX512_COMPILED
// f(p0, kc, first, count) for each K block (p0, kc deep: the blocks of kc_of(K)) and each group of `group` of the
// `extent` rows or columns of an operand, in parallel: how an operand is packed once for all tiles of a product.
template <class Exec, class F>
void for_each_pack_job(index_t K, index_t extent, index_t group, F&& f) {
  const index_t kcb = kc_of(K), k_blocks = (K + kcb - 1) / kcb, groups = (extent + group - 1) / group;
  Exec::for_each(k_blocks * groups, [&](index_t job) {
    const index_t p0 = (job / groups) * kcb, first = (job % groups) * group;
    f(p0, std::min(kcb, K - p0), first, std::min(group, extent - first));
  });
}

// C = alpha * op(A) * op(B) + beta * C on the tiles of for_each_tile, then ep on each block of C, with op(B) from
// the source that make_b(n0) gives for the tile starting at column n0.
// Where the product is split by columns only (few rows: batch-1 inference) and runs on several threads, op(A) is
// packed once, in parallel, and every tile reads it, instead of each tile packing all of it again (a fifth of the
// packing's share of batch-1 inference at 2 threads was that repacking). The same bits either way.
template <class Exec, class Epilogue, class MakeB>
void run_tiles(bool ta, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda, MakeB make_b,
               float beta, float* C, index_t ldc, const Epilogue& ep) {
  if (K > 0 && Exec::concurrency() > 1) {
    const avx512_tiling t(M, N, K);
    if (t.m_tiles == 1 && t.n_tiles > 1) {
      const index_t rows = shared_a::rows_of(M);
      panel_buffer packed(static_cast<std::size_t>(rows * K));
      for_each_pack_job<Exec>(K, M, 4 * MR, [&](index_t p0, index_t kc, index_t i0, index_t m) {
        dense_a{ta, A, lda}.pack(i0, p0, m, kc, packed.get() + shared_a::offset(rows, i0, p0, kc));
      });
      const shared_a panels{packed.get(), rows};
      for_each_tile<Exec>(M, N, K, [&](index_t m0, index_t n0, index_t m, index_t n) {
        sgemm_from(m, n, K, alpha, panels, make_b(n0), beta, C + m0 * ldc + n0, ldc, shifted_epilogue(ep, m0, n0));
      });
      return;
    }
  }
  for_each_tile<Exec>(M, N, K, [&](index_t m0, index_t n0, index_t m, index_t n) {
    sgemm_from(m, n, K, alpha, dense_a{ta, ta ? A + m0 : A + m0 * lda, lda}, make_b(n0), beta, C + m0 * ldc + n0,
               ldc, shifted_epilogue(ep, m0, n0));
  });
}

// The same with op(B) an ordinary matrix. With several row tiles on several threads, op(B) is packed once (in
// parallel) and all tiles read it, instead of each tile packing it again (at 2 threads that repacking was about
// 5% of a multimodal training step).
template <class Exec, class Epilogue = no_epilogue>
void run_dense(bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const float* A, index_t lda,
               const float* B, index_t ldb, float beta, float* C, index_t ldc, const Epilogue& ep = {}) {
  if (M == 0 || N == 0) return;
  if (K > 0 && Exec::concurrency() > 1 && avx512_tiling(M, N, K).m_tiles > 1) {
    panel_buffer packed(static_cast<std::size_t>(packed_panels::floats(K, N)));
    for_each_pack_job<Exec>(K, N, 4 * NR, [&](index_t p0, index_t, index_t j0, index_t n) {
      pack_panels(tb, K, N, B, ldb, p0, j0, n, packed.get());
    });
    const packed_panels panels{packed.get(), packed_panels::panels_of(N)};
    run_tiles<Exec>(ta, M, N, K, alpha, A, lda, [&](index_t n0) { return prepacked_b{panels, n0}; }, beta, C, ldc,
                    ep);
    return;
  }
  run_tiles<Exec>(ta, M, N, K, alpha, A, lda,
                  [&](index_t n0) { return dense_b{tb, tb ? B + n0 * ldb : B + n0, ldb}; }, beta, C, ldc, ep);
}
#endif

}  // namespace avx512_detail

#ifdef HYBRID_WITH_OPENBLAS
using avx512_default_fallback = blas;
#else
using avx512_default_fallback = eigen;
#endif

// The AVX-512 kernel for float where the CPU has it; everything else goes to Fallback (its own tiling too).
template <class Fallback = avx512_default_fallback>
struct avx512_or {
  static constexpr const char* name = "avx512";
  using fallback = Fallback;
  // Whether float products run the AVX-512 kernel here (false: they go to Fallback).
  static bool active() { return avx512_detail::cpu_has_avx512(); }
  // Whether float products may take operands packed by other means than run(): weights packed in advance
  // (gemm::prepacked_weights, run_prepacked) and im2col matrices packed from the image (backend/gemm_im2col.hpp).
  static bool takes_packed_operands() { return active(); }

  template <class T>
  static void tile(bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* A, index_t lda, const T* B,
                   index_t ldb, T beta, T* C, index_t ldc) {
#if HYBRID_GEMM_AVX512_COMPILED
    if constexpr (std::is_same_v<T, float>) {
      if (active()) {
        avx512_detail::sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
      }
    }
#endif
    Fallback::template tile<T>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  template <class T, class Exec = exec::default_policy>
  static void run(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
                  index_t ldb, T beta, T* C, index_t ldc) {
#if HYBRID_GEMM_AVX512_COMPILED
    if constexpr (std::is_same_v<T, float>) {
      if (active()) {
        avx512_detail::run_dense<Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
      }
    }
#endif
    Fallback::template run<T, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

#if HYBRID_GEMM_AVX512_COMPILED
  // C[M x N] = op(A) * B, B packed in advance (packed_weight, N and K its own); only where takes_packed_operands().
  // With an epilogue (gemm_epilogue.hpp): ep on every block of C once its sum is complete.
  template <class Exec = exec::default_policy, class Epilogue = no_epilogue>
  static void run_prepacked(bool ta, index_t M, const float* A, index_t lda, const avx512_detail::packed_weight& B,
                            float* C, index_t ldc, const Epilogue& ep = {}) {
    const avx512_detail::packed_panels panels = B.panels();
    avx512_detail::run_tiles<Exec>(
        ta, M, B.N, B.K, 1.f, A, lda, [&](index_t n0) { return avx512_detail::prepacked_b{panels, n0}; }, 0.f, C, ldc,
        ep);
  }
#endif

  // C = op(A) * op(B) (C not read), then ep on every block of C once its sum is complete: in the kernel's tiles
  // where the AVX-512 kernel runs, else over rows after Fallback's product (gemm_epilogue.hpp).
  template <class T, class Exec = exec::default_policy, class Epilogue>
  static void run_with_epilogue(bool ta, bool tb, index_t M, index_t N, index_t K, const T* A, index_t lda,
                                const T* B, index_t ldb, T* C, index_t ldc, const Epilogue& ep) {
#if HYBRID_GEMM_AVX512_COMPILED
    if constexpr (std::is_same_v<T, float>) {
      if (active()) {
        avx512_detail::run_dense<Exec>(ta, tb, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc, ep);
        return;
      }
    }
#endif
    run_then_epilogue<Fallback, Exec>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ep);
  }
};

using avx512 = avx512_or<>;

}  // namespace hybrid::gemm
