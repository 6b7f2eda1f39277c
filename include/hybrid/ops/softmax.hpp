// softmax / log_softmax over the last axis, with an optional additive mask (BERT's attention mask).
// Stable (the row max is subtracted); backward needs only the saved output, never the input.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "hybrid/core/compiled.hpp"
#include "hybrid/ops/reduce.hpp"

namespace hybrid {

// How an operand broadcast to x lines up with x's rows (x seen as rows x cols): shapes align on the
// right and each operand dim equals x's or is 1, as in PyTorch. Covers an attention mask [B, 1, 1, T]
// on scores [B, H, T, T], a causal [T, T], or x's own shape. Plain data, so backward lambdas and
// attention kernels can carry it.
struct row_broadcast {
  std::array<index_t, max_rank> dims{};   // x's leading dims (all but the last)
  std::array<index_t, max_rank> steps{};  // the operand's stride along each of them; 0 where it is 1
  int lead = 0;
  index_t col_step = 1;  // 0 when the operand's last dim is 1

  // Offset of the operand's row that lines up with x's row r.
  index_t row_offset(index_t r) const {
    index_t off = 0;
    for (int d = lead - 1; d >= 0; --d) {
      off += r % dims[static_cast<std::size_t>(d)] * steps[static_cast<std::size_t>(d)];
      r /= dims[static_cast<std::size_t>(d)];
    }
    return off;
  }

  // `x` must have rank >= 1; throws shape_error naming op, both shapes and `what` the operand is.
  static row_broadcast make(const char* op, const char* what, const hybrid::shape& x, const hybrid::shape& m) {
    const int xr = x.rank(), mr = m.rank();
    const auto fail = [&] {
      return shape_error(op, what, m, "input", x, "must broadcast: dims equal or 1, aligned on the right");
    };
    if (mr > xr) throw fail();
    row_broadcast b;
    b.lead = xr - 1;
    index_t stride = 1;
    for (int d = xr - 1; d >= 0; --d) {
      const int md = d - (xr - mr);
      const index_t size = md >= 0 ? m[md] : 1;
      if (size != x[d] && size != 1) throw fail();
      const index_t step = size == 1 ? 0 : stride;
      if (d == xr - 1) b.col_step = step;
      else b.dims[static_cast<std::size_t>(d)] = x[d], b.steps[static_cast<std::size_t>(d)] = step;
      stride *= size;
    }
    return b;
  }
};

namespace detail {

// One row: y = softmax(x + m) or log_softmax(x + m); m may be null, m_step 0 broadcasts m[0].
// A row whose every entry is -inf (fully masked) gives zeros instead of 0/0 = NaN.
template <class P, class T>
void softmax_row(const T* x, const T* m, index_t m_step, index_t n, T* y, bool log) {
  using rowwise::load;
  using rowwise::store;
  const T* z = x;
  if (m) {  // z = x + m, built in y
    rowwise::for_each<P, T>(n, [&]<class Q>(index_t c) {
      store<Q>(y + c, Q(load<Q>(x + c) + (m_step ? load<Q>(m + c) : Q(m[0]))));
    });
    z = y;
  }
  const T top = rowwise::max<P>(z, n);
  if (top == -std::numeric_limits<T>::infinity()) return std::fill(y, y + n, T(0));
  // exp is the hot spot: xsimd's vectorised exp on packs, std::exp on the tail.
  const auto shifted_exp = [&]<class Q>(index_t c) {
    using std::exp;
    return Q(exp(Q(load<Q>(z + c) - Q(top))));
  };
  if (log) {
    const T shift = std::log(rowwise::fold<P>(n, T(0), shifted_exp, rowwise::plus));
    rowwise::for_each<P, T>(n, [&]<class Q>(index_t c) { store<Q>(y + c, Q(load<Q>(z + c) - Q(top) - Q(shift))); });
    return;
  }
  const T total = rowwise::fold<P>(
      n, T(0),
      [&]<class Q>(index_t c) {
        const Q e = shifted_exp.template operator()<Q>(c);
        store<Q>(y + c, e);
        return e;
      },
      rowwise::plus);
  const T inv = T(1) / total;
  rowwise::for_each<P, T>(n, [&]<class Q>(index_t c) { store<Q>(y + c, Q(load<Q>(y + c) * Q(inv))); });
}

// Rows [r0, r1) of x (rows x cols) into y; the mask rows line up through `mb`.
template <class P, class T>
HYBRID_KERNEL void softmax_rows(const T* x, const T* m, row_broadcast mb, index_t cols, T* y, bool log, index_t r0,
                                index_t r1) {
  for (index_t r = r0; r < r1; ++r)
    softmax_row<P>(x + r * cols, m ? m + mb.row_offset(r) : nullptr, mb.col_step, cols, y + r * cols, log);
}

// Backward from the output alone: softmax dx = y * (g - <g, y>), log_softmax dx = g - exp(y) * sum(g).
template <class P, class T>
HYBRID_KERNEL void softmax_rows_backward(const T* y, const T* g, T* dx, index_t cols, bool log, index_t r0,
                                         index_t r1) {
  using rowwise::load;
  using rowwise::store;
  for (index_t r = r0; r < r1; ++r) {
    const T *yr = y + r * cols, *gr = g + r * cols;
    T* d = dx + r * cols;
    if (!log) {
      const T gy = rowwise::dot<P>(gr, yr, cols);
      rowwise::for_each<P, T>(cols, [&]<class Q>(index_t c) {
        store<Q>(d + c, Q(load<Q>(d + c) + load<Q>(yr + c) * (load<Q>(gr + c) - Q(gy))));
      });
      continue;
    }
    // A fully masked row was written as zeros and passes no gradient. No other row is all zeros,
    // except a one-column row, whose gradient g - 1 * g is zero anyway.
    if (std::all_of(yr, yr + cols, [](T v) { return v == T(0); })) continue;
    const T gs = rowwise::sum<P>(gr, cols);
    rowwise::for_each<P, T>(cols, [&]<class Q>(index_t c) {
      using std::exp;
      store<Q>(d + c, Q(load<Q>(d + c) + load<Q>(gr + c) - Q(exp(load<Q>(yr + c))) * Q(gs)));
    });
  }
}

template <class Exec, class Simd, class T>
var<T> softmax_impl(const char* op, const var<T>& x, const var<T>& mask, bool log) {
  using P = typename Simd::template pack<T>;
  const hybrid::shape& s = x.shape();
  if (s.rank() < 1) throw shape_error(std::string(op) + ": needs rank >= 1, input shape is " + s.str());
  const T* pm = mask.valid() ? mask.data() : nullptr;
  const row_broadcast mb = pm ? row_broadcast::make(op, "mask", s, mask.shape()) : row_broadcast{};
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(s, needs_grad);
  const index_t cols = s.cols();
  const exec::row_chunks chunks(s.rows(), cols);
  const T* px = x.data();
  T* py = out.data();
  Exec::for_each(chunks.count, [&](index_t k) {
    softmax_rows<P>(px, pm, mb, cols, py, log, chunks.begin(k), chunks.end(k));
  });
  if (!needs_grad) return out;
  // Only the output is kept (it is the result node itself): no copy of x or the mask.
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    const T* gy = t.adjoint(ny);
    T* gx = t.adjoint(nx);
    Exec::for_each(chunks.count, [&](index_t k) {
      softmax_rows_backward<P>(ny->value, gy, gx, cols, log, chunks.begin(k), chunks.end(k));
    });
  });
  return out;
}

}  // namespace detail

// softmax over the last axis of x (any rank >= 1). `mask`, if given, is ADDED to x before the
// softmax and broadcasts to x (see row_broadcast): BERT's extended attention mask [B, 1, 1, T] of
// 0 / -1e4 (or -inf) on scores [B, H, T, T], or a mask of x's own shape. The mask gets no gradient.
// A row whose every entry is -inf after masking gives all zeros (and no gradient), not NaN.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> softmax(const var<T>& x, const var<T>& mask = {}) {
  return detail::softmax_impl<Exec, Simd>("softmax", x, mask, false);
}

// log(softmax(x + mask)) over the last axis, computed as (x - max) - log(sum(exp(x - max))).
// Masked -inf entries give -inf; a fully masked row gives zeros (and no gradient), like softmax.
template <class Exec = exec::default_policy, class Simd = simd::default_policy, class T>
var<T> log_softmax(const var<T>& x, const var<T>& mask = {}) {
  return detail::softmax_impl<Exec, Simd>("log_softmax", x, mask, true);
}

// The float instantiation most programs use, prebuilt with HYBRID_COMPILED (core/compiled.hpp).
HYBRID_EXTERN_FLOAT(var<float> detail::softmax_impl<exec::tbb, simd::native, float>(const char*, const var<float>&,
                                                                                     const var<float>&, bool))

}  // namespace hybrid
