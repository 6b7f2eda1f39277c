// The fusion contract, written once, and the compile-time width check every fusion operator uses.
// A fusion recipe F has `template <class T, index_t... Widths> using op`; the op is a module.
#pragma once
#include <array>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/enc/encoder.hpp"
#include "hybrid/ops/shape_ops.hpp"

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

// The I-th of the widths W... (the encoder width of modality I).
template <std::size_t I, index_t... W>
inline constexpr index_t nth_width = std::array<index_t, sizeof...(W)>{W...}[I];

// x where the sample is present, else 0 (a [B, 1] column broadcast over the row).
template <class T>
var<T> mask_absent(const var<T>& x, const var<T>& present) {
  if (!present.valid()) return x;
  return x * present;
}

// Names of a fusion operator's per-modality parameters, "<prefix>.<what>.<modality>": the modality's name where
// the composition hands the names to visit (model<...> does: fusion.proj.text.weight, fusion.placeholder.audio),
// else its index (proj.0, proj.1, ... for an operator used on its own). Parameters that mix all modalities (a
// gate, a tensor-fusion factor over the concatenation) still follow the order the modalities are listed in.
using modality_labels = std::span<const std::string_view>;
inline std::string modality_name(const std::string& prefix, std::string_view what, std::size_t m,
                                 modality_labels names = {}) {
  std::string name(what);
  name += '.';
  if (m < names.size())
    name += names[m];
  else
    name += std::to_string(m);
  return join_name(prefix, name);
}

// 1 when sample b has the modality, else 0 (an invalid column means every sample has it).
template <class T>
T presence(const var<T>& present, index_t b) {
  return present.valid() ? present.data()[b] : T(1);
}

// Additive mask [B, M] over modalities: 0 where sample b has modality m, -inf where it does not, so a
// softmax over modalities gives absent ones exactly zero weight (and a sample with none, all zeros).
// An invalid var when every sample has every modality.
template <class T>
var<T> modality_mask(std::span<const var<T>> present, index_t batch) {
  bool any = false;
  for (const var<T>& p : present) any = any || p.valid();
  if (!any) return {};
  const auto m = static_cast<index_t>(present.size());
  var<T> mask = make_result<T>({batch, m}, false);
  for (index_t b = 0; b < batch; ++b)
    for (index_t i = 0; i < m; ++i)
      mask.data()[b * m + i] =
          presence(present[static_cast<std::size_t>(i)], b) != T(0) ? T(0) : -std::numeric_limits<T>::infinity();
  return mask;
}

// Stacks M vectors [B, W] along a new axis: [B, M, W] (axis 1) or [B, W, M] (axis 2), like torch.stack.
template <class T>
var<T> stack(std::span<const var<T>> xs, int axis) {
  std::vector<var<T>> parts;
  parts.reserve(xs.size());
  for (const var<T>& x : xs) {
    if (x.rank() != 2 || x.shape() != xs[0].shape())
      throw shape_error("fuse::stack", "input", x.shape(), "first input", xs[0].shape(), "need equal [B, W]");
    const index_t b = x.dim(0), w = x.dim(1);
    parts.push_back(reshape(x, axis == 1 ? hybrid::shape{b, 1, w} : hybrid::shape{b, w, 1}));
  }
  return hybrid::concat(parts, axis);
}

}  // namespace hybrid::fuse
