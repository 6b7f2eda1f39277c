// The Eigen GEMM policy and the tiling all GEMM policies share: row-major C = alpha*op(A)*op(B) + beta*C,
// large products cut into tiles fixed by the sizes, each tile one single-threaded GEMM on a oneTBB task.
#pragma once
#include <Eigen/Core>
#include <algorithm>

#include "hybrid/backend/parallel.hpp"

namespace hybrid::gemm {

// Tiles are fixed by the sizes alone, so results do not depend on the thread count.
struct tiling {
  index_t mb, nb, m_tiles, n_tiles;
  tiling(index_t M, index_t N, index_t K) {
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    if (flops < 4e6) {
      mb = std::max<index_t>(M, 1);
      nb = std::max<index_t>(N, 1);
    } else {
      // Each tile repacks all of op(B): big tiles for tall products (4 at M = 2048) keep that cost
      // small while still giving every core work.
      mb = M >= 1024 ? 512 : M >= 256 ? 128 : std::max<index_t>(M, 1);
      nb = (M < 256 && N >= 512) ? 256 : std::max<index_t>(N, 1);
    }
    m_tiles = (M + mb - 1) / mb;
    n_tiles = (N + nb - 1) / nb;
  }
  index_t count() const { return m_tiles * n_tiles; }
};

// C = beta * C over m x n: the whole product when K == 0 (BLAS would read C even for beta == 0; here C is
// not read then, the contract every policy keeps).
template <class T>
void scale_by_beta(index_t m, index_t n, T beta, T* C, index_t ldc) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

template <class Kernel, class Exec, class T>
void run_tiled(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
               index_t ldb, T beta, T* C, index_t ldc) {
  if (M == 0 || N == 0) return;
  const tiling t(M, N, K);
  Exec::for_each(t.count(), [&](index_t tile) {
    const index_t m0 = (tile / t.n_tiles) * t.mb, n0 = (tile % t.n_tiles) * t.nb;
    const index_t m = std::min(t.mb, M - m0), n = std::min(t.nb, N - n0);
    const T* a = ta ? A + m0 : A + m0 * lda;
    const T* b = tb ? B + n0 * ldb : B + n0;
    Kernel::tile(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, C + m0 * ldc + n0, ldc);
  });
}

// Eigen 3.4: dependency-free, about 0.7x OpenBLAS on this kind of CPU.
struct eigen {
  static constexpr const char* name = "eigen";
  template <class T>
  static void tile(bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* A, index_t lda, const T* B,
                   index_t ldb, T beta, T* C, index_t ldc) {
    using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using cmap = Eigen::Map<const mat, Eigen::Unaligned, Eigen::OuterStride<>>;
    using omap = Eigen::Map<mat, Eigen::Unaligned, Eigen::OuterStride<>>;
    omap c(C, m, n, Eigen::OuterStride<>(ldc));
    auto product = [&](const auto& a) {
      auto go = [&](const auto& b) {
        if (k == 0) {
          if (beta == T(0)) c.setZero();
          else c *= beta;
          return;
        }
        if (beta == T(0)) {
          c.noalias() = alpha * (a * b);  // C is not read: it may hold garbage
        } else {
          if (beta != T(1)) c *= beta;
          c.noalias() += alpha * (a * b);
        }
      };
      if (tb) go(cmap(B, n, k, Eigen::OuterStride<>(ldb)).transpose());
      else go(cmap(B, k, n, Eigen::OuterStride<>(ldb)));
    };
    if (ta) product(cmap(A, k, m, Eigen::OuterStride<>(lda)).transpose());
    else product(cmap(A, m, k, Eigen::OuterStride<>(lda)));
  }
  template <class T, class Exec = exec::default_policy>
  static void run(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
                  index_t ldb, T beta, T* C, index_t ldc) {
    run_tiled<eigen, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
};

}  // namespace hybrid::gemm
