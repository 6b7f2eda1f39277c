// Losses as fused, numerically stable primitives with PyTorch semantics: cross_entropy, bce_with_logits,
// mse_loss, l1_loss. Each keeps only what its backward needs (cross_entropy: one logsumexp per row).
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/ops/reduce.hpp"

namespace hybrid {

// none: one loss per element (per row for cross_entropy), shaped like the input (without the class axis).
// mean / sum: a scalar (rank 0). A mean over nothing is 0, not PyTorch's NaN (0/0): a batch whose
// targets are all ignored or masked contributes nothing instead of poisoning the step with NaN.
enum class reduction { none, mean, sum };

struct loss_options {
  hybrid::reduction reduction = hybrid::reduction::mean;
};

struct cross_entropy_options {
  std::int32_t ignore_index = -100;
  double label_smoothing = 0;  // eps: the target distribution is (1 - eps) * onehot + eps / C
  hybrid::reduction reduction = hybrid::reduction::mean;
};

// A loss target: a var (which gets a gradient when it has one, as in PyTorch) or a constant tensor.
template <class Y, class T>
concept loss_target = std::same_as<Y, var<T>> || std::same_as<Y, tensor<T>>;

namespace loss_detail {

template <class T>
var<T> target_var(const var<T>& y) {
  return y;
}
template <class T>
var<T> target_var(const tensor<T>& y) {
  return constant(y);
}

// Row kernels on top of reduce.hpp's: logsumexp of a row, and the softmax part of its gradient.
template <class P, class T>
T row_logsumexp(const T* x, index_t n) {
  const T m = rowwise::max<P>(x, n);
  return m + std::log(rowwise::fold<P>(
                 n, T(0),
                 [&]<class Q>(index_t c) {
                   using std::exp;
                   return Q(exp(rowwise::load<Q>(x + c) - Q(m)));
                 },
                 rowwise::plus));
}
// dx[c] += g * (exp(x[c] - lse) - offset)
template <class P, class T>
void add_softmax_grad(const T* x, T* dx, index_t n, T lse, T g, T offset) {
  rowwise::for_each<P, T>(n, [&]<class Q>(index_t c) {
    using std::exp;
    rowwise::store<Q>(dx + c, Q(rowwise::load<Q>(dx + c) + Q(g) * (exp(rowwise::load<Q>(x + c) - Q(lse)) - Q(offset))));
  });
}

inline hybrid::shape loss_shape(reduction r, const hybrid::shape& per_element) {
  return r == reduction::none ? per_element : hybrid::shape{};
}

// An elementwise loss f(x, y) (F: value(x, y, col) and grad(x, y, col) -> {d/dx, d/dy}) over equal
// shapes, reduced by `red`; the forward sum folds per-chunk partials in order (deterministic).
template <class Exec, class T, class F>
var<T> pointwise_loss(const char* op, const var<T>& x, const var<T>& y, F f, reduction red) {
  if (x.shape() != y.shape()) throw shape_error(op, "input", x.shape(), "target", y.shape(), "shapes must be equal");
  const index_t n = x.numel(), cols = x.shape().cols(), rows = n == 0 ? 0 : n / cols;
  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && any_requires_grad(x, y);
  var<T> out = make_result<T>(loss_shape(red, x.shape()), needs_grad);
  const exec::row_chunks chunks(rows, cols);
  double* partial = tp.allocate<double>(chunks.count);
  const T *px = x.data(), *py = y.data();
  T* po = out.data();
  Exec::for_each(chunks.count, [&](index_t k) {
    double acc = 0;
    for (index_t r = chunks.begin(k); r < chunks.end(k); ++r)
      for (index_t c = 0, i = r * cols; c < cols; ++c, ++i) {
        const T v = f.value(px[i], py[i], c);
        if (red == reduction::none) po[i] = v;
        else acc += v;
      }
    partial[k] = acc;
  });
  double total = 0;
  for (index_t k = 0; k < chunks.count; ++k) total += partial[k];
  const T scale = red == reduction::mean ? (n > 0 ? T(1) / T(n) : T(0)) : T(1);
  if (red != reduction::none) po[0] = red == reduction::mean ? (n > 0 ? T(total / double(n)) : T(0)) : T(total);
  if (!needs_grad) return out;

  node<T>*nx = x.get(), *ny = y.get(), *no = out.get();
  tp.record(no, [=] {
    tape& t = tape::current();
    const T* g = t.adjoint(no);
    T *gx = t.adjoint(nx), *gy = t.adjoint(ny);
    Exec::for_each(chunks.count, [&](index_t k) {
      for (index_t r = chunks.begin(k); r < chunks.end(k); ++r)
        for (index_t c = 0, i = r * cols; c < cols; ++c, ++i) {
          const T gi = red == reduction::none ? g[i] : g[0] * scale;
          const auto [dx, dy] = f.grad(nx->value[i], ny->value[i], c);
          if (gx) gx[i] += gi * dx;
          if (gy) gy[i] += gi * dy;
        }
    });
  });
  return out;
}

struct mse_fn {
  template <class T>
  T value(T x, T y, index_t) const {
    return (x - y) * (x - y);
  }
  template <class T>
  std::pair<T, T> grad(T x, T y, index_t) const {
    return {T(2) * (x - y), T(-2) * (x - y)};
  }
};
struct l1_fn {
  template <class T>
  T value(T x, T y, index_t) const {
    return std::abs(x - y);
  }
  // sign(x - y), 0 at the kink as in PyTorch.
  template <class T>
  std::pair<T, T> grad(T x, T y, index_t) const {
    const T s = x > y ? T(1) : (x < y ? T(-1) : T(0));
    return {s, -s};
  }
};
// (1 - y) x + (1 + (pw - 1) y) softplus(-x), softplus(-x) = max(-x, 0) + log1p(exp(-|x|)) (no overflow).
template <class T>
struct bce_fn {
  const T* pos_weight = nullptr;  // per column, or one for all; null means 1
  index_t pos_weight_size = 0;
  T weight(index_t c) const { return pos_weight ? pos_weight[pos_weight_size == 1 ? 0 : c] : T(1); }
  static T softplus_neg(T x) { return std::max(-x, T(0)) + std::log1p(std::exp(-std::abs(x))); }
  T value(T x, T y, index_t c) const { return (T(1) - y) * x + (T(1) + (weight(c) - T(1)) * y) * softplus_neg(x); }
  std::pair<T, T> grad(T x, T y, index_t c) const {
    const T pw = weight(c);
    const T sigmoid_neg = T(1) / (T(1) + std::exp(x));
    return {(T(1) - y) - (T(1) + (pw - T(1)) * y) * sigmoid_neg, -x + (pw - T(1)) * softplus_neg(x)};
  }
};

}  // namespace loss_detail

// Softmax cross entropy of logits [..., C] (any leading dims: [N, C], [B, T, C]) against one class index
// per row (targets in row-major order), as torch.nn.functional.cross_entropy: rows whose target is
// ignore_index are skipped and the mean is over the rows counted. Optional per-row weights (one per row)
// scale each row's loss; the mean then divides by the sum of weights of the rows counted, and a row of
// weight 0 is skipped entirely (its target is not even checked): the mask of a multi-task batch.
// Fused and stable: one pass computes each row's logsumexp, the only thing backward keeps; backward is
// dlogits = (softmax - target distribution) * g * weight / count.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> cross_entropy(const var<T>& logits, std::span<const std::int32_t> targets, cross_entropy_options opt = {},
                     std::type_identity_t<std::span<const T>> weights = {}) {
  using P = typename Simd::template pack<T>;
  const hybrid::shape& s = logits.shape();
  const index_t n_targets = static_cast<index_t>(targets.size());
  const index_t C = s.cols(), N = C == 0 ? 0 : s.numel() / C;
  if (s.rank() < 1 || C == 0)
    throw shape_error("cross_entropy", "logits", s, "targets", hybrid::shape{n_targets}, "logits need a class axis");
  if (n_targets != N)
    throw shape_error("cross_entropy", "logits", s, "targets", hybrid::shape{n_targets},
                      "one target per row of logits");
  if (!weights.empty() && static_cast<index_t>(weights.size()) != N)
    throw shape_error("cross_entropy", "logits", s, "weights", hybrid::shape{static_cast<index_t>(weights.size())},
                      "one weight per row of logits");
  if (!(opt.label_smoothing >= 0 && opt.label_smoothing <= 1))
    throw std::invalid_argument("cross_entropy: label_smoothing must be in [0, 1], got " +
                                std::to_string(opt.label_smoothing));
  const std::int32_t ignore = opt.ignore_index;
  const T* w_in = weights.empty() ? nullptr : weights.data();
  auto skipped = [ignore](std::int32_t t, const T* w, index_t r) { return t == ignore || (w && w[r] == T(0)); };
  double denom = 0;
  for (index_t r = 0; r < N; ++r) {
    const std::int32_t t = targets[static_cast<std::size_t>(r)];
    if (skipped(t, w_in, r)) continue;
    if (t < 0 || t >= C)
      throw shape_error("cross_entropy: target " + std::to_string(t) + " at row " + std::to_string(r) +
                        " is out of range for " + std::to_string(C) + " classes (logits " + s.str() + ")");
    denom += w_in ? double(w_in[r]) : 1.0;
  }

  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && logits.requires_grad();
  const reduction red = opt.reduction;
  var<T> out = make_result<T>(loss_detail::loss_shape(red, s.dropped(-1)), needs_grad);
  T* row_loss = red == reduction::none ? out.data() : tp.allocate<T>(N);
  T* lse = needs_grad ? tp.allocate<T>(N) : nullptr;
  // Backward outlives the caller's spans: targets and weights are copied to the arena.
  std::int32_t* tg = tp.allocate<std::int32_t>(N);
  std::copy(targets.begin(), targets.end(), tg);
  T* w = nullptr;
  if (w_in) {
    w = tp.allocate<T>(N);
    std::copy(weights.begin(), weights.end(), w);
  }
  const T eps = T(opt.label_smoothing), keep = T(1) - eps;
  const exec::row_chunks chunks(N, C);
  const T* x = logits.data();
  Exec::for_each(chunks.count, [&](index_t k) {
    for (index_t r = chunks.begin(k); r < chunks.end(k); ++r) {
      const T* xr = x + r * C;
      if (skipped(tg[r], w, r)) {
        row_loss[r] = T(0);
        if (lse) lse[r] = T(0);
        continue;
      }
      const T l = loss_detail::row_logsumexp<P>(xr, C);
      // -sum_c q_c log p_c = (1 - eps) (lse - x_t) + eps (lse - mean(x)): each term is >= 0.
      T loss = keep * (l - xr[tg[r]]);
      if (eps != T(0)) loss += eps * (l - rowwise::sum<P>(xr, C) / T(C));
      row_loss[r] = w ? w[r] * loss : loss;
      if (lse) lse[r] = l;
    }
  });
  double total = 0;
  if (red != reduction::none)
    for (index_t r = 0; r < N; ++r) total += row_loss[r];
  const T scale = red == reduction::mean ? (denom != 0 ? T(1 / denom) : T(0)) : T(1);
  if (red == reduction::mean) out.data()[0] = denom != 0 ? T(total / denom) : T(0);
  if (red == reduction::sum) out.data()[0] = T(total);
  if (!needs_grad) return out;

  node<T>*nx = logits.get(), *no = out.get();
  tp.record(no, [=] {
    tape& t = tape::current();
    const T* g = t.adjoint(no);
    T* gx = t.adjoint(nx);
    Exec::for_each(chunks.count, [&](index_t k) {
      for (index_t r = chunks.begin(k); r < chunks.end(k); ++r) {
        if (skipped(tg[r], w, r)) continue;
        T gr = red == reduction::none ? g[r] : g[0] * scale;
        if (w) gr *= w[r];
        T* dx = gx + r * C;
        loss_detail::add_softmax_grad<P>(nx->value + r * C, dx, C, lse[r], gr, eps / T(C));
        dx[tg[r]] -= gr * keep;
      }
    });
  });
  return out;
}

// Binary cross entropy on logits, as torch.nn.functional.binary_cross_entropy_with_logits:
// max(x, 0) - x y + log1p(exp(-|x|)), stable for any x. Targets may be soft (in [0, 1]).
template <class Exec = exec::default_policy, class T, class Y>
  requires loss_target<Y, T>
var<T> bce_with_logits(const var<T>& logits, const Y& targets, loss_options opt = {}) {
  using namespace loss_detail;
  return pointwise_loss<Exec>("bce_with_logits", logits, target_var(targets), bce_fn<T>{}, opt.reduction);
}
// With pos_weight (one per class, i.e. per last-dim column, or one for all): positives weigh pw,
// (1 - y) x + (1 + (pw - 1) y) softplus(-x).
template <class Exec = exec::default_policy, class T, class Y>
  requires loss_target<Y, T>
var<T> bce_with_logits(const var<T>& logits, const Y& targets, std::type_identity_t<std::span<const T>> pos_weight,
                       loss_options opt = {}) {
  const index_t np = static_cast<index_t>(pos_weight.size());
  if (np != 1 && np != logits.shape().cols())
    throw shape_error("bce_with_logits", "logits", logits.shape(), "pos_weight", hybrid::shape{np},
                      "one weight per class (last dimension) or one for all");
  T* pw = tape::current().allocate<T>(np);  // backward outlives the caller's span
  std::copy(pos_weight.begin(), pos_weight.end(), pw);
  using namespace loss_detail;
  return pointwise_loss<Exec>("bce_with_logits", logits, target_var(targets), bce_fn<T>{pw, np}, opt.reduction);
}

// Squared error (x - y)^2, mean over all elements by default (torch.nn.functional.mse_loss).
template <class Exec = exec::default_policy, class T, class Y>
  requires loss_target<Y, T>
var<T> mse_loss(const var<T>& pred, const Y& target, loss_options opt = {}) {
  using namespace loss_detail;
  return pointwise_loss<Exec>("mse_loss", pred, target_var(target), mse_fn{}, opt.reduction);
}

// Absolute error |x - y| (torch.nn.functional.l1_loss); its gradient at x == y is 0.
template <class Exec = exec::default_policy, class T, class Y>
  requires loss_target<Y, T>
var<T> l1_loss(const var<T>& pred, const Y& target, loss_options opt = {}) {
  using namespace loss_detail;
  return pointwise_loss<Exec>("l1_loss", pred, target_var(target), l1_fn{}, opt.reduction);
}

// The float instantiations most programs use, prebuilt with HYBRID_COMPILED (core/compiled.hpp).
HYBRID_EXTERN_FLOAT(var<float> cross_entropy<exec::tbb, simd::native, float>(const var<float>&,
                                                                              std::span<const std::int32_t>,
                                                                              cross_entropy_options,
                                                                              std::span<const float>))
HYBRID_EXTERN_FLOAT(var<float> loss_detail::pointwise_loss<exec::tbb, float, loss_detail::bce_fn<float>>(
    const char*, const var<float>&, const var<float>&, loss_detail::bce_fn<float>, reduction))

}  // namespace hybrid
