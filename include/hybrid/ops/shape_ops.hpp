// Layout ops: reshape (a view), concat, slice, transpose/permute, and take_rows (a gather along axis 0).
// Views share the input's value and gradient buffers and record nothing; copies record a backward that adds.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/core/compiled.hpp"

namespace hybrid {

namespace detail {
// A node over x's own buffers (from `offset` on): a gradient added to it lands in x's adjoint, so no
// tape entry is needed (see tape::make_view).
template <class T>
var<T> view_of(const var<T>& x, index_t offset, const hybrid::shape& s) {
  return var<T>(tape::current().make_view<T>(x.get(), offset, s));
}

// Products of the dimensions before and after `axis`: every op here sees x as [outer, dim(axis), inner].
inline index_t dims_before(const hybrid::shape& s, int axis) {
  index_t n = 1;
  for (int i = 0; i < axis; ++i) n *= s[i];
  return n;
}
inline index_t dims_after(const hybrid::shape& s, int axis) {
  index_t n = 1;
  for (int i = axis + 1; i < s.rank(); ++i) n *= s[i];
  return n;
}
inline int checked_axis(const char* op, const hybrid::shape& s, int axis) {
  const int a = s.axis(axis);
  if (a < 0 || a >= s.rank())
    throw shape_error(std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " + s.str());
  return a;
}

// d[0, n) = (or +=) s[0, n): forward copies, backward accumulates.
template <bool Accumulate, class T>
void copy_row(const T* s, T* d, index_t n) {
  if constexpr (Accumulate) {
    for (index_t c = 0; c < n; ++c) d[c] += s[c];
  } else {
    std::copy_n(s, n, d);
  }
}

// dst[o * dst_stride + c] = (or +=) src[o * src_stride + c] for o < outer, c < len: the strided block
// copy that concat and slice do forward and, accumulating, backward.
template <bool Accumulate, class Exec, class T>
void copy_blocks(const T* src, index_t src_stride, T* dst, index_t dst_stride, index_t outer, index_t len) {
  const exec::row_chunks chunks(outer, len);
  Exec::for_each(chunks.count, [&](index_t k) {
    for (index_t o = chunks.begin(k); o < chunks.end(k); ++o)
      copy_row<Accumulate>(src + o * src_stride, dst + o * dst_stride, len);
  });
}

// A permuted copy as loops over the (contiguous) output: per output axis its size and the stride of the
// source element it reads. Size-1 axes are dropped and axes that stay adjacent are merged, so
// [B,T,H,D] -> [B,H,T,D] is a copy of rows of D, and only a real transpose (the source's unit-stride
// axis moves) needs the tiled loop.
struct permute_plan {
  int rank = 0;
  std::array<index_t, max_rank> size{}, stride{};
  index_t numel() const {
    index_t n = 1;
    for (int k = 0; k < rank; ++k) n *= size[static_cast<std::size_t>(k)];
    return n;
  }
};
inline permute_plan make_permute_plan(const hybrid::shape& src, const std::array<int, max_rank>& perm) {
  std::array<index_t, max_rank> st{};
  for (index_t k = src.rank() - 1, acc = 1; k >= 0; acc *= src[static_cast<int>(k)], --k)
    st[static_cast<std::size_t>(k)] = acc;
  permute_plan p;
  for (int i = 0; i < src.rank(); ++i) {
    const auto a = static_cast<std::size_t>(perm[static_cast<std::size_t>(i)]);
    const index_t n = src[static_cast<int>(a)], s = st[a];
    if (n == 1) continue;
    const auto last = static_cast<std::size_t>(p.rank - 1);
    if (p.rank > 0 && p.stride[last] == s * n) {
      p.size[last] *= n;
      p.stride[last] = s;
    } else {
      p.size[static_cast<std::size_t>(p.rank)] = n;
      p.stride[static_cast<std::size_t>(p.rank++)] = s;
    }
  }
  return p;
}

template <bool Accumulate, class Exec, class T>
void permute_copy(const T* src, const permute_plan& p, T* dst) {
  const index_t total = p.numel();
  if (total == 0) return;
  if (p.rank == 0) {
    if constexpr (Accumulate) dst[0] += src[0];
    else dst[0] = src[0];
    return;
  }
  const int last = p.rank - 1;
  std::array<index_t, max_rank> dst_stride{};
  for (index_t k = last, acc = 1; k >= 0; acc *= p.size[static_cast<std::size_t>(k)], --k)
    dst_stride[static_cast<std::size_t>(k)] = acc;
  // Source and destination offsets of the lin-th combination of the axes not in `skip` (a bit mask).
  auto offsets = [&](index_t lin, unsigned skip, index_t& so, index_t& dof) {
    so = dof = 0;
    for (int k = last; k >= 0; --k) {
      if (skip >> k & 1u) continue;
      const auto ku = static_cast<std::size_t>(k);
      const index_t i = lin % p.size[ku];
      lin /= p.size[ku];
      so += i * p.stride[ku];
      dof += i * dst_stride[ku];
    }
  };
  const index_t L = p.size[static_cast<std::size_t>(last)], SL = p.stride[static_cast<std::size_t>(last)];
  if (SL == 1) {  // output rows are contiguous source rows
    // Consecutive rows step along the next-to-last axis (size M, source stride SM): offsets are
    // decomposed once per M rows, not per row (the divisions cost more than copying a short row).
    const index_t M = last > 0 ? p.size[static_cast<std::size_t>(last - 1)] : 1;
    const index_t SM = last > 0 ? p.stride[static_cast<std::size_t>(last - 1)] : 0;
    const exec::row_chunks chunks(total / L, L);
    Exec::for_each(chunks.count, [&](index_t k) {
      index_t so = 0, dof = 0, m = 0;  // m: the row's index along the next-to-last axis
      for (index_t r = chunks.begin(k); r < chunks.end(k); ++r, ++m, so += SM, dof += L) {
        if (r == chunks.begin(k) || m == M) {
          offsets(r, 1u << last, so, dof);
          m = r % M;
        }
        copy_row<Accumulate>(src + so, dst + dof, L);
      }
    });
    return;
  }
  // A transpose between output axis q (the smallest source stride) and the last output axis, in tiles
  // of tile x tile so both the strided reads and the contiguous writes stay in L1.
  int q = 0;
  for (int k = 1; k < last; ++k)
    if (p.stride[static_cast<std::size_t>(k)] < p.stride[static_cast<std::size_t>(q)]) q = k;
  constexpr index_t tile = 32;
  const index_t Q = p.size[static_cast<std::size_t>(q)], SQ = p.stride[static_cast<std::size_t>(q)],
                DQ = dst_stride[static_cast<std::size_t>(q)];
  const index_t tiles = (Q + tile - 1) / tile;
  const exec::row_chunks chunks(total / (Q * L) * tiles, tile * L);
  Exec::for_each(chunks.count, [&](index_t k) {
    for (index_t u = chunks.begin(k); u < chunks.end(k); ++u) {
      index_t so, dof;
      offsets(u / tiles, 1u << last | 1u << q, so, dof);
      const index_t q0 = u % tiles * tile, q1 = std::min(Q, q0 + tile);
      for (index_t l0 = 0; l0 < L; l0 += tile)
        for (index_t iq = q0; iq < q1; ++iq) {
          const T* s = src + so + iq * SQ;
          T* d = dst + dof + iq * DQ;
          for (index_t il = l0, l1 = std::min(L, l0 + tile); il < l1; ++il) {
            if constexpr (Accumulate) d[il] += s[il * SL];
            else d[il] = s[il * SL];
          }
        }
    }
  });
}

// "... at position 17 (index [1, 5] of [2, 12])": where a bad id sits in the caller's id layout.
inline std::string id_position(index_t n, const hybrid::shape& layout) {
  std::string s = "position " + std::to_string(n);
  if (layout.rank() <= 1) return s;
  std::array<index_t, max_rank> idx{};
  for (int a = layout.rank() - 1; a >= 0; --a) {
    idx[static_cast<std::size_t>(a)] = n % layout[a];  // layout[a] > 0: it holds position n
    n /= layout[a];
  }
  s += " (index [";
  for (int a = 0; a < layout.rank(); ++a) s += (a ? ", " : "") + std::to_string(idx[static_cast<std::size_t>(a)]);
  return s + "] of " + layout.str() + ")";
}

// out[n] = x[ids[n]] (rows along axis 0), backward grad_x[ids[n]] += grad_out[n] except for rows equal to
// `skip` (embedding's padding_idx; -1 for none). The scatter-add sorts positions by (id, position) and
// gives each distinct id to one task, which sums its rows in position order: no atomics, no races, and
// the same bits for any thread count. `layout` is how the caller laid the ids out, for error messages.
template <class Exec, class T>
var<T> gather_rows(const char* op, const var<T>& x, std::span<const std::int32_t> ids, const hybrid::shape& layout,
                   const hybrid::shape& out_shape, index_t skip) {
  const index_t V = x.dim(0), W = x.shape().dropped(0).numel(), N = static_cast<index_t>(ids.size());
  if (N > index_t{0xffffffff}) throw std::length_error(std::string(op) + ": more than 2^32 - 1 ids");
  for (index_t n = 0; n < N; ++n) {
    const std::int32_t id = ids[static_cast<std::size_t>(n)];
    if (id < 0 || id >= V)
      throw std::out_of_range(std::string(op) + ": id " + std::to_string(id) + " at " + id_position(n, layout) +
                              " is out of range for " + std::to_string(V) + " rows (shape " + x.shape().str() + ")");
  }
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(out_shape, needs_grad);
  const T* xv = x.data();
  T* y = out.data();
  const exec::row_chunks chunks(N, W);
  Exec::for_each(chunks.count, [&](index_t k) {
    for (index_t n = chunks.begin(k); n < chunks.end(k); ++n)
      std::copy_n(xv + ids[static_cast<std::size_t>(n)] * W, W, y + n * W);
  });
  if (!needs_grad) return out;
  // Backward needs the ids after the caller's span is gone: keep them, packed with their position.
  std::uint64_t* keys = tape::current().allocate<std::uint64_t>(N);
  index_t kept = 0;
  for (index_t n = 0; n < N; ++n)
    if (ids[static_cast<std::size_t>(n)] != skip)
      keys[kept++] = static_cast<std::uint64_t>(ids[static_cast<std::size_t>(n)]) << 32 | static_cast<std::uint64_t>(n);
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    std::sort(keys, keys + kept);  // keys are unique: the order is fully determined
    index_t* group = tape::current().allocate<index_t>(kept + 1);  // start of each run of one id
    index_t groups = 0;
    for (index_t i = 0; i < kept; ++i)
      if (i == 0 || keys[i] >> 32 != keys[i - 1] >> 32) group[groups++] = i;
    group[groups] = kept;
    const T* g = tape::current().adjoint(ny);
    T* gx = tape::current().adjoint(nx);
    // Any chunking gives the same bits (a group is summed in one fixed order); size chunks by the
    // average group so a few frequent ids still spread across tasks.
    const exec::row_chunks gc(groups, W * std::max<index_t>(1, kept / std::max<index_t>(groups, 1)));
    Exec::for_each(gc.count, [&](index_t k) {
      for (index_t j = gc.begin(k); j < gc.end(k); ++j) {
        T* d = gx + static_cast<index_t>(keys[group[j]] >> 32) * W;
        for (index_t i = group[j]; i < group[j + 1]; ++i) {
          const T* s = g + static_cast<index_t>(keys[i] & 0xffffffffu) * W;
          for (index_t c = 0; c < W; ++c) d[c] += s[c];
        }
      }
    });
  });
  return out;
}
}  // namespace detail

// x with a new shape of the same element count: a view, no copy and no tape entry.
template <class T>
var<T> reshape(const var<T>& x, const hybrid::shape& s) {
  if (s.numel() != x.numel()) throw shape_error("reshape", "x", x.shape(), "new shape", s, "element counts differ");
  return detail::view_of(x, 0, s);
}

// Joins inputs along `axis` (negative counts from the end); all other dimensions must agree.
template <class Exec = exec::default_policy, class T>
var<T> concat(std::span<const var<T>> xs, int axis) {
  if (xs.empty()) throw shape_error("concat: no inputs");
  const hybrid::shape& s0 = xs[0].shape();
  const int ax = detail::checked_axis("concat", s0, axis);
  index_t total = 0;
  bool any_grad = false;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const hybrid::shape& si = xs[i].shape();
    if (si.rank() != s0.rank() || si.with(ax, 0) != s0.with(ax, 0))
      throw shape_error("concat", "input 0", s0, "input " + std::to_string(i), si,
                        "all dimensions but axis " + std::to_string(ax) + " must agree");
    total += si[ax];
    any_grad = any_grad || xs[i].requires_grad();
  }
  if (xs.size() == 1) return xs[0];
  const index_t outer = detail::dims_before(s0, ax), inner = detail::dims_after(s0, ax), row = total * inner;
  const bool needs_grad = tape::current().recording() && any_grad;
  var<T> out = make_result<T>(s0.with(ax, total), needs_grad);
  index_t offset = 0;
  for (const var<T>& x : xs) {
    const index_t len = x.shape()[ax] * inner;
    detail::copy_blocks<false, Exec>(x.data(), len, out.data() + offset, row, outer, len);
    offset += len;
  }
  if (!needs_grad) return out;
  const auto n = static_cast<index_t>(xs.size());
  node<T>** nodes = tape::current().allocate<node<T>*>(n);
  for (index_t i = 0; i < n; ++i) nodes[i] = xs[static_cast<std::size_t>(i)].get();
  node<T>* ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    const T* gy = t.adjoint(ny);
    index_t off = 0;
    for (index_t i = 0; i < n; ++i) {
      const index_t len = nodes[i]->shape[ax] * inner;
      if (T* gx = t.adjoint(nodes[i])) detail::copy_blocks<true, Exec>(gy + off, row, gx, len, outer, len);
      off += len;
    }
  });
  return out;
}
template <class Exec = exec::default_policy, class T>
var<T> concat(std::initializer_list<var<T>> xs, int axis) {
  return concat<Exec, T>(std::span<const var<T>>(xs.begin(), xs.size()), axis);
}
template <class Exec = exec::default_policy, class T>
var<T> concat(const std::vector<var<T>>& xs, int axis) {
  return concat<Exec, T>(std::span<const var<T>>(xs), axis);
}

// x[..., start : start + length, ...] along `axis`. A view when the slice is contiguous (nothing before
// `axis` but size-1 dimensions, e.g. a range of rows), otherwise a copy.
template <class Exec = exec::default_policy, class T>
var<T> slice(const var<T>& x, int axis, index_t start, index_t length) {
  const hybrid::shape& s = x.shape();
  const int ax = detail::checked_axis("slice", s, axis);
  if (start < 0 || length < 0 || start + length > s[ax])
    throw shape_error("slice: range [" + std::to_string(start) + ", " + std::to_string(start + length) +
                      ") out of bounds along axis " + std::to_string(ax) + " of shape " + s.str());
  const index_t outer = detail::dims_before(s, ax), inner = detail::dims_after(s, ax);
  const hybrid::shape so = s.with(ax, length);
  if (outer == 1) return detail::view_of(x, start * inner, so);
  const index_t src_row = s[ax] * inner, len = length * inner;
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(so, needs_grad);
  detail::copy_blocks<false, Exec>(x.data() + start * inner, src_row, out.data(), len, outer, len);
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    detail::copy_blocks<true, Exec>(t.adjoint(ny), len, t.adjoint(nx) + start * inner, src_row, outer, len);
  });
  return out;
}

// Result axis i is x's axis perm[i] (negative entries count from the end), as torch.permute. A copy,
// except when only size-1 axes move (then a view); backward applies the inverse permutation.
template <class Exec = exec::default_policy, class T>
var<T> permute(const var<T>& x, std::span<const int> perm) {
  const hybrid::shape& s = x.shape();
  std::array<int, max_rank> pm{}, inv{};
  std::array<bool, max_rank> seen{};
  bool ok = static_cast<int>(perm.size()) == s.rank();
  for (int i = 0; ok && i < s.rank(); ++i) {
    const int a = s.axis(perm[static_cast<std::size_t>(i)]);
    ok = a >= 0 && a < s.rank() && !seen[static_cast<std::size_t>(a)];
    if (!ok) break;
    seen[static_cast<std::size_t>(a)] = true;
    pm[static_cast<std::size_t>(i)] = a;
    inv[static_cast<std::size_t>(a)] = i;
  }
  if (!ok) {
    std::string p = "{";
    for (std::size_t i = 0; i < perm.size(); ++i) p += (i ? ", " : "") + std::to_string(perm[i]);
    throw shape_error("permute: " + p + "} is not a permutation of the axes of shape " + s.str());
  }
  hybrid::shape so = s;
  for (int i = 0; i < s.rank(); ++i) so[i] = s[pm[static_cast<std::size_t>(i)]];
  const detail::permute_plan plan = detail::make_permute_plan(s, pm);
  if (plan.rank == 0 || (plan.rank == 1 && plan.stride[0] == 1)) return detail::view_of(x, 0, so);
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(so, needs_grad);
  detail::permute_copy<false, Exec>(x.data(), plan, out.data());
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    detail::permute_copy<true, Exec>(t.adjoint(ny), detail::make_permute_plan(so, inv), t.adjoint(nx));
  });
  return out;
}
template <class Exec = exec::default_policy, class T>
var<T> permute(const var<T>& x, std::initializer_list<int> perm) {
  return permute<Exec, T>(x, std::span<const int>(perm.begin(), perm.size()));
}

// Swaps two axes (negative counts from the end): transpose(x, -2, -1) for K^T in attention.
template <class Exec = exec::default_policy, class T>
var<T> transpose(const var<T>& x, int axis0, int axis1) {
  const hybrid::shape& s = x.shape();
  const int a = detail::checked_axis("transpose", s, axis0), b = detail::checked_axis("transpose", s, axis1);
  std::array<int, max_rank> perm{0, 1, 2, 3};
  std::swap(perm[static_cast<std::size_t>(a)], perm[static_cast<std::size_t>(b)]);
  return permute<Exec, T>(x, std::span<const int>(perm.data(), static_cast<std::size_t>(s.rank())));
}

// Rows of x along axis 0 (x: [N, ...], rows: [n]) -> [n, ...]: [CLS] tokens, masked-LM positions.
// Repeated rows are fine; backward scatter-adds (deterministically, see detail::gather_rows).
template <class Exec = exec::default_policy, class T>
var<T> take_rows(const var<T>& x, std::span<const std::int32_t> rows) {
  if (x.rank() == 0) throw shape_error("take_rows", "x", x.shape(), "rows", hybrid::shape{index_t(rows.size())}, "x needs rank >= 1");
  const hybrid::shape layout{static_cast<index_t>(rows.size())};
  return detail::gather_rows<Exec>("take_rows", x, rows, layout, x.shape().with(0, layout[0]), -1);
}

// The float instantiations most programs use, prebuilt with HYBRID_COMPILED (core/compiled.hpp).
HYBRID_EXTERN_FLOAT(var<float> concat<exec::tbb, float>(std::span<const var<float>>, int))
HYBRID_EXTERN_FLOAT(var<float> slice<exec::tbb, float>(const var<float>&, int, index_t, index_t))

}  // namespace hybrid
