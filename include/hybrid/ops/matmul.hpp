// matmul(a, b): matrix product with optional transposes, batched over leading dimensions.
// Both passes go through the GEMM policy; a 2-D b (a weight) is applied to all rows of a at once.
#pragma once
#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/gemm.hpp"
#include "hybrid/backend/prepacked_weights.hpp"
#include "hybrid/core/compiled.hpp"

namespace hybrid {

struct transpose_flags {
  bool a = false, b = false;
};

namespace detail {
// C = op(A) * op(W) with W packed once (gemm::prepacked_weights): inside such a scope, for a parameter's W, in
// float, where the GEMM policy runs our AVX-512 kernel. False: not done here, the caller runs the product.
template <class Gemm, class Exec, class T, class Epilogue = gemm::no_epilogue>
bool run_with_prepacked_weight([[maybe_unused]] const node<T>* w, [[maybe_unused]] transpose_flags t,
                               [[maybe_unused]] index_t M, [[maybe_unused]] index_t N, [[maybe_unused]] index_t K,
                               [[maybe_unused]] const T* A, [[maybe_unused]] index_t lda, [[maybe_unused]] const T* W,
                               [[maybe_unused]] index_t ldw, [[maybe_unused]] T* C, [[maybe_unused]] index_t ldc,
                               [[maybe_unused]] const Epilogue& ep = {}) {
#if HYBRID_GEMM_AVX512_COMPILED
  if constexpr (std::is_same_v<T, float> && requires { Gemm::takes_packed_operands(); }) {
    if (w->weight && gemm::prepacked_weights::active() && Gemm::takes_packed_operands()) {
      Gemm::template run_prepacked<Exec>(t.a, M, A, lda, gemm::prepacked_weights::get(t.b, K, N, W, ldw), C, ldc,
                                         ep);
      return true;
    }
  }
#endif
  return false;
}
}  // namespace detail

// a: [..., M, K] (or [..., K, M] with t.a), b: [K, N] or [..., K, N] (or its transpose with t.b).
// Result: [..., M, N]. Linear layers use matmul(x, W, {.b = true}) with W stored [out, in].
template <class Gemm = gemm::default_policy, class Exec = exec::default_policy, class T>
var<T> matmul(const var<T>& a, const var<T>& b, transpose_flags t = {}) {
  const hybrid::shape& sa = a.shape();
  const hybrid::shape& sb = b.shape();
  if (sa.rank() < 2 || sb.rank() < 2) throw shape_error("matmul", "a", sa, "b", sb, "both need rank >= 2");
  const bool shared_b = sb.rank() == 2;
  if (!shared_b && (sb.rank() != sa.rank() || sa.dropped(-1).dropped(-1) != sb.dropped(-1).dropped(-1)))
    throw shape_error("matmul", "a", sa, "b", sb, "batched operands need equal leading dimensions");
  if (shared_b && t.a && sa.rank() > 2)
    throw shape_error("matmul", "a", sa, "b", sb, "a transposed a needs a batched b");
  const index_t ar = sa.dim(-2), ac = sa.dim(-1), br = sb.dim(-2), bc = sb.dim(-1);
  const index_t M = t.a ? ac : ar, K = t.a ? ar : ac, N = t.b ? br : bc;
  if ((t.b ? bc : br) != K) throw shape_error("matmul", "a", sa, "b", sb, "inner dimensions differ");

  hybrid::shape so = sa.with(-2, M).with(-1, N);
  // A shared weight multiplies every row of a: fold the leading dimensions into M.
  const index_t batch = shared_b ? 1 : sa.numel() / std::max<index_t>(ar * ac, 1);
  const index_t Mf = shared_b ? sa.numel() / std::max<index_t>(K, 1) : M;
  if (shared_b && K == 0) throw shape_error("matmul", "a", sa, "b", sb, "empty inner dimension");
  const index_t lda = ac, ldb = bc, ldc = N;
  const index_t a_step = ar * ac, b_step = br * bc, c_step = M * N;

  const bool needs_grad = tape::current().recording() && any_requires_grad(a, b);
  var<T> out = make_result<T>(so, needs_grad);
  const T *pa = a.data(), *pb = b.data();
  T* pc = out.data();
  if (batch == 1) {
    if (!detail::run_with_prepacked_weight<Gemm, Exec>(b.get(), t, Mf, N, K, pa, lda, pb, ldb, pc, ldc))
      Gemm::template run<T, Exec>(t.a, t.b, Mf, N, K, T(1), pa, lda, pb, ldb, T(0), pc, ldc);
  } else {
    Exec::for_each(batch, [&](index_t i) {
      Gemm::template run<T, exec::serial>(t.a, t.b, M, N, K, T(1), pa + i * a_step, lda, pb + i * b_step, ldb, T(0),
                                          pc + i * c_step, ldc);
    });
  }
  if (!needs_grad) return out;

  node<T>*na = a.get(), *nb = b.get(), *nc = out.get();
  tape::current().record(nc, [=] {
    tape& tp = tape::current();
    const T* dc = tp.adjoint(nc);
    // dA is written whole by its products below (every element, once): a fresh adjoint is overwritten (beta 0)
    // instead of zeroed and added to. dB after dA, so that matmul(x, x) adds its second part.
    bool fresh_a = false;
    T* ga = tp.adjoint_to_overwrite(na, fresh_a);
    T* gb = tp.adjoint(nb);
    const T beta_a = fresh_a ? T(0) : T(1);
    auto grad_a = [&](const T* A, const T* B, const T* dC, T* dA, index_t m) {
      (void)A;
      // C = op(A) op(B):  dA = dC op(B)^T, or its transpose when A is stored transposed.
      if (!t.a) Gemm::template run<T, exec::serial>(false, !t.b, m, K, N, T(1), dC, ldc, B, ldb, beta_a, dA, lda);
      else Gemm::template run<T, exec::serial>(t.b, true, K, m, N, T(1), B, ldb, dC, ldc, beta_a, dA, lda);
    };
    auto grad_b = [&](const T* A, const T* dC, T* dB, index_t m) {
      if (!t.b) Gemm::template run<T, exec::serial>(!t.a, false, K, N, m, T(1), A, lda, dC, ldc, T(1), dB, ldb);
      else Gemm::template run<T, exec::serial>(true, t.a, N, K, m, T(1), dC, ldc, A, lda, T(1), dB, ldb);
    };
    if (batch == 1) {
      // One big product each: let the policy tile it across threads.
      if (ga) {
        if (!t.a) Gemm::template run<T, Exec>(false, !t.b, Mf, K, N, T(1), dc, ldc, nb->value, ldb, beta_a, ga, lda);
        else Gemm::template run<T, Exec>(t.b, true, K, Mf, N, T(1), nb->value, ldb, dc, ldc, beta_a, ga, lda);
      }
      if (gb) {
        if (!t.b) Gemm::template run<T, Exec>(!t.a, false, K, N, Mf, T(1), na->value, lda, dc, ldc, T(1), gb, ldb);
        else Gemm::template run<T, Exec>(true, t.a, N, K, Mf, T(1), dc, ldc, na->value, lda, T(1), gb, ldb);
      }
      return;
    }
    Exec::for_each(batch, [&](index_t i) {
      if (ga) grad_a(na->value + i * a_step, nb->value + i * b_step, dc + i * c_step, ga + i * a_step, M);
      if (gb) grad_b(na->value + i * a_step, dc + i * c_step, gb + i * b_step, M);
    });
  });
  return out;
}

// The float instantiation most programs use, prebuilt with HYBRID_COMPILED (core/compiled.hpp).
HYBRID_EXTERN_FLOAT(var<float> matmul<gemm::fastest, exec::tbb, float>(const var<float>&, const var<float>&,
                                                                       transpose_flags))

}  // namespace hybrid
