// Pooling: max_pool2d/1d (gradient to the first maximal element, NaNs propagate), avg_pool2d/1d and
// global average pooling, over [B, C, H, W] and [B, C, L]. No padding; output sizes floor as PyTorch's.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "hybrid/ops/reduce.hpp"
#include "hybrid/ops/shape_ops.hpp"

namespace hybrid {
namespace detail {

// Every (batch, channel) plane [H, W] pooled on its own; the 1-D ops are H = kh = 1.
struct pool_geometry {
  index_t planes, H, W, kh, kw, sh, sw, Ho, Wo;
};

inline pool_geometry pool_geometry_of(const char* op, const hybrid::shape& s, int rank, index_t kernel, index_t stride) {
  if (kernel < 1 || stride < 0)
    throw std::invalid_argument(std::string(op) + ": kernel must be >= 1 and stride >= 0 (0: the kernel), got kernel " +
                                std::to_string(kernel) + ", stride " + std::to_string(stride));
  if (s.rank() != rank)
    throw shape_error(std::string(op) + ": x must be " + (rank == 4 ? "[B, C, H, W]" : "[B, C, L]") + ", got " + s.str());
  const index_t st = stride == 0 ? kernel : stride, H = rank == 4 ? s[2] : 1, W = s[rank - 1];
  const index_t kh = rank == 4 ? kernel : 1;
  if (H < kh || W < kernel)
    throw shape_error(op, "x", s, "kernel", rank == 4 ? hybrid::shape{kernel, kernel} : hybrid::shape{kernel},
                      "kernel larger than the input");
  if (H * W > index_t{INT32_MAX}) throw std::length_error(std::string(op) + ": planes above 2^31 elements");
  return {s[0] * s[1], H, W, kh, kernel, rank == 4 ? st : 1, st, (H - kh) / (rank == 4 ? st : 1) + 1, (W - kernel) / st + 1};
}

// Max: out = the window's largest element (the first one on ties; a NaN wins and stays), its offset
// in the plane kept as int32 in arena scratch for backward. Average: out = the window's mean.
template <class Exec, bool Max, class T>
var<T> pool(const pool_geometry g, const hybrid::shape& out_shape, const var<T>& x) {
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(out_shape, needs_grad);
  const index_t in_plane = g.H * g.W, out_plane = g.Ho * g.Wo;
  std::int32_t* arg = Max && needs_grad ? tape::current().allocate<std::int32_t>(g.planes * out_plane) : nullptr;
  const T inv = T(1) / static_cast<T>(g.kh * g.kw);
  // The window loops below are the one definition for every geometry. The 2 x 2, stride 2 case (the
  // usual max_pool2d(x, 2)) calls them with compile-time 2s, so the window unrolls and the output row
  // vectorises; "pool: the 2 x 2 fast path and general windows equal a scalar reference bitwise" holds
  // both instantiations to the same results.
  using two = std::integral_constant<index_t, 2>;
  const bool two_by_two = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2;
  auto with_window = [g, two_by_two](auto&& f) {
    two_by_two ? f(two{}, two{}, two{}, two{}) : f(g.kh, g.kw, g.sh, g.sw);
  };
  const T* xv = x.data();
  T* y = out.data();
  const exec::row_chunks chunks(g.planes, in_plane);
  Exec::for_each(chunks.count, [&](index_t k) {
    with_window([&](auto kh, auto kw, auto sh, auto sw) {
      for (index_t pl = chunks.begin(k); pl < chunks.end(k); ++pl) {
        const T* xp = xv + pl * in_plane;
        for (index_t oh = 0; oh < g.Ho; ++oh)
          for (index_t ow = 0; ow < g.Wo; ++ow) {
            const index_t first = oh * sh * g.W + ow * sw, o = pl * out_plane + oh * g.Wo + ow;
            if constexpr (Max) {
              T best = xp[first];
              index_t best_at = first;
              for (index_t i = 0; i < kh; ++i)
                for (index_t j = 0; j < kw; ++j) {
                  const index_t at = first + i * g.W + j;
                  // Move on strictly greater or NaN, unless a NaN is held: first max on ties, first NaN.
                  // Selects, not a branch: random data mispredicts a branch. v is read once, outside the
                  // select, since GCC does not vectorise a load under one.
                  const T v = xp[at];
                  const bool moves = best == best && !(v <= best);
                  best = moves ? v : best;
                  best_at = moves ? at : best_at;
                }
              y[o] = best;
              if (arg) arg[o] = static_cast<std::int32_t>(best_at);
            } else {
              T s = T(0);
              for (index_t i = 0; i < kh; ++i)
                for (index_t j = 0; j < kw; ++j) s += xp[first + i * g.W + j];
              y[o] = s * inv;
            }
          }
      }
    });
  });
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    T* const gx = t.adjoint(nx);
    const T* const gy = t.adjoint(ny);
    // Planes are disjoint; inside one plane overlapping windows add in a fixed order.
    Exec::for_each(chunks.count, [&](index_t k) {
      with_window([&](auto kh, auto kw, auto sh, auto sw) {
        for (index_t pl = chunks.begin(k); pl < chunks.end(k); ++pl) {
          T* dx = gx + pl * in_plane;
          const T* dy = gy + pl * out_plane;
          for (index_t oh = 0; oh < g.Ho; ++oh)
            for (index_t ow = 0; ow < g.Wo; ++ow) {
              const index_t o = oh * g.Wo + ow;
              if constexpr (Max) {
                dx[arg[pl * out_plane + o]] += dy[o];
              } else {
                const index_t first = oh * sh * g.W + ow * sw;
                const T d = dy[o] * inv;
                for (index_t i = 0; i < kh; ++i)
                  for (index_t j = 0; j < kw; ++j) dx[first + i * g.W + j] += d;
              }
            }
        }
      });
    });
  });
  return out;
}

template <class Exec, bool Max, class T>
var<T> pool_nd(const char* op, const var<T>& x, int rank, index_t kernel, index_t stride) {
  const pool_geometry g = pool_geometry_of(op, x.shape(), rank, kernel, stride);
  const hybrid::shape so = rank == 4 ? hybrid::shape{x.dim(0), x.dim(1), g.Ho, g.Wo} : hybrid::shape{x.dim(0), x.dim(1), g.Wo};
  return pool<Exec, Max>(g, so, x);
}

}  // namespace detail

// x [B, C, H, W] -> [B, C, (H - k) / s + 1, (W - k) / s + 1]; stride 0 means stride = kernel (PyTorch's default).
template <class Exec = exec::default_policy, class T>
var<T> max_pool2d(const var<T>& x, index_t kernel, index_t stride = 0) {
  return detail::pool_nd<Exec, true>("max_pool2d", x, 4, kernel, stride);
}
template <class Exec = exec::default_policy, class T>
var<T> avg_pool2d(const var<T>& x, index_t kernel, index_t stride = 0) {
  return detail::pool_nd<Exec, false>("avg_pool2d", x, 4, kernel, stride);
}
// x [B, C, L] -> [B, C, (L - k) / s + 1].
template <class Exec = exec::default_policy, class T>
var<T> max_pool1d(const var<T>& x, index_t kernel, index_t stride = 0) {
  return detail::pool_nd<Exec, true>("max_pool1d", x, 3, kernel, stride);
}
template <class Exec = exec::default_policy, class T>
var<T> avg_pool1d(const var<T>& x, index_t kernel, index_t stride = 0) {
  return detail::pool_nd<Exec, false>("avg_pool1d", x, 3, kernel, stride);
}

// The mean over all spatial positions: [B, C, H, W] or [B, C, L] -> [B, C] (a view plus mean()).
template <class Exec = exec::default_policy, class T>
var<T> global_avg_pool(const var<T>& x) {
  const hybrid::shape& s = x.shape();
  if (s.rank() != 3 && s.rank() != 4)
    throw shape_error("global_avg_pool: x must be [B, C, H, W] or [B, C, L], got " + s.str());
  if (s.rank() == 3) return mean<Exec>(x, -1);
  return mean<Exec>(reshape(x, {s[0], s[1], s[2] * s[3]}), -1);
}

}  // namespace hybrid
