// The fusion contract, written once, and the compile-time width check every fusion operator uses.
// A fusion recipe F has `template <class T, index_t... Widths> using op`; the op is a module.
#pragma once
#include <span>

#include "hybrid/enc/encoder.hpp"

namespace hybrid::fuse {

// op<T, W...>: static constexpr index_t width;
//   var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present,
//                     dropout_rng&, bool training) const;
// parts[i].pooled is [B, W_i]; present[i] is a [B, 1] column of 1 (present) / 0 (absent), or an
// invalid var when every sample has modality i. Absent samples must not influence the result.
template <class Op, class T>
concept fusion_op = module<Op> && requires(const Op& op, std::span<const enc::encoded<T>> parts,
                                           std::span<const var<T>> present, dropout_rng& rng) {
  { Op::width } -> std::convertible_to<index_t>;
  { op(parts, present, rng, true) } -> std::same_as<var<T>>;
};

// Instantiated as width_check<Expected, Got> so the compiler's message shows both numbers.
template <index_t Expected, index_t Got>
struct width_check {
  static_assert(Expected == Got,
                "hybrid: width mismatch between composed parts: see width_check<expected, got> above");
  static constexpr bool ok = true;
};

// x where the sample is present, else 0 (a [B, 1] column broadcast over the row).
template <class T>
var<T> mask_absent(const var<T>& x, const var<T>& present) {
  if (!present.valid()) return x;
  return x * present;
}

}  // namespace hybrid::fuse
