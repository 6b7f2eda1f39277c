// GEMM policy over a CBLAS (OpenBLAS from Debian): ~1.4x Eigen's GEMM on these CPUs.
// OpenBLAS runs single-threaded per tile; oneTBB owns the threads (no second pool).
#pragma once
#include <cblas.h>

#include <mutex>

#include "hybrid/backend/gemm_eigen.hpp"

namespace hybrid::gemm {

struct blas {
  static constexpr const char* name = "openblas";

  static void single_threaded() {
#if defined(OPENBLAS_VERSION) || defined(OPENBLAS_CONFIG_H)
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); });
#endif
  }
  template <class T>
  static void tile(bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* A, index_t lda, const T* B,
                   index_t ldb, T beta, T* C, index_t ldc) {
    if (k == 0) {  // not eigen::tile: that would instantiate Eigen's whole GEMM in every program for this case
      scale_by_beta(m, n, beta, C, ldc);
      return;
    }
    const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb),
                  beta, C, static_cast<blasint>(ldc));
    else
      cblas_dgemm(CblasRowMajor, opa, opb, M, N, K, alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb),
                  beta, C, static_cast<blasint>(ldc));
  }
  template <class T, class Exec = exec::default_policy>
  static void run(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
                  index_t ldb, T beta, T* C, index_t ldc) {
    single_threaded();
    run_tiled<blas, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
};

}  // namespace hybrid::gemm
