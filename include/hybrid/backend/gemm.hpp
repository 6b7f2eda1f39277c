// Chooses the GEMM policy every matrix product uses by default (gemm::fastest, rule below): our AVX-512 kernel
// or OpenBLAS when the build has it (HYBRID_WITH_OPENBLAS), else Eigen. cuBLAS is opt-in per call site or by macro.
#pragma once
#include <cctype>
#include <string>

#include "hybrid/backend/gemm_avx512.hpp"
#include "hybrid/backend/gemm_eigen.hpp"
#ifdef HYBRID_WITH_OPENBLAS
#include "hybrid/backend/gemm_blas.hpp"
#endif

namespace hybrid::gemm {

// Whether OpenBLAS runs its AVX-512 kernels in this process (core SkylakeX, CooperLake or SapphireRapids, e.g.
// with OPENBLAS_CORETYPE=SkylakeX), from openblas_get_corename(); asked once.
inline bool openblas_runs_avx512() {
#ifdef HYBRID_WITH_OPENBLAS
  static const bool yes = [] {
    const char* core = openblas_get_corename();
    std::string c = core ? core : "";
    for (char& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return c.find("skylakex") != std::string::npos || c.find("cooperlake") != std::string::npos ||
           c.find("sapphirerapids") != std::string::npos;
  }();
  return yes;
#else
  return false;
#endif
}

// The default. float products run our AVX-512 kernel (gemm::avx512) when the CPU has AVX-512 and OpenBLAS is
// not already running AVX-512 kernels; everything else (double, CPUs without AVX-512, OpenBLAS with its own
// AVX-512 kernels) goes to OpenBLAS, or to Eigen in a build without OpenBLAS. Decided once per process, at the
// first product. Why: Debian 12's OpenBLAS 0.3.21 does not know Zen 4/5 and runs its AVX2 (Haswell) kernels
// there; ours is 1.7 to 2.1x faster on one core (docs/performance.md, 2.1). With OPENBLAS_CORETYPE=SkylakeX
// OpenBLAS is as fast or faster, so it keeps the work.
struct fastest {
  static constexpr const char* name = "fastest";
  using fallback = avx512_default_fallback;
  static bool use_avx512() {
    static const bool yes = avx512::active() && !openblas_runs_avx512();
    return yes;
  }
  // Whether float products may take operands packed in advance or from an image (see avx512_or).
  static bool takes_packed_operands() { return use_avx512(); }
  // The policy float products go to in this process: "avx512", "openblas" or "eigen".
  static const char* chosen() { return use_avx512() ? avx512::name : fallback::name; }

  template <class T>
  static void tile(bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* A, index_t lda, const T* B,
                   index_t ldb, T beta, T* C, index_t ldc) {
    if (std::is_same_v<T, float> && use_avx512()) avx512::tile<T>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    else fallback::tile<T>(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  template <class T, class Exec = exec::default_policy>
  static void run(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
                  index_t ldb, T beta, T* C, index_t ldc) {
    if (std::is_same_v<T, float> && use_avx512())
      avx512::run<T, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else fallback::run<T, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  // C = op(A) * op(B), then an epilogue on C's blocks (gemm_epilogue.hpp).
  template <class T, class Exec = exec::default_policy, class Epilogue>
  static void run_with_epilogue(bool ta, bool tb, index_t M, index_t N, index_t K, const T* A, index_t lda,
                                const T* B, index_t ldb, T* C, index_t ldc, const Epilogue& ep) {
    if (std::is_same_v<T, float> && use_avx512())
      avx512::run_with_epilogue<T, Exec>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ep);
    else run_then_epilogue<fallback, Exec>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ep);
  }
  // Products with op(B) packed in advance (gemm::prepacked_weights), where takes_packed_operands().
#if HYBRID_GEMM_AVX512_COMPILED
  template <class Exec = exec::default_policy, class Epilogue = no_epilogue>
  static void run_prepacked(bool ta, index_t M, const float* A, index_t lda, const avx512_detail::packed_weight& B,
                            float* C, index_t ldc, const Epilogue& ep = {}) {
    avx512::run_prepacked<Exec>(ta, M, A, lda, B, C, ldc, ep);
  }
#endif
};

using default_policy = fastest;

}  // namespace hybrid::gemm
