// Chooses the GEMM policy every matrix product uses by default (gemm::fastest, rule below): our AVX-512 kernel
// or OpenBLAS when the build has it (HYBRID_WITH_OPENBLAS), else Eigen. cuBLAS is opt-in per call site or by macro.
#pragma once
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "hybrid/backend/gemm_avx512.hpp"
#include "hybrid/backend/gemm_eigen.hpp"
#ifdef HYBRID_WITH_OPENBLAS
#include "hybrid/backend/gemm_blas.hpp"
#endif

namespace hybrid::gemm {

// Which kernel gemm::fastest gives float products: ours where avx512_active, else the fallback (OpenBLAS or Eigen),
// unless `requested` (the environment variable HYBRID_GEMM, when set and not empty) names one: "avx512" (refused
// on a CPU without AVX-512) or the fallback's name. Anything else is an error, not a silent default.
inline bool fastest_takes_avx512(const char* requested, bool avx512_active, const char* fallback_name) {
  const std::string want = requested ? requested : "";
  if (want.empty()) return avx512_active;
  if (want == "avx512") {
    if (!avx512_active) throw std::invalid_argument("HYBRID_GEMM=avx512: this CPU (or build) has no AVX-512 kernel");
    return true;
  }
  if (want == fallback_name) return false;
  throw std::invalid_argument("HYBRID_GEMM=" + want + ": expected \"avx512\" or \"" + fallback_name + "\"");
}

// The default. float products run our AVX-512 kernel (gemm::avx512) when the CPU has AVX-512; everything else
// (double, CPUs without AVX-512) goes to OpenBLAS, or to Eigen in a build without OpenBLAS. Decided once per
// process, at the first product; HYBRID_GEMM=openblas (or eigen) hands float products to the fallback, for
// comparisons. Why ours even where OpenBLAS runs AVX-512 kernels of its own (Zen 4 seen as Cooperlake, or
// OPENBLAS_CORETYPE=SkylakeX): there ours takes 0.92 to 1.07x its time (docs/performance.md 2.1), and
// only ours runs the fused paths (direct convolutions, prepacked weights, epilogues): whole models 1.0x (training)
// to 1.3x (the multimodal step on Zen 4) faster. Debian 12's OpenBLAS 0.3.21 runs its AVX2 kernels on Zen 5,
// where ours is 1.7 to 2.1x faster.
struct fastest {
  static constexpr const char* name = "fastest";
  using fallback = avx512_default_fallback;
  static bool use_avx512() {
    static const bool yes = fastest_takes_avx512(std::getenv("HYBRID_GEMM"), avx512::active(), fallback::name);
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
