// The head contract, written once, and the labels a head learns from.
// A head recipe H has `static constexpr fixed_string name` and `template <class T, index_t... In> class op`.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/core/fixed_string.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/ops/dropout.hpp"
#include "hybrid/ops/loss.hpp"
#include "hybrid/ops/reduce.hpp"
#include "hybrid/ops/shape_ops.hpp"

namespace hybrid::head {

// One task's targets for a batch. Samples without a label are excluded from the loss:
// classes[i] == -100, or weights[i] == 0.
struct task_labels {
  std::vector<std::int32_t> classes;  // class index per sample (classification), per token (tagging, [B * L])
  tensor<float> values;               // [B, K] targets (regression, multilabel)
  std::vector<float> weights;         // per-sample weight / presence; empty = all 1
};

inline constexpr std::int32_t no_label = -100;

// What a head reads. By default a head reads its task's representation: the fused vector, or its own
// mixture when the model has a tower (MMoE); op<T, In> then gets In = that width. A head that needs a
// modality's own output (a token tagger needs the text sequence, a contrastive head the per-modality
// pooled vectors) declares `static constexpr std::array<source, N> sources`; the model then
// instantiates op<T, W_1, ..., W_N> with the widths of those encoders, passes the N values, and
// excludes from the loss the samples where any of those modalities is absent (weight 0).
enum class input { pooled, sequence };
struct source {
  std::string_view modality;
  head::input kind = input::pooled;
};

template <class H>
constexpr auto sources_of() {
  if constexpr (requires { H::sources; }) return H::sources;
  else return std::array<source, 0>{};
}
// A self-supervised head (contrastive) has a loss even when the batch carries no labels for it.
template <class H>
constexpr bool self_supervised() {
  if constexpr (requires { H::self_supervised; }) return H::self_supervised;
  else return false;
}

// A head whose decoder is the word-embedding table of the encoder it reads (head::mlm): the model passes
// that table as a second argument, op(sequence, table, rng, training).
template <class H>
constexpr bool ties_word_embeddings() {
  if constexpr (requires { H::tied_word_embeddings; }) return H::tied_word_embeddings;
  else return false;
}

// Whether the labels mark any sample (or token) as labelled: false when every weight is 0 or every class
// is no_label. A model treats such a task as absent from the batch (no loss, not even a weighting's
// regulariser), so a task labelled for only part of the data costs nothing where it has no labels.
inline bool labelled(const task_labels& y) {
  if (!y.weights.empty() && std::all_of(y.weights.begin(), y.weights.end(), [](float w) { return w == 0; })) return false;
  if (!y.classes.empty() &&
      std::all_of(y.classes.begin(), y.classes.end(), [](std::int32_t c) { return c == no_label; }))
    return false;
  return true;
}

// op<T, In...>: a module with a prediction and a scalar loss:
//   one input (the task representation [B, In], or the one declared source):
//     var<T> operator()(const var<T>& x, dropout_rng&, bool training) const;
//   several declared sources:
//     var<T> operator()(std::span<const var<T>> xs, dropout_rng&, bool training) const;
//   var<T> loss(const var<T>& prediction, const task_labels&) const;
// A loss over no labelled sample is 0 (never NaN), so a task missing from part of the data is masked.
template <class Op, class T>
concept head_op = module<Op> && requires(const Op& op, const var<T>& x, dropout_rng& rng, const task_labels& y) {
  { op(x, rng, true) } -> std::same_as<var<T>>;
  { op.loss(x, y) } -> std::same_as<var<T>>;
};

namespace detail {
template <class T>
std::span<const T> sample_weights(const task_labels& y, std::vector<T>& storage) {
  if (y.weights.empty()) return {};
  storage.assign(y.weights.begin(), y.weights.end());
  return storage;
}

// y.values as T, shaped like the prediction [B, ...]; rows of unlabelled samples (weight 0) are zeroed
// so that a placeholder there (NaN, say) cannot leak into the loss through 0 * NaN.
template <class T>
tensor<T> dense_targets(const task_labels& y, const hybrid::shape& s, std::string_view kind, std::string_view head) {
  if (y.values.numel() != s.numel())
    throw shape_error(std::string(kind) + " '" + std::string(head) + "'", "targets", y.values.shape(), "predictions", s);
  tensor<T> t(s);
  std::copy(y.values.begin(), y.values.end(), t.begin());
  const index_t B = s.rank() ? s.dim(0) : 1, J = B ? s.numel() / B : 0;
  if (!y.weights.empty() && static_cast<index_t>(y.weights.size()) == B)
    for (index_t b = 0; b < B; ++b)
      if (y.weights[static_cast<std::size_t>(b)] == 0) std::fill_n(t.data() + b * J, J, T(0));
  return t;
}

// The weighted mean of a per-element loss l [B, ...] over labelled samples:
// sum_b w_b sum_j l_bj / (J sum_b w_b), 0 when no sample is labelled (no NaN).
template <class T>
var<T> weighted_mean(const var<T>& per_element, const task_labels& y, std::string_view head) {
  const index_t B = per_element.rank() ? per_element.dim(0) : 1;
  const index_t J = B ? per_element.numel() / B : 0;
  if (y.weights.empty()) return mean(per_element);
  if (static_cast<index_t>(y.weights.size()) != B)
    throw shape_error(std::string(head) + ": " + std::to_string(y.weights.size()) + " sample weights for a loss of shape " +
                      per_element.shape().str());
  tensor<T> w({B, 1});  // a column, broadcast over each sample's row
  double total = 0;
  for (index_t b = 0; b < B; ++b) {
    w[b] = static_cast<T>(y.weights[static_cast<std::size_t>(b)]);
    total += w[b];
  }
  const T scale = total != 0 && J ? T(1 / (total * double(J))) : T(0);
  return sum(var<T>(reshape(per_element, {B, J}) * constant(w))) * scale;
}

// Cross-entropy per token of logits [B, L, C] (or [B, C]) against y.classes, one class per token in
// row-major order [B * L] (no_label: padding, unlabelled); y.weights per sample weigh all of its tokens.
// The mean over the counted tokens. `head` names the head in errors. (Token tagging, masked-LM.)
template <class T>
var<T> token_cross_entropy(const var<T>& logits, const task_labels& y, const std::string& head) {
  const index_t B = logits.dim(0), L = logits.rank() == 3 ? logits.dim(1) : 1;
  if (static_cast<index_t>(y.classes.size()) != B * L)
    throw shape_error(head, "logits", logits.shape(), "labels", hybrid::shape{static_cast<index_t>(y.classes.size())},
                      "one label per token (B * L)");
  std::vector<T> token_weights;
  if (!y.weights.empty()) {
    if (static_cast<index_t>(y.weights.size()) != B)
      throw shape_error(head + ": " + std::to_string(y.weights.size()) + " sample weights for logits " +
                        logits.shape().str());
    token_weights.resize(static_cast<std::size_t>(B * L));
    for (index_t t = 0; t < B * L; ++t)
      token_weights[static_cast<std::size_t>(t)] = static_cast<T>(y.weights[static_cast<std::size_t>(t / L)]);
  }
  return cross_entropy(logits, std::span<const std::int32_t>(y.classes), {.ignore_index = no_label},
                       std::span<const T>(token_weights));
}
}  // namespace detail

}  // namespace hybrid::head
