// embedding(table, ids, lead): rows of a [V, H] table looked up by integer ids -> [lead..., H].
// Backward is a deterministic scatter-add into the table's gradient (sort by id, no atomics).
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "hybrid/ops/shape_ops.hpp"

namespace hybrid {

inline constexpr index_t no_padding = -1;

// table: [V, H]; ids: lead.numel() ids laid out as `lead` (e.g. [B, T]), each in [0, V). Result:
// [lead..., H]. The row `padding_idx` is looked up as usual but gets no gradient (torch's padding_idx).
template <class Exec = exec::default_policy, class T>
var<T> embedding(const var<T>& table, std::span<const std::int32_t> ids, const hybrid::shape& lead,
                 index_t padding_idx = no_padding) {
  const hybrid::shape& st = table.shape();
  if (st.rank() != 2) throw shape_error("embedding", "table", st, "ids", lead, "the table must be [V, H]");
  if (lead.rank() >= max_rank)
    throw shape_error("embedding", "table", st, "ids", lead, "ids of rank <= 3, the result has one more axis");
  if (lead.numel() != static_cast<index_t>(ids.size()))
    throw shape_error("embedding", "ids", hybrid::shape{static_cast<index_t>(ids.size())}, "leading shape", lead,
                      "the leading shape must hold one id per position");
  if (padding_idx < no_padding || padding_idx >= st[0])
    throw std::out_of_range("embedding: padding_idx " + std::to_string(padding_idx) + " out of range for " +
                            std::to_string(st[0]) + " rows");
  std::array<index_t, max_rank> dims{};
  for (int a = 0; a < lead.rank(); ++a) dims[static_cast<std::size_t>(a)] = lead[a];
  dims[static_cast<std::size_t>(lead.rank())] = st[1];
  const auto out_shape = hybrid::shape::from_range(dims.begin(), dims.begin() + lead.rank() + 1);
  return detail::gather_rows<Exec>("embedding", table, ids, lead, out_shape, padding_idx);
}

// ids as a tensor: its shape is the leading shape.
template <class Exec = exec::default_policy, class T>
var<T> embedding(const var<T>& table, const tensor<std::int32_t>& ids, index_t padding_idx = no_padding) {
  return embedding<Exec, T>(table, ids.span(), ids.shape(), padding_idx);
}

}  // namespace hybrid
