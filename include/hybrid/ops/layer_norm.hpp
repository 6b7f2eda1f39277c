// layer_norm (BERT) and rms_norm (LLaMA / T5) over the last axis, with a per-feature scale (and shift).
// Backward reads x and the per-row mean and 1/std kept in arena scratch; nothing else is saved.
#pragma once
#include <cmath>
#include <string>

#include "hybrid/core/compiled.hpp"
#include "hybrid/ops/reduce.hpp"

namespace hybrid {
namespace detail {

// Everything a normalization pass touches; plain data so the backward callback can hold it.
// mean is null for rms_norm (mean 0), beta null when there is no shift.
template <class T>
struct norm_rows {
  const T *x, *gamma, *beta;
  T *mean, *rstd;  // per row; null when no backward will read them
  index_t cols;
  T inv_n, eps;
  bool centered;
};

// y = (x - mean) * rstd * gamma + beta for rows [r0, r1).
template <class P, class T>
HYBRID_KERNEL void normalize_forward(norm_rows<T> a, T* y, index_t r0, index_t r1) {
  using rowwise::load;
  using rowwise::store;
  const index_t n = a.cols;
  for (index_t r = r0; r < r1; ++r) {
    const T* xr = a.x + r * n;
    T* yr = y + r * n;
    // Two passes (mean, then squared deviations): exact where E[x^2] - E[x]^2 would cancel.
    const T mu = a.centered ? rowwise::sum<P>(xr, n) * a.inv_n : T(0);
    const T var = rowwise::fold<P>(
                      n, T(0),
                      [&]<class Q>(index_t c) {
                        const Q d = load<Q>(xr + c) - Q(mu);
                        return Q(d * d);
                      },
                      rowwise::plus) *
                  a.inv_n;  // biased, as PyTorch
    const T rs = T(1) / std::sqrt(var + a.eps);
    if (a.mean) a.mean[r] = mu;
    if (a.rstd) a.rstd[r] = rs;
    rowwise::for_each<P, T>(n, [&]<class Q>(index_t c) {
      const Q v = (load<Q>(xr + c) - Q(mu)) * Q(rs) * load<Q>(a.gamma + c);
      store<Q>(yr + c, a.beta ? Q(v + load<Q>(a.beta + c)) : v);
    });
  }
}

// Rows [r0, r1): with xhat = (x - mu) * rs and h = g * gamma,
//   dx += rs * (h - mean(h) - xhat * mean(h * xhat)),  dgamma += g * xhat,  dbeta += g,
// dx, dgamma, dbeta each skipped when null; dgamma and dbeta are this chunk's partial sums.
template <class P, class T>
HYBRID_KERNEL void normalize_backward(norm_rows<T> a, const T* g, T* dx, T* dgamma, T* dbeta, index_t r0, index_t r1) {
  using rowwise::load;
  using rowwise::store;
  const index_t n = a.cols;
  const T* w = a.gamma;
  for (index_t r = r0; r < r1; ++r) {
    const T *xr = a.x + r * n, *gr = g + r * n;
    T* d = dx ? dx + r * n : nullptr;
    const T mu = a.mean ? a.mean[r] : T(0), rs = a.rstd[r];
    T mh = 0, mhx = 0;
    if (d) {
      mh = a.centered ? rowwise::dot<P>(gr, w, n) * a.inv_n : T(0);
      mhx = rowwise::fold<P>(
                n, T(0),
                [&]<class Q>(index_t c) {
                  return Q(load<Q>(gr + c) * load<Q>(w + c) * (load<Q>(xr + c) - Q(mu)) * Q(rs));
                },
                rowwise::plus) *
            a.inv_n;
    }
    rowwise::for_each<P, T>(n, [&]<class Q>(index_t c) {
      const Q gc = load<Q>(gr + c);
      const Q xh = (load<Q>(xr + c) - Q(mu)) * Q(rs);
      if (d) store<Q>(d + c, Q(load<Q>(d + c) + Q(rs) * (gc * load<Q>(w + c) - Q(mh) - xh * Q(mhx))));
      if (dgamma) store<Q>(dgamma + c, Q(load<Q>(dgamma + c) + gc * xh));
      if (dbeta) store<Q>(dbeta + c, Q(load<Q>(dbeta + c) + gc));
    });
  }
}

// layer_norm (centered, with beta) and rms_norm (mean 0, no beta) share everything else.
template <class Exec, class Simd, class T>
var<T> normalize(const char* op, const var<T>& x, const var<T>& gamma, const var<T>* beta, double eps, bool centered) {
  using P = typename Simd::template pack<T>;
  const hybrid::shape& s = x.shape();
  const index_t rows = s.rows(), cols = s.cols();
  if (s.rank() < 1) throw shape_error(std::string(op) + ": needs rank >= 1, input shape is " + s.str());
  if (gamma.shape() != hybrid::shape{cols}) throw shape_error(op, "gamma", gamma.shape(), "input", s, "needs [cols]");
  if (beta && beta->shape() != hybrid::shape{cols}) throw shape_error(op, "beta", beta->shape(), "input", s, "needs [cols]");

  tape& tp = tape::current();
  const bool needs_grad =
      tp.recording() && (x.requires_grad() || gamma.requires_grad() || (beta && beta->requires_grad()));
  var<T> out = make_result<T>(s, needs_grad);
  // Backward keeps only the per-row mean and 1/std (and reads x, gamma from their own nodes).
  const norm_rows<T> a{x.data(),
                       gamma.data(),
                       beta ? beta->data() : nullptr,
                       needs_grad && centered ? tp.allocate<T>(rows) : nullptr,
                       needs_grad ? tp.allocate<T>(rows) : nullptr,
                       cols,
                       T(1) / static_cast<T>(cols),
                       static_cast<T>(eps),
                       centered};
  const exec::row_chunks chunks(rows, cols);
  T* py = out.data();
  Exec::for_each(chunks.count, [&](index_t k) { normalize_forward<P>(a, py, chunks.begin(k), chunks.end(k)); });
  if (!needs_grad) return out;

  node<T>*nx = x.get(), *ng = gamma.get(), *nb = beta ? beta->get() : nullptr, *ny = out.get();
  tp.record(ny, [=] {
    tape& t = tape::current();
    const T* gy = t.adjoint(ny);
    T *gx = t.adjoint(nx), *gg = t.adjoint(ng), *gb = nb ? t.adjoint(nb) : nullptr;
    // gamma and beta sum over rows: per-chunk partials, folded in chunk order (thread-count free).
    T* dgamma = gg ? t.allocate_zeroed<T>(chunks.count * cols) : nullptr;
    T* dbeta = gb ? t.allocate_zeroed<T>(chunks.count * cols) : nullptr;
    Exec::for_each(chunks.count, [&](index_t k) {
      normalize_backward<P>(a, gy, gx, dgamma ? dgamma + k * cols : nullptr,
                            dbeta ? dbeta + k * cols : nullptr, chunks.begin(k), chunks.end(k));
    });
    for (index_t k = 0; k < chunks.count; ++k) {
      if (dgamma) rowwise::accumulate<P>(cols, dgamma + k * cols, gg);
      if (dbeta) rowwise::accumulate<P>(cols, dbeta + k * cols, gb);
    }
  });
  return out;
}

}  // namespace detail

// PyTorch's layer_norm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta, with the
// biased variance. gamma and beta are [cols]. BERT uses eps = 1e-12; the default is PyTorch's.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> layer_norm(const var<T>& x, const var<T>& gamma, const var<T>& beta, double eps = 1e-5) {
  return detail::normalize<Exec, Simd>("layer_norm", x, gamma, &beta, eps, true);
}

// RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * gamma, gamma [cols] (no centring, no shift).
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> rms_norm(const var<T>& x, const var<T>& gamma, double eps = 1e-6) {
  return detail::normalize<Exec, Simd>("rms_norm", x, gamma, static_cast<const var<T>*>(nullptr), eps, false);
}

// The float instantiation most programs use, prebuilt with HYBRID_COMPILED (core/compiled.hpp).
HYBRID_EXTERN_FLOAT(var<float> detail::normalize<exec::tbb, simd::native, float>(const char*, const var<float>&,
                                                                                  const var<float>&, const var<float>*,
                                                                                  double, bool))

}  // namespace hybrid
