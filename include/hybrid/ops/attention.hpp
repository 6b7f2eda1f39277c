// scaled_dot_product_attention: softmax(Q K^T / sqrt(d) + mask) V per (batch, head), fused: each head's scores,
// mask, softmax, dropout and context are computed in one task while they sit in cache, straight from and into
// [B, T, heads * d] (no head split or merge copies). Backward is fused the same way.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hybrid/backend/gemm.hpp"
#include "hybrid/ops/dropout.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid {

// q [B, Tq, heads * d], k and v [B, Tk, heads * d] -> [B, Tq, heads * d]: for every batch row b and head h (the
// h-th d columns), softmax(q_bh k_bh^T / sqrt(d) + mask) v_bh, with dropout p on the probabilities when training
// (the mask of dropout(probabilities [B, heads, Tq, Tk], p, rng): one key from rng per call). `mask` is added
// to the scores [B, heads, Tq, Tk] and broadcasts to them (BERT's [B, 1, 1, Tk] of 0 / -10000, a causal
// [Tq, Tk], ...); it gets no gradient. The probabilities are kept for backward only when a gradient is needed:
// [B, heads, Tq, Tk], as PyTorch's unfused attention keeps them. `probabilities`, when given, receives a copy of
// them [B, heads, Tq, Tk] (before dropout; Hugging Face's output_attentions, which in eval mode is the same).
template <class Exec = exec::default_policy, class Gemm = gemm::default_policy, class Simd = simd::default_policy,
          class T>
var<T> scaled_dot_product_attention(const var<T>& q, const var<T>& k, const var<T>& v, index_t heads,
                                    const var<T>& mask, double p, dropout_rng& rng, bool training,
                                    tensor<T>* probabilities = nullptr) {
  using P = typename Simd::template pack<T>;
  const char* op = "scaled_dot_product_attention";
  if (q.rank() != 3 || k.rank() != 3 || k.shape() != v.shape() || q.dim(0) != k.dim(0) || q.dim(2) != k.dim(2))
    throw shape_error(op, "q", q.shape(), "k", k.shape(), "need q [B, Tq, W], k and v [B, Tk, W] (v " + v.shape().str() + ")");
  if (heads <= 0 || q.dim(2) % heads != 0)
    throw shape_error(op, "q", q.shape(), "heads", hybrid::shape{heads}, "width is not a multiple of heads");
  detail::check_dropout_p(op, p);
  if (mask.valid() && mask.requires_grad())
    throw std::invalid_argument(std::string(op) + ": the mask gets no gradient; pass it as a constant");
  const index_t B = q.dim(0), Tq = q.dim(1), Tk = k.dim(1), W = q.dim(2), H = heads, D = W / heads;
  const hybrid::shape scores{B, H, Tq, Tk};
  const T* pm = mask.valid() ? mask.data() : nullptr;
  const row_broadcast mb = pm ? row_broadcast::make(op, "mask", scores, mask.shape()) : row_broadcast{};
  const T scale = T(1) / std::sqrt(static_cast<T>(D));
  const bool drop = training && p > 0;
  // One key per call, drawn before anything else, as dropout(probabilities) would.
  const detail::dropout_mask<T> dmask = drop ? detail::draw_dropout_mask<T>(op, p, B * H * Tq * Tk, rng)
                                             : detail::dropout_mask<T>{};

  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && any_requires_grad(q, k, v);
  var<T> out = make_result<T>(q.shape(), needs_grad);
  const index_t block = Tq * Tk;  // one (batch, head)'s scores
  T* probs = needs_grad ? tp.allocate<T>(B * H * block) : nullptr;  // kept for backward
  {
    tape_scope scratch;
    if (!probs) probs = tp.allocate<T>(B * H * block);
    T* dropped = drop ? tp.allocate<T>(B * H * block) : nullptr;
    const T *qv = q.data(), *kv = k.data(), *vv = v.data();
    T* ov = out.data();
    Exec::for_each(B * H, [&](index_t bh) {
      const index_t b = bh / H, h = bh % H;
      T* s = probs + bh * block;
      // Scores scaled on the way out of the product (alpha), then mask + softmax in place, row by row.
      Gemm::template run<T, exec::serial>(false, true, Tq, Tk, D, scale, qv + b * Tq * W + h * D, W,
                                          kv + b * Tk * W + h * D, W, T(0), s, Tk);
      for (index_t i = 0; i < Tq; ++i) {
        const index_t row = bh * Tq + i;
        detail::softmax_row<P>(s + i * Tk, pm ? pm + mb.row_offset(row) : nullptr, mb.col_step, Tk, s + i * Tk, false);
      }
      const T* used = s;
      if (drop) {
        dmask.template apply_block<false>(s, dropped + bh * block, bh * block, block);
        used = dropped + bh * block;
      }
      Gemm::template run<T, exec::serial>(false, false, Tq, D, Tk, T(1), used, Tk, vv + b * Tk * W + h * D, W, T(0),
                                          ov + b * Tq * W + h * D, W);
    });
    if (probabilities)
      *probabilities = tensor<T>::from(scores, std::span<const T>(probs, static_cast<std::size_t>(B * H * block)));
  }
  if (!needs_grad) return out;

  node<T>*nq = q.get(), *nk = k.get(), *nv = v.get(), *no = out.get();
  tp.record(no, [=] {
    tape& t = tape::current();
    // The adjoints first: the scratch scope's rewind would take back any allocated after its mark.
    const T* go = t.adjoint(no);
    T *gq = t.adjoint(nq), *gk = t.adjoint(nk), *gv = t.adjoint(nv);
    tape_scope scratch;
    // Per (batch, head): the dropped probabilities (recomputed from the key), and the gradients of the
    // probabilities and of the scores.
    const bool scores_grad = gq || gk;
    T* dropped = drop && gv ? t.allocate<T>(B * H * block) : nullptr;
    T* dprobs = scores_grad ? t.allocate<T>(B * H * block) : nullptr;
    T* dscores = scores_grad ? t.allocate<T>(B * H * block) : nullptr;
    const T *qv = nq->value, *kv = nk->value, *vv = nv->value;
    Exec::for_each(B * H, [&](index_t bh) {
      const index_t b = bh / H, h = bh % H, qo = b * Tq * W + h * D, ko = b * Tk * W + h * D;
      const T* pr = probs + bh * block;
      if (gv) {  // dV += Pd^T dO
        const T* used = pr;
        if (dropped) {
          dmask.template apply_block<false>(pr, dropped + bh * block, bh * block, block);
          used = dropped + bh * block;
        }
        Gemm::template run<T, exec::serial>(true, false, Tk, D, Tq, T(1), used, Tk, go + qo, W, T(1), gv + ko, W);
      }
      if (!scores_grad) return;
      // dPd = dO V^T, masked like the forward (dP), then softmax's backward into zeros (dS).
      T *dp = dprobs + bh * block, *ds = dscores + bh * block;
      Gemm::template run<T, exec::serial>(false, true, Tq, Tk, D, T(1), go + qo, W, vv + ko, W, T(0), dp, Tk);
      if (drop) dmask.template apply_block<false>(dp, dp, bh * block, block);
      std::fill_n(ds, block, T(0));
      detail::softmax_rows_backward<P>(pr, dp, ds, Tk, false, 0, Tq);
      // S = scale * Q K^T: dQ += scale * dS K, dK += scale * dS^T Q.
      if (gq) Gemm::template run<T, exec::serial>(false, false, Tq, D, Tk, scale, ds, Tk, kv + ko, W, T(1), gq + qo, W);
      if (gk) Gemm::template run<T, exec::serial>(true, false, Tk, D, Tq, scale, ds, Tk, qv + qo, W, T(1), gk + ko, W);
    });
  });
  return out;
}

}  // namespace hybrid
