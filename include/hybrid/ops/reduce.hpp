// Reductions: sum / mean / max_over along one axis, and whole-tensor sum / mean (rank-0 results).
// Also the SIMD row kernels (fold, sum, max, dot) that softmax and layer norm are built from.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/backend/simd.hpp"

// The numerics of every parallel loop body live in a function templated on the pack and scalar types
// only, compiled once and never inlined or cloned into the Exec policy's loop. GCC's default
// -ffp-contract=fast fuses multiply-adds differently in each inlined copy, which would make the
// serial and TBB paths differ in the last bit; one compiled kernel makes them agree bitwise.
#ifndef HYBRID_KERNEL
#if defined(__clang__)
#define HYBRID_KERNEL [[gnu::noinline]]
#elif defined(__GNUC__)
#define HYBRID_KERNEL [[gnu::noipa]]
#else
#define HYBRID_KERNEL
#endif
#endif

namespace hybrid {

// ---- row kernels: a pack loop and a scalar tail over n contiguous elements ------------------------
// Every result depends only on n and the pack width, never on threads: the order is fixed.
namespace rowwise {

template <class Q, class T>
Q load(const T* p) {
  return simd::pack_traits<Q>::load(p);
}
template <class Q, class T>
void store(T* p, const Q& v) {
  simd::pack_traits<Q>::store(p, v);
}

// Calls f.template operator()<P>(c) on each full pack, then f.template operator()<T>(c) on the tail.
template <class P, class T, class F>
void for_each(index_t n, F&& f) {
  constexpr index_t W = simd::pack_traits<P>::width;
  index_t c = 0;
  for (; c + W <= n; c += W) f.template operator()<P>(c);
  for (; c < n; ++c) f.template operator()<T>(c);
}

// combine(...) over term<Q>(c) for all c: packs accumulate lane-wise, lanes fold left to right,
// then the tail is folded in.
template <class P, class T, class Term, class Combine>
T fold(index_t n, T init, Term&& term, Combine&& combine) {
  using tr = simd::pack_traits<P>;
  constexpr index_t W = tr::width;
  index_t c = 0;
  T acc = init;
  if (n >= W) {
    P lanes = term.template operator()<P>(c);
    for (c = W; c + W <= n; c += W) lanes = combine(lanes, term.template operator()<P>(c));
    alignas(64) std::array<T, W> l;
    tr::store(l.data(), lanes);
    for (T v : l) acc = combine(acc, v);
  }
  for (; c < n; ++c) acc = combine(acc, term.template operator()<T>(c));
  return acc;
}

inline constexpr auto plus = [](auto a, auto b) { return a + b; };

template <class P, class T>
T sum(const T* x, index_t n) {
  return fold<P>(n, T(0), [&]<class Q>(index_t c) { return load<Q>(x + c); }, plus);
}
template <class P, class T>
T dot(const T* a, const T* b, index_t n) {
  return fold<P>(n, T(0), [&]<class Q>(index_t c) { return Q(load<Q>(a + c) * load<Q>(b + c)); }, plus);
}
// The largest element (-inf for n == 0). Which value a NaN yields is unspecified: callers whose
// results must show a NaN get it from their later arithmetic (softmax does).
template <class P, class T>
T max(const T* x, index_t n) {
  return fold<P>(n, -std::numeric_limits<T>::infinity(), [&]<class Q>(index_t c) { return load<Q>(x + c); },
                 [](auto a, auto b) {
                   using std::max;
                   return max(a, b);
                 });
}
// y[c] += s * x[c]
template <class P, class T>
void axpy(index_t n, T s, const T* x, T* y) {
  for_each<P, T>(n, [&]<class Q>(index_t c) { store<Q>(y + c, Q(load<Q>(y + c) + Q(s) * load<Q>(x + c))); });
}
// y[c] += x[c]
template <class P, class T>
void accumulate(index_t n, const T* x, T* y) {
  for_each<P, T>(n, [&]<class Q>(index_t c) { store<Q>(y + c, Q(load<Q>(y + c) + load<Q>(x + c))); });
}
// y[c] += s
template <class P, class T>
void add(index_t n, T s, T* y) {
  for_each<P, T>(n, [&]<class Q>(index_t c) { store<Q>(y + c, Q(load<Q>(y + c) + Q(s))); });
}

}  // namespace rowwise

// ---- one axis -------------------------------------------------------------------------------------
namespace detail {

// A tensor seen as [outer, n, inner] around the reduced axis.
struct axis_split {
  index_t outer = 1, n = 1, inner = 1;
  int axis = 0;
};

inline axis_split split_axis(const char* op, const hybrid::shape& s, int axis) {
  const int a = s.axis(axis);
  if (a < 0 || a >= s.rank())
    throw shape_error(std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " + s.str());
  axis_split v;
  v.axis = a;
  v.n = s[a];
  for (int d = 0; d < a; ++d) v.outer *= s[d];
  for (int d = a + 1; d < s.rank(); ++d) v.inner *= s[d];
  return v;
}

inline hybrid::shape reduced_shape(const hybrid::shape& s, int axis, bool keepdim) {
  return keepdim ? s.with(axis, 1) : s.dropped(axis);
}

// Runs f(o0, o1, i0, i1) over chunks of outer slices [o0, o1) and blocks of inner columns [i0, i1),
// fixed by the sizes. Each output element is reduced in its own fixed order, so the split never
// changes results.
template <class Exec, class F>
void for_each_slice_block(const axis_split& v, F&& f) {
  const index_t block = v.inner == 1 ? 1 : std::min(v.inner, std::max<index_t>(64, 16384 / std::max<index_t>(v.n, 1)));
  const index_t blocks = (v.inner + block - 1) / block;
  const exec::row_chunks rc(v.outer, v.n * block);
  Exec::for_each(rc.count * blocks, [&](index_t t) {
    const index_t k = t / blocks, b = t % blocks;
    f(rc.begin(k), rc.end(k), b * block, std::min(v.inner, (b + 1) * block));
  });
}

// y[o, i] = scale * sum_k x[o, k, i] for o in [o0, o1), i in [i0, i1).
template <class P, class T>
HYBRID_KERNEL void sum_block(const T* x, T* y, axis_split v, T scale, index_t o0, index_t o1, index_t i0, index_t i1) {
  for (index_t o = o0; o < o1; ++o) {
    const T* slice = x + o * v.n * v.inner;
    if (v.inner == 1) {
      y[o] = scale * rowwise::sum<P>(slice, v.n);
      continue;
    }
    T* yo = y + o * v.inner + i0;
    std::fill(yo, yo + (i1 - i0), T(0));
    for (index_t k = 0; k < v.n; ++k) rowwise::accumulate<P>(i1 - i0, slice + k * v.inner + i0, yo);
    for (index_t i = 0; i < i1 - i0; ++i) yo[i] *= scale;
  }
}
// dx[o, k, i] += scale * g[o, i]
template <class P, class T>
HYBRID_KERNEL void spread_block(const T* g, T* dx, axis_split v, T scale, index_t o0, index_t o1, index_t i0,
                                index_t i1) {
  for (index_t o = o0; o < o1; ++o) {
    T* slice = dx + o * v.n * v.inner;
    if (v.inner == 1) rowwise::add<P>(v.n, scale * g[o], slice);
    else
      for (index_t k = 0; k < v.n; ++k) rowwise::axpy<P>(i1 - i0, scale, g + o * v.inner + i0, slice + k * v.inner + i0);
  }
}

// sum over the axis times `scale` (1, or 1/n for mean); backward spreads scale * g over the axis.
template <class Exec, class Simd, class T>
var<T> scaled_sum(const char* op, const var<T>& x, int axis, bool keepdim, bool average) {
  using P = typename Simd::template pack<T>;
  const axis_split v = split_axis(op, x.shape(), axis);
  const T scale = average ? T(1) / static_cast<T>(v.n) : T(1);
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(reduced_shape(x.shape(), v.axis, keepdim), needs_grad);
  const T* px = x.data();
  T* py = out.data();
  for_each_slice_block<Exec>(v, [&](index_t o0, index_t o1, index_t i0, index_t i1) {
    sum_block<P>(px, py, v, scale, o0, o1, i0, i1);
  });
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    const T* gy = t.adjoint(ny);
    T* gx = t.adjoint(nx);
    for_each_slice_block<Exec>(v, [&](index_t o0, index_t o1, index_t i0, index_t i1) {
      spread_block<P>(gy, gx, v, scale, o0, o1, i0, i1);
    });
  });
  return out;
}

}  // namespace detail

// Sum over `axis` (negative counts from the end); keepdim keeps it as a size-1 dimension.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> sum(const var<T>& x, int axis, bool keepdim = false) {
  return detail::scaled_sum<Exec, Simd>("sum", x, axis, keepdim, false);
}

// Mean over `axis`; an empty axis gives NaN, as in PyTorch.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> mean(const var<T>& x, int axis, bool keepdim = false) {
  return detail::scaled_sum<Exec, Simd>("mean", x, axis, keepdim, true);
}

// Maximum over `axis`, PyTorch's max(dim).values: the gradient goes to the FIRST maximal element of
// each slice (a NaN counts as maximal, so NaNs propagate). Named max_over so it never competes with
// std::max or the elementwise maximum(a, b).
template <class Exec = exec::default_policy, class T>
var<T> max_over(const var<T>& x, int axis, bool keepdim = false) {
  const detail::axis_split v = detail::split_axis("max_over", x.shape(), axis);
  if (v.n == 0) throw shape_error("max_over: the reduced axis of shape " + x.shape().str() + " is empty");
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(detail::reduced_shape(x.shape(), v.axis, keepdim), needs_grad);
  // Backward needs only where each maximum came from.
  index_t* where = needs_grad ? tape::current().allocate<index_t>(v.outer * v.inner) : nullptr;
  const T* px = x.data();
  T* py = out.data();
  // Comparisons only (nothing to round), so a plain lambda body is deterministic.
  detail::for_each_slice_block<Exec>(v, [&](index_t o0, index_t o1, index_t i0, index_t i1) {
    for (index_t o = o0; o < o1; ++o)
      for (index_t i = i0; i < i1; ++i) {
        const T* e = px + o * v.n * v.inner + i;
        T best = e[0];
        index_t at = 0;
        for (index_t k = 1; k < v.n; ++k)
          if (best == best && !(e[k * v.inner] <= best)) best = e[k * v.inner], at = k;  // larger, or the first NaN
        py[o * v.inner + i] = best;
        if (where) where[o * v.inner + i] = at;
      }
  });
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    const T* gy = t.adjoint(ny);
    T* gx = t.adjoint(nx);
    detail::for_each_slice_block<Exec>(v, [&](index_t o0, index_t o1, index_t i0, index_t i1) {
      for (index_t o = o0; o < o1; ++o)
        for (index_t i = i0; i < i1; ++i) gx[(o * v.n + where[o * v.inner + i]) * v.inner + i] += gy[o * v.inner + i];
    });
  });
  return out;
}

// ---- whole tensor ---------------------------------------------------------------------------------
namespace detail {
// Sum of all elements times `scale`, as a rank-0 var (shape {}, like PyTorch's x.sum()). Per-chunk
// partial sums are folded in chunk order, so the result is the same for any thread count; the
// loop bodies only add (nothing to fuse), so they need no separate kernel.
template <class Exec, class Simd, class T>
var<T> scaled_total(const var<T>& x, bool average) {
  using P = typename Simd::template pack<T>;
  constexpr index_t grain = 16384;
  const index_t n = x.numel(), chunks = (n + grain - 1) / grain;
  const T scale = average ? T(1) / static_cast<T>(n) : T(1);
  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && x.requires_grad();
  var<T> out = make_result<T>(hybrid::shape{}, needs_grad);
  T* partial = tp.allocate<T>(chunks);
  const T* px = x.data();
  Exec::for_each(chunks, [&](index_t k) {
    partial[k] = rowwise::sum<P>(px + k * grain, std::min(grain, n - k * grain));
  });
  T total = 0;
  for (index_t k = 0; k < chunks; ++k) total += partial[k];
  out.data()[0] = scale * total;
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tp.record(ny, [=] {
    tape& t = tape::current();
    const T s = scale * t.adjoint(ny)[0];
    T* gx = t.adjoint(nx);
    Exec::for_each(chunks, [&](index_t k) { rowwise::add<P>(std::min(grain, n - k * grain), s, gx + k * grain); });
  });
  return out;
}
}  // namespace detail

// Sum of all elements: a rank-0 var (shape {}, one element), ready for backward().
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> sum(const var<T>& x) {
  return detail::scaled_total<Exec, Simd>(x, false);
}
// Mean of all elements: a rank-0 var; NaN for an empty tensor.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> mean(const var<T>& x) {
  return detail::scaled_total<Exec, Simd>(x, true);
}

}  // namespace hybrid
