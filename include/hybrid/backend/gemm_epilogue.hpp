// GEMM epilogues: work applied to each block of a product's output C as soon as its sum is complete, while the
// block is still in cache (a linear layer's bias, activation and residual add, ops/fused_linear.hpp).
#pragma once
#include <type_traits>

#include "hybrid/backend/parallel.hpp"

namespace hybrid::gemm {

// An epilogue is called as ep(c, ldc, i, j, rows, cols): c points at C(i, j), the block's first element; the
// block is rows x cols, rows ldc apart. It may be called for blocks of any size, in any order, from any thread,
// each element of C exactly once, so it must depend only on an element's position and value.
struct no_epilogue {};

// The epilogue of a sub-product whose C(0, 0) is C(m0, n0) of the whole.
template <class Epilogue>
struct shifted {
  const Epilogue* ep;
  index_t m0, n0;
  template <class T>
  void operator()(T* c, index_t ldc, index_t i, index_t j, index_t rows, index_t cols) const {
    (*ep)(c, ldc, m0 + i, n0 + j, rows, cols);
  }
};
template <class Epilogue>
auto shifted_epilogue(const Epilogue& ep, index_t m0, index_t n0) {
  if constexpr (std::is_same_v<Epilogue, no_epilogue>) return no_epilogue{};
  else return shifted<Epilogue>{&ep, m0, n0};
}

// For policies that cannot call an epilogue inside their product (BLAS, Eigen, cuBLAS): the product, then the
// epilogue over groups of whole rows.
template <class Gemm, class Exec, class T, class Epilogue>
void run_then_epilogue(bool ta, bool tb, index_t M, index_t N, index_t K, const T* A, index_t lda, const T* B,
                       index_t ldb, T* C, index_t ldc, const Epilogue& ep) {
  Gemm::template run<T, Exec>(ta, tb, M, N, K, T(1), A, lda, B, ldb, T(0), C, ldc);
  const exec::row_chunks rows(M, N);
  Exec::for_each(rows.count, [&](index_t k) {
    const index_t r0 = rows.begin(k);
    ep(C + r0 * ldc, ldc, r0, index_t{0}, rows.end(k) - r0, N);
  });
}

// C[M x N] = op(A) * op(B) (C not read), then ep over all of C: inside the product where the policy can
// (Gemm::run_with_epilogue), else after it.
template <class Gemm, class Exec, class T, class Epilogue>
void run_with_epilogue(bool ta, bool tb, index_t M, index_t N, index_t K, const T* A, index_t lda, const T* B,
                       index_t ldb, T* C, index_t ldc, const Epilogue& ep) {
  if (M == 0 || N == 0) return;
  if constexpr (requires { Gemm::template run_with_epilogue<T, Exec>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ep); })
    Gemm::template run_with_epilogue<T, Exec>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ep);
  else
    run_then_epilogue<Gemm, Exec>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ep);
}

}  // namespace hybrid::gemm
