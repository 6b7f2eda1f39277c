// conv2d / conv1d (PyTorch weight layouts [O, C, kh, kw] / [O, C, k]): im2col + one GEMM per chunk of
// images, backward by col2im (a deterministic scatter-add) and GEMMs for the weight and input gradients.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/autodiff/tape.hpp"
#include "hybrid/backend/conv_direct_avx512.hpp"
#include "hybrid/backend/gemm.hpp"
#include "hybrid/backend/gemm_im2col.hpp"
#include "hybrid/ops/reduce.hpp"

namespace hybrid {

// Stride and zero padding, the same along both spatial axes (as PyTorch's int arguments).
struct conv_options {
  index_t stride = 1;
  index_t padding = 0;
  // The output through ReLU: relu(conv(x)), inside the convolution where our direct 3x3 kernels run (no pass of
  // its own over the output, and its gradient applied to dY as the backward pass reads it), else after it.
  bool relu = false;
};

namespace detail {

// x [B, C, H, W] * w [O, C, kh, kw] -> [B, O, Ho, Wo]; conv1d is the case H = kh = 1.
struct conv_geometry {
  index_t B, C, H, W, O, kh, kw, sh, sw, ph, pw, Ho, Wo;
  index_t K() const { return C * kh * kw; }  // rows of im2col = the weight's columns
  index_t P() const { return Ho * Wo; }      // output positions per image
  // Images per chunk: enough positions that each chunk's GEMM is a real one (N >= ~1024 columns),
  // while chunks stay cache-sized and spread a batch over the threads. Fixed by sizes alone. Measured
  // on a 64 x 32x32 CNN (2 cores): 128..4096 columns per chunk all within noise, and about 10-20%
  // faster than one GEMM over the whole batch's im2col (which also needs a transposing pass more).
  index_t images_per_chunk() const { return std::clamp<index_t>(1024 / std::max<index_t>(P(), 1), 1, std::max<index_t>(B, 1)); }
};

// The first and one-past-last output index o whose input index o * s - p + k lies in [0, n).
inline void valid_range(index_t n, index_t out, index_t s, index_t p, index_t k, index_t& lo, index_t& hi) {
  lo = 0;
  while (lo < out && lo * s - p + k < 0) ++lo;
  hi = out;
  while (hi > lo && (hi - 1) * s - p + k >= n) --hi;
}

// im2col of one image [C, H, W] into col (K rows, row stride ld; this image's P columns), or with
// ToImage its adjoint col2im: image += the columns scattered back. One loop for both, so the two can
// never disagree; the scatter runs in a fixed order (deterministic).
template <bool ToImage, class T>
void im2col_pass(const conv_geometry& g, std::conditional_t<ToImage, T*, const T*> image,
                 std::conditional_t<ToImage, const T*, T*> col, index_t ld) {
  // "Same" convolutions with stride 1 (3x3, padding 1) have rows of col as long as rows of x: a row of
  // col is then the plane shifted by `off`, one contiguous copy, plus zeros where the window leaves
  // the image. On small images this is several times faster than copying row by row.
  const bool band = !ToImage && g.sh == 1 && g.sw == 1 && g.Wo == g.W;
  for (index_t c = 0; c < g.C; ++c)
    for (index_t ki = 0; ki < g.kh; ++ki)
      for (index_t kj = 0; kj < g.kw; ++kj) {
        auto* crow = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        auto* plane = image + c * g.H * g.W;
        index_t oh0, oh1, ow0, ow1;
        valid_range(g.H, g.Ho, g.sh, g.ph, ki, oh0, oh1);
        valid_range(g.W, g.Wo, g.sw, g.pw, kj, ow0, ow1);
        const index_t shift = kj - g.pw;  // input column of output column ow: ow * sw + shift
        if constexpr (!ToImage) {
          if (band) {
            // The copied columns [n0, n1): inside the valid rows and reading inside the plane.
            const index_t off = (ki - g.ph) * g.W + shift, n0 = std::min(std::max(oh0 * g.W, -off), oh1 * g.W),
                          n1 = std::max(n0, std::min(oh1 * g.W, g.H * g.W - off));
            std::fill(crow, crow + n0, T(0));
            std::copy(plane + n0 + off, plane + n1 + off, crow + n0);
            std::fill(crow + n1, crow + g.P(), T(0));
            for (index_t oh = oh0; oh < oh1 && (ow0 > 0 || ow1 < g.Wo); ++oh) {
              for (index_t ow = 0; ow < ow0; ++ow) crow[oh * g.Wo + ow] = T(0);
              for (index_t ow = ow1; ow < g.Wo; ++ow) crow[oh * g.Wo + ow] = T(0);
            }
            continue;
          }
        }
        for (index_t oh = 0; oh < g.Ho; ++oh) {
          auto* seg = crow + oh * g.Wo;
          if (oh < oh0 || oh >= oh1) {
            if constexpr (!ToImage) std::fill_n(seg, g.Wo, T(0));
            continue;
          }
          auto* irow = plane + (oh * g.sh - g.ph + ki) * g.W;
          if constexpr (ToImage) {
            if (g.sw == 1)
              for (index_t ow = ow0; ow < ow1; ++ow) irow[ow + shift] += seg[ow];
            else
              for (index_t ow = ow0; ow < ow1; ++ow) irow[ow * g.sw + shift] += seg[ow];
          } else {
            for (index_t ow = 0; ow < ow0; ++ow) seg[ow] = T(0);
            for (index_t ow = ow0; ow < ow1; ++ow) seg[ow] = irow[ow * g.sw + shift];
            for (index_t ow = ow1; ow < g.Wo; ++ow) seg[ow] = T(0);
          }
        }
      }
}

// One GEMM call: through the Exec policy's tiles when the whole batch is one chunk, else serial
// inside the caller's loop over chunks (no nested parallelism).
template <class Gemm, class Exec, class T>
void conv_gemm(bool single, bool ta, bool tb, index_t M, index_t N, index_t K, const T* A, index_t lda, const T* B,
               index_t ldb, T beta, T* C, index_t ldc) {
  if (single) Gemm::template run<T, Exec>(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
  else Gemm::template run<T, exec::serial>(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
}

// The chunks' shares of the bias and weight gradients (db_part [chunks][O], dw_part [chunks][O][K], either may be
// null) added to gb and gw in chunk order: the sums never depend on the threads.
template <class Exec, class T>
void add_chunk_partials(index_t chunks, index_t O, index_t K, const T* db_part, T* gb, const T* dw_part, T* gw) {
  if (db_part)
    for (index_t k = 0; k < chunks; ++k)
      for (index_t o = 0; o < O; ++o) gb[o] += db_part[k * O + o];
  if (dw_part) {
    const exec::row_chunks rc(O, K);
    Exec::for_each(rc.count, [&](index_t r) {
      for (index_t k = 0; k < chunks; ++k)
        for (index_t i = rc.begin(r) * K; i < rc.end(r) * K; ++i) gw[i] += dw_part[k * O * K + i];
    });
  }
}

// Where the GEMM policy runs our AVX-512 kernel (float, column stride 1, several chunks): the same products, the
// im2col matrix packed straight from the image into the kernel's panels (backend/gemm_im2col.hpp) instead of
// written out and packed again, one product per image straight into the output (no [O, n, P] reorder), and the
// weight gradient as im2col * dY^T, transposed once per step. Forward values are bitwise those of the path
// below; the weight gradient sums per image (then over images) and may differ from it in the last bits.
template <class Exec, class Gemm>
var<float> conv_forward_from_image(const conv_geometry g, const hybrid::shape& out_shape, const var<float>& x,
                                   const var<float>& w, const var<float>& bias) {
  using P = typename simd::default_policy::template pack<float>;
  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && (any_requires_grad(x, w) || (bias.valid() && bias.requires_grad()));
  var<float> out = make_result<float>(out_shape, needs_grad);
  const index_t K = g.K(), Pn = g.P(), per = g.images_per_chunk(), chunks = (g.B + per - 1) / per;
  const index_t image_size = g.C * g.H * g.W;
  auto image = [g](const float* data) {
    return gemm::im2col_image{data, g.C, g.H, g.W, g.kh, g.kw, g.sh, g.ph, g.pw, g.Ho, g.Wo};
  };
  {
    const float *xv = x.data(), *wv = w.data(), *bv = bias.valid() ? bias.data() : nullptr;
    float* y = out.data();
    Exec::for_each(chunks, [&](index_t k) {
      for (index_t b = k * per; b < std::min(g.B, (k + 1) * per); ++b) {
        float* yb = y + b * g.O * Pn;
        gemm::conv_product_from_image(image(xv + b * image_size), wv, g.O, yb);
        if (bv)
          for (index_t o = 0; o < g.O; ++o)
            for (index_t p = 0; p < Pn; ++p) yb[o * Pn + p] += bv[o];
      }
    });
  }
  if (!needs_grad) return out;

  node<float>*nx = x.get(), *nw = w.get(), *nb = bias.valid() ? bias.get() : nullptr, *ny = out.get();
  tp.record(ny, [=] {
    tape& t = tape::current();
    // The adjoints first: the scratch scope's rewind would take back any allocated after its mark.
    const float* gy = t.adjoint(ny);
    float *gw = t.adjoint(nw), *gx = t.adjoint(nx), *gb = nb ? t.adjoint(nb) : nullptr;
    tape_scope scratch;
    // Per chunk: its share of the transposed weight gradient [K, O] and of the bias gradient, summed afterwards
    // in chunk order (results never depend on threads), and a dcol scratch for the input gradient.
    float* dwt_part = gw ? t.allocate<float>(chunks * K * g.O) : nullptr;
    float* db_part = gb ? t.allocate<float>(chunks * g.O) : nullptr;
    float* dcol = gx ? t.allocate<float>(chunks * K * Pn) : nullptr;
    const float* wv = nw->value;
    Exec::for_each(chunks, [&](index_t k) {
      for (index_t b = k * per, i = 0; b < std::min(g.B, (k + 1) * per); ++b, ++i) {
        const float* dy = gy + b * g.O * Pn;  // [O, P]
        if (gb)
          for (index_t o = 0; o < g.O; ++o) {
            const float s = rowwise::sum<P>(dy + o * Pn, Pn);
            db_part[k * g.O + o] = i == 0 ? s : db_part[k * g.O + o] + s;
          }
        if (gw) gemm::conv_weight_grad_from_image(image(nx->value + b * image_size), dy, g.O, i == 0 ? 0.f : 1.f,
                                                  dwt_part + k * K * g.O);
        if (gx) {
          // dcol = W^T dY, then col2im into this image (images are disjoint across chunks).
          float* c = dcol + k * K * Pn;
          Gemm::template run<float, exec::serial>(true, false, K, Pn, g.O, 1.f, wv, K, dy, Pn, 0.f, c, Pn);
          im2col_pass<true, float>(g, gx + b * image_size, c, Pn);
        }
      }
    });
    add_chunk_partials<Exec, float>(chunks, g.O, K, db_part, gb, nullptr, nullptr);
    if (gw) {
      // Chunks summed into the first one (contiguous, in chunk order), then added to dW transposed.
      const exec::row_chunks rc(K, g.O);
      Exec::for_each(rc.count, [&](index_t r) {
        for (index_t k = 1; k < chunks; ++k)
          for (index_t i = rc.begin(r) * g.O; i < rc.end(r) * g.O; ++i) dwt_part[i] += dwt_part[k * K * g.O + i];
      });
      for (index_t o = 0; o < g.O; ++o)
        for (index_t kk = 0; kk < K; ++kk) gw[o * K + kk] += dwt_part[kk * g.O + o];
    }
  });
  return out;
}

// 3x3 convolutions with stride 1 (and padding <= 2) where our AVX-512 kernels run: direct kernels on zero-padded
// planes (backend/conv_direct_avx512.hpp), no im2col at all. The output and the input gradient are one kernel
// (dX is the convolution of dY padded by 2 - p with the weight flipped and transposed); the weight gradient has its
// own. Why: on small images the im2col packing and col2im cost as much as the products (docs/performance.md, 5.3).
inline bool direct_conv_applies(const conv_geometry& g) {
  return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ph <= 2 && g.pw <= 2;
}

// dz[i] = dy[i] * relu'(z[i]) for i in [begin, end), from the output y = relu(z): z > 0 exactly where y > 0.
// The product with 1 or 0 (not a select of dy) keeps the bits of the ReLU op's backward pass (NaN * 0 included).
template <class P>
void relu_gradient(const float* dy, const float* y, float* dz, index_t begin, index_t end) {
  using tr = simd::pack_traits<P>;
  index_t i = begin;
  for (; i + tr::width <= end; i += tr::width) {
    using simd::select;
    tr::store(dz + i, tr::load(dy + i) * select(tr::load(y + i) > P(0), P(1), P(0)));
  }
  for (; i < end; ++i) dz[i] = dy[i] * (y[i] > 0.f ? 1.f : 0.f);
}

#if HYBRID_GEMM_AVX512_COMPILED
template <class Exec>
var<float> conv_forward_direct(const conv_geometry g, const hybrid::shape& out_shape, const var<float>& x,
                               const var<float>& w, const var<float>& bias, bool relu) {
  using P = typename simd::default_policy::template pack<float>;
  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && (any_requires_grad(x, w) || (bias.valid() && bias.requires_grad()));
  var<float> out = make_result<float>(out_shape, needs_grad);
  const index_t K = g.K(), Pn = g.P(), per = g.images_per_chunk(), chunks = (g.B + per - 1) / per;
  const index_t image_size = g.C * g.H * g.W, x_padded = direct_conv::padded_planes::floats(g.C, g.H, g.W, g.ph, g.pw);
  {
    tape_scope scratch;
    float* wt = tp.allocate<float>(K * g.O);  // [K][O]: a tap's O weights side by side, broadcast in turn
    for (index_t o = 0; o < g.O; ++o)
      for (index_t k = 0; k < K; ++k) wt[k * g.O + o] = w.data()[o * K + k];
    float* pad = tp.allocate<float>(chunks * x_padded);
    const float *xv = x.data(), *bv = bias.valid() ? bias.data() : nullptr;
    float* y = out.data();
    Exec::for_each(chunks, [&](index_t k) {
      float* buf = pad + k * x_padded;
      for (index_t b = k * per; b < std::min(g.B, (k + 1) * per); ++b) {
        const auto planes = direct_conv::pad_planes(xv + b * image_size, g.C, g.H, g.W, g.ph, g.pw, buf);
        direct_conv::conv3x3_image(buf, planes, wt, g.O, bv, false, y + b * g.O * Pn, g.Ho, g.Wo, relu);
      }
    });
  }
  if (!needs_grad) return out;

  node<float>*nx = x.get(), *nw = w.get(), *nb = bias.valid() ? bias.get() : nullptr, *ny = out.get();
  tp.record(ny, [=] {
    tape& t = tape::current();
    // The adjoints first: the scratch scope's rewind would take back any allocated after its mark.
    const float* gy = t.adjoint(ny);
    float *gw = t.adjoint(nw), *gx = t.adjoint(nx), *gb = nb ? t.adjoint(nb) : nullptr;
    tape_scope scratch;
    // dY padded by 2 - p: the input gradient is its 3x3 convolution with wflip[(o * 3 + ki) * 3 + kj][c] =
    // w[o][c][2 - ki][2 - kj].
    const index_t y_padded = direct_conv::padded_planes::floats(g.O, g.Ho, g.Wo, 2 - g.ph, 2 - g.pw);
    // The weight gradient runs over groups of images whose padded planes and dY fit in L2 (about 512 KiB).
    const index_t group = std::clamp<index_t>(131072 / (x_padded + g.O * Pn), 1, std::min<index_t>(per, 16));
    float* wflip = gx ? t.allocate<float>(g.O * K) : nullptr;
    float* ybuf = gx ? t.allocate<float>(chunks * y_padded) : nullptr;
    float* xbuf = gw ? t.allocate<float>(chunks * group * x_padded) : nullptr;
    // Per chunk: its share of the weight and bias gradients, summed afterwards in chunk order (never by thread).
    float* dw_part = gw ? t.allocate<float>(chunks * g.O * K) : nullptr;
    float* db_part = gb ? t.allocate<float>(chunks * g.O) : nullptr;
    // With ReLU: dZ = dY * relu'(z), z > 0 exactly where the output y > 0; each chunk makes its images' share.
    float* dz = relu ? t.allocate<float>(g.B * g.O * Pn) : nullptr;
    const float* dy = relu ? dz : gy;
    const float* yv = ny->value;
    if (gx)
      for (index_t o = 0; o < g.O; ++o)
        for (index_t c = 0; c < g.C; ++c)
          for (index_t k = 0; k < 9; ++k) wflip[(o * 9 + k) * g.C + c] = nw->value[(o * g.C + c) * 9 + 8 - k];
    Exec::for_each(chunks, [&](index_t k) {
      const index_t b0 = k * per, n = std::min(per, g.B - b0);
      if (relu) relu_gradient<P>(gy, yv, dz, b0 * g.O * Pn, (b0 + n) * g.O * Pn);
      if (gb)
        for (index_t o = 0; o < g.O; ++o) {
          float s = 0;
          for (index_t i = 0; i < n; ++i) s += rowwise::sum<P>(dy + ((b0 + i) * g.O + o) * Pn, Pn);
          db_part[k * g.O + o] = s;
        }
      if (gw) {
        float* part = dw_part + k * g.O * K;
        std::fill_n(part, g.O * K, 0.f);
        const float* ins[16];
        const float* dys[16];
        for (index_t i0 = 0; i0 < n; i0 += group) {
          const index_t m = std::min(group, n - i0);
          direct_conv::padded_planes planes{};
          for (index_t i = 0; i < m; ++i) {
            float* buf = xbuf + (k * group + i) * x_padded;
            planes = direct_conv::pad_planes(nx->value + (b0 + i0 + i) * image_size, g.C, g.H, g.W, g.ph, g.pw, buf);
            ins[i] = buf;
            dys[i] = dy + (b0 + i0 + i) * g.O * Pn;
          }
          direct_conv::conv3x3_weight_grad(ins, dys, m, planes, g.O, g.Ho, g.Wo, part);
        }
      }
      if (gx) {
        float* buf = ybuf + k * y_padded;
        for (index_t b = b0; b < b0 + n; ++b) {
          const auto planes = direct_conv::pad_planes(dy + b * g.O * Pn, g.O, g.Ho, g.Wo, 2 - g.ph, 2 - g.pw, buf);
          direct_conv::conv3x3_image(buf, planes, wflip, g.C, nullptr, true, gx + b * image_size, g.H, g.W);
        }
      }
    });
    add_chunk_partials<Exec>(chunks, g.O, K, db_part, gb, dw_part, gw);
  });
  return out;
}
#endif

// Whether a product runs on image-packed operands (direct kernels or implicit GEMM), one chunk per thread; else one
// chunk is one product tiled over the threads (below).
template <class Gemm, class T>
bool packs_from_image(const conv_geometry& g) {
  if constexpr (std::is_same_v<T, float> && requires { Gemm::takes_packed_operands(); })
    return g.sw == 1 && g.B > g.images_per_chunk() && Gemm::takes_packed_operands();
  return false;
}

template <class Exec, class Gemm, class T>
var<T> conv_forward(const conv_geometry g, const hybrid::shape& out_shape, const var<T>& x, const var<T>& w,
                    const var<T>& bias) {
  if constexpr (std::is_same_v<T, float> && requires { Gemm::takes_packed_operands(); }) {
    if (packs_from_image<Gemm, T>(g)) {
#if HYBRID_GEMM_AVX512_COMPILED
      if (direct_conv_applies(g)) return conv_forward_direct<Exec>(g, out_shape, x, w, bias, false);
#endif
      return conv_forward_from_image<Exec, Gemm>(g, out_shape, x, w, bias);
    }
  }
  using P = typename simd::default_policy::template pack<T>;
  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && (any_requires_grad(x, w) || (bias.valid() && bias.requires_grad()));
  var<T> out = make_result<T>(out_shape, needs_grad);
  const index_t K = g.K(), Pn = g.P(), per = g.images_per_chunk();
  const index_t chunks = g.B == 0 ? 0 : (g.B + per - 1) / per;
  {
    // col [K, n*P] and the product [O, n*P] per chunk, released as soon as the output is written.
    tape_scope scratch;
    T* col = tp.allocate<T>(g.B * Pn * K);
    T* prod = tp.allocate<T>(g.B * Pn * g.O);
    const T *xv = x.data(), *wv = w.data(), *bv = bias.valid() ? bias.data() : nullptr;
    T* y = out.data();
    Exec::for_each(chunks, [&](index_t k) {
      const index_t b0 = k * per, n = std::min(per, g.B - b0), N = n * Pn;
      T* c = col + b0 * Pn * K;
      T* pr = prod + b0 * Pn * g.O;
      for (index_t i = 0; i < n; ++i) im2col_pass<false, T>(g, xv + (b0 + i) * g.C * g.H * g.W, c + i * Pn, N);
      conv_gemm<Gemm, Exec>(chunks == 1, false, false, g.O, N, K, wv, K, c, N, T(0), pr, N);
      // [O, n, P] -> [n, O, P], adding the bias on the way.
      for (index_t i = 0; i < n; ++i)
        for (index_t o = 0; o < g.O; ++o) {
          const T* s = pr + o * N + i * Pn;
          T* d = y + ((b0 + i) * g.O + o) * Pn;
          const T add = bv ? bv[o] : T(0);
          for (index_t p = 0; p < Pn; ++p) d[p] = s[p] + add;
        }
    });
  }
  if (!needs_grad) return out;

  node<T>*nx = x.get(), *nw = w.get(), *nb = bias.valid() ? bias.get() : nullptr, *ny = out.get();
  tp.record(ny, [=] {
    tape& t = tape::current();
    // The adjoints first: the scratch scope's rewind would take back any allocated after its mark.
    const T* gy = t.adjoint(ny);
    T *gw = t.adjoint(nw), *gx = t.adjoint(nx), *gb = nb ? t.adjoint(nb) : nullptr;
    tape_scope scratch;
    const bool dw = gw != nullptr, dx = gx != nullptr, db = gb != nullptr;
    // Per chunk: the output gradient as [O, n*P], im2col (recomputed, never stored), and partial
    // weight / bias gradients summed afterwards in chunk order, so results never depend on threads.
    T* dprod = t.allocate<T>(g.B * Pn * g.O);
    T* col = (dw || dx) ? t.allocate<T>(g.B * Pn * K) : nullptr;
    const bool partial = chunks > 1;
    T* dw_part = dw && partial ? t.allocate<T>(chunks * g.O * K) : nullptr;
    T* db_part = db ? t.allocate<T>(chunks * g.O) : nullptr;
    Exec::for_each(chunks, [&](index_t k) {
      const index_t b0 = k * per, n = std::min(per, g.B - b0), N = n * Pn;
      T* dp = dprod + b0 * Pn * g.O;
      for (index_t i = 0; i < n; ++i)
        for (index_t o = 0; o < g.O; ++o) std::copy_n(gy + ((b0 + i) * g.O + o) * Pn, Pn, dp + o * N + i * Pn);
      if (db)
        for (index_t o = 0; o < g.O; ++o) db_part[k * g.O + o] = rowwise::sum<P>(dp + o * N, N);
      if (!col) return;
      T* c = col + b0 * Pn * K;
      if (dw) {
        for (index_t i = 0; i < n; ++i)
          im2col_pass<false, T>(g, nx->value + (b0 + i) * g.C * g.H * g.W, c + i * Pn, N);
        // dW = dY col^T: this chunk's share, or straight into the gradient when there is one chunk.
        conv_gemm<Gemm, Exec>(!partial, false, true, g.O, K, N, dp, N, c, N, partial ? T(0) : T(1),
                              partial ? dw_part + k * g.O * K : gw, K);
      }
      if (dx) {
        // dcol = W^T dY, then col2im into this chunk's own images (disjoint across chunks).
        conv_gemm<Gemm, Exec>(!partial, true, false, K, N, g.O, nw->value, K, dp, N, T(0), c, N);
        for (index_t i = 0; i < n; ++i) im2col_pass<true, T>(g, gx + (b0 + i) * g.C * g.H * g.W, c + i * Pn, N);
      }
    });
    add_chunk_partials<Exec>(chunks, g.O, K, db_part, gb, dw_part, gw);
  });
  return out;
}

inline void check_conv_options(const char* op, conv_options opt) {
  if (opt.stride < 1 || opt.padding < 0)
    throw std::invalid_argument(std::string(op) + ": stride must be >= 1 and padding >= 0, got stride " +
                                std::to_string(opt.stride) + ", padding " + std::to_string(opt.padding));
}

inline void check_conv_bias(const char* op, const hybrid::shape& w, const hybrid::shape* bias) {
  if (bias && *bias != hybrid::shape{w[0]})
    throw shape_error(op, "bias", *bias, "weight", w, "bias must be [out_channels]");
}

// The convolution, then ReLU when asked: inside the direct kernels where they run, else as its own op.
template <class Exec, class Gemm, class T>
var<T> conv_forward_activated(const conv_geometry g, const hybrid::shape& out_shape, const var<T>& x,
                              const var<T>& w, const var<T>& bias, bool relu) {
#if HYBRID_GEMM_AVX512_COMPILED
  if constexpr (std::is_same_v<T, float>)
    if (relu && packs_from_image<Gemm, T>(g) && direct_conv_applies(g))
      return conv_forward_direct<Exec>(g, out_shape, x, w, bias, true);
#endif
  const var<T> y = conv_forward<Exec, Gemm>(g, out_shape, x, w, bias);
  return relu ? var<T>(hybrid::relu(y)) : y;
}

}  // namespace detail

// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d): x [B, C, H, W], weight
// [O, C, kh, kw], optional bias [O] (pass {} for none) -> [B, O, (H + 2p - kh) / s + 1, (W + 2p - kw) / s + 1].
template <class Exec = exec::default_policy, class Gemm = gemm::default_policy, class T>
var<T> conv2d(const var<T>& x, const var<T>& weight, const var<T>& bias = {}, conv_options opt = {}) {
  detail::check_conv_options("conv2d", opt);
  const hybrid::shape &sx = x.shape(), &sw = weight.shape();
  if (sx.rank() != 4 || sw.rank() != 4)
    throw shape_error("conv2d", "x", sx, "weight", sw, "need x [B, C, H, W] and weight [O, C, kh, kw]");
  if (sx[1] != sw[1]) throw shape_error("conv2d", "x", sx, "weight", sw, "input channels differ");
  if (sx[2] + 2 * opt.padding < sw[2] || sx[3] + 2 * opt.padding < sw[3])
    throw shape_error("conv2d", "x", sx, "weight", sw, "kernel larger than the padded input");
  detail::check_conv_bias("conv2d", sw, bias.valid() ? &bias.shape() : nullptr);
  const index_t s = opt.stride, p = opt.padding;
  const detail::conv_geometry g{sx[0], sx[1], sx[2], sx[3], sw[0], sw[2], sw[3], s, s, p, p,
                                (sx[2] + 2 * p - sw[2]) / s + 1, (sx[3] + 2 * p - sw[3]) / s + 1};
  return detail::conv_forward_activated<Exec, Gemm>(g, {g.B, g.O, g.Ho, g.Wo}, x, weight, bias, opt.relu);
}

// 1-D convolution (torch.nn.functional.conv1d): x [B, C, L], weight [O, C, k], optional bias [O]
// -> [B, O, (L + 2p - k) / s + 1]. The same code path as conv2d with H = 1.
template <class Exec = exec::default_policy, class Gemm = gemm::default_policy, class T>
var<T> conv1d(const var<T>& x, const var<T>& weight, const var<T>& bias = {}, conv_options opt = {}) {
  detail::check_conv_options("conv1d", opt);
  const hybrid::shape &sx = x.shape(), &sw = weight.shape();
  if (sx.rank() != 3 || sw.rank() != 3)
    throw shape_error("conv1d", "x", sx, "weight", sw, "need x [B, C, L] and weight [O, C, k]");
  if (sx[1] != sw[1]) throw shape_error("conv1d", "x", sx, "weight", sw, "input channels differ");
  if (sx[2] + 2 * opt.padding < sw[2]) throw shape_error("conv1d", "x", sx, "weight", sw, "kernel longer than the padded input");
  detail::check_conv_bias("conv1d", sw, bias.valid() ? &bias.shape() : nullptr);
  const index_t s = opt.stride, p = opt.padding;
  const detail::conv_geometry g{sx[0], sx[1], 1, sx[2], sw[0], 1, sw[2], 1, s, 0, p, 1, (sx[2] + 2 * p - sw[2]) / s + 1};
  return detail::conv_forward_activated<Exec, Gemm>(g, {g.B, g.O, g.Wo}, x, weight, bias, opt.relu);
}

}  // namespace hybrid
