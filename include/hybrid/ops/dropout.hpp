// dropout(x, p, rng, training): inverted dropout whose mask is a pure function of (seed, call, element),
// so it is the same for any thread count or chunking, and backward recomputes it instead of storing it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/core/compiled.hpp"

namespace hybrid {

namespace detail {
inline constexpr std::uint64_t golden64 = 0x9E3779B97F4A7C15ull;
// splitmix64's finaliser: derives each call's 64-bit key from (seed, counter).
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// murmur3's 32-bit finaliser: a bijection with full avalanche. Per element we use 32-bit multiplies
// (eight lanes per AVX2 instruction, which the compiler vectorises); 64-bit ones have no AVX2
// instruction and made the mask three times slower.
constexpr std::uint32_t mix32(std::uint32_t h) {
  h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
  h = (h ^ (h >> 13)) * 0xC2B2AE35u;
  return h ^ (h >> 16);
}

// Element i is kept when mix32(mix32(i + key_lo) ^ key_hi) >= threshold = p * 2^32; kept elements are
// scaled by 1 / (1 - p) (p == 1: scale 0, everything dropped).
template <class T>
struct dropout_mask {
  std::uint32_t lo, hi, threshold;
  T scale;

  // dst[j] (+)= mask(first + j) * scale * src[j] for j in [0, n), on the calling thread: a block of a tensor whose
  // element `first` src[0] is (the fused attention applies the mask per (batch, head) block).
  template <bool Accumulate>
  void apply_block(const T* src, T* dst, index_t first, index_t n) const {
    // The key and scale as locals, not members read through `this`: a store to dst[i] might alias
    // `scale` (both T), and that reload kept the compiler from vectorising the loop (one element per
    // iteration, 12 % of a BERT training step).
    const std::uint32_t key_lo = lo, key_hi = hi, cut = threshold, base = static_cast<std::uint32_t>(first);
    const T keep = scale;
    for (index_t j = 0; j < n; ++j) {
      const T m = mix32(mix32(base + static_cast<std::uint32_t>(j) + key_lo) ^ key_hi) >= cut ? keep : T(0);
      if constexpr (Accumulate) dst[j] += src[j] * m;
      else dst[j] = src[j] * m;
    }
  }

  // dst (+)= mask * scale * src over the whole tensor: the forward (y = x masked) and, accumulating, the
  // backward (dx += dy masked).
  template <bool Accumulate, class Exec>
  void apply(const T* src, T* dst, index_t n) const {
    const exec::row_chunks chunks(n, 1);
    const dropout_mask mask = *this;
    Exec::for_each(chunks.count, [=, &chunks](index_t k) {
      const index_t b = chunks.begin(k);
      mask.template apply_block<Accumulate>(src + b, dst + b, b, chunks.end(k) - b);
    });
  }
};
}  // namespace detail

// A dropout stream: a seed, and a counter that every dropout call drawing a mask advances, so each call
// (each layer, each step) gets a fresh mask and a run replays exactly from the same state.
struct dropout_rng {
  std::uint64_t seed = 0;
  std::uint64_t counter = 0;
  std::uint64_t next_key() { return detail::mix64(detail::mix64(seed) + ++counter * detail::golden64); }
};

namespace detail {
inline void check_dropout_p(const char* op, double p) {
  if (!(p >= 0 && p <= 1)) throw std::invalid_argument(std::string(op) + ": p must be in [0, 1], got " + std::to_string(p));
}
// The mask of one dropout call over n elements (its key drawn from rng): dropout() and the fused attention.
template <class T>
dropout_mask<T> draw_dropout_mask(const char* op, double p, index_t n, dropout_rng& rng) {
  if (n > index_t{0xffffffff}) throw std::length_error(std::string(op) + ": more than 2^32 - 1 elements to drop out");
  const std::uint64_t key = rng.next_key();
  return {static_cast<std::uint32_t>(key), static_cast<std::uint32_t>(key >> 32),
          static_cast<std::uint32_t>(std::min(p * 4294967296.0, 4294967295.0)), p < 1 ? static_cast<T>(1 / (1 - p)) : T(0)};
}
}  // namespace detail

// Inverted dropout: zeroes each element with probability p and scales the rest by 1 / (1 - p), so the
// expectation is x. Returns x itself (no copy, rng untouched) when !training or p == 0. p == 1 gives zeros.
// The mask is never stored: backward recomputes it from the key (four 32-bit multiplies per element),
// where a stored mask would cost an activation-sized buffer per dropout site for the whole step.
template <class Exec = exec::default_policy, class T>
var<T> dropout(const var<T>& x, double p, dropout_rng& rng, bool training = true) {
  detail::check_dropout_p("dropout", p);
  if (!training || p == 0) return x;
  const index_t n = x.numel();
  const detail::dropout_mask<T> mask = detail::draw_dropout_mask<T>("dropout", p, n, rng);
  const bool needs_grad = tape::current().recording() && x.requires_grad();
  var<T> out = make_result<T>(x.shape(), needs_grad);
  mask.template apply<false, Exec>(x.data(), out.data(), n);
  if (!needs_grad) return out;
  node<T>*nx = x.get(), *ny = out.get();
  tape::current().record(ny, [=] {
    tape& t = tape::current();
    mask.template apply<true, Exec>(t.adjoint(ny), t.adjoint(nx), n);
  });
  return out;
}

// The float instantiation most programs use, prebuilt with HYBRID_COMPILED (core/compiled.hpp).
HYBRID_EXTERN_FLOAT(var<float> dropout<exec::tbb, float>(const var<float>&, double, dropout_rng&, bool))

}  // namespace hybrid
