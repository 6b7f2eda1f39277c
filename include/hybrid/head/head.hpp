// The head contract, written once, and the labels a head learns from.
// A head recipe H has `static constexpr fixed_string name` and `template <class T, index_t In> using op`.
#pragma once
#include <cstdint>
#include <vector>

#include "hybrid/core/fixed_string.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/dropout.hpp"

namespace hybrid::head {

// One task's targets for a batch. Samples without a label are excluded from the loss:
// classes[i] == -100, or weights[i] == 0.
struct task_labels {
  std::vector<std::int32_t> classes;  // class index per sample (classification, tagging)
  tensor<float> values;               // [B, K] targets (regression, multilabel)
  std::vector<float> weights;         // per-sample weight / presence; empty = all 1
};

inline constexpr std::int32_t no_label = -100;

// op<T, In>: a module with
//   var<T> operator()(const var<T>& fused, dropout_rng&, bool training) const;   // prediction
//   var<T> loss(const var<T>& prediction, const task_labels&) const;              // scalar
template <class Op, class T>
concept head_op = module<Op> && requires(const Op& op, const var<T>& x, dropout_rng& rng, const task_labels& y) {
  { op(x, rng, true) } -> std::same_as<var<T>>;
  { op.loss(x, y) } -> std::same_as<var<T>>;
};

}  // namespace hybrid::head
