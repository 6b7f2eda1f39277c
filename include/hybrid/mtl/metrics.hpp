// Evaluation metrics for multi-task models: accuracy, macro-F1, MSE/MAE, and the multi-task improvement
// Delta_p over single-task baselines (Maninis et al. 2019; Vandenhende et al. 2021).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/core/tensor.hpp"

namespace hybrid::mtl {

// The predicted class of each row of logits [..., C] (the first maximum on ties).
template <class T>
std::vector<std::int32_t> argmax_rows(const tensor<T>& logits) {
  const index_t C = logits.shape().cols(), N = logits.shape().rows();
  std::vector<std::int32_t> out(static_cast<std::size_t>(N));
  for (index_t r = 0; r < N; ++r) {
    index_t best = 0;
    for (index_t c = 1; c < C; ++c)
      if (logits[r * C + c] > logits[r * C + best]) best = c;
    out[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(best);
  }
  return out;
}

namespace detail {
inline void check_sizes(const char* what, std::size_t a, std::size_t b) {
  if (a != b)
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(a) + " predictions for " + std::to_string(b) +
                                " labels");
}
}  // namespace detail

// Fraction of labelled samples predicted right; labels equal to `ignore` (-100) are skipped. 0 if none.
inline double accuracy(std::span<const std::int32_t> predicted, std::span<const std::int32_t> labels,
                       std::int32_t ignore = -100) {
  detail::check_sizes("accuracy", predicted.size(), labels.size());
  std::size_t right = 0, counted = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == ignore) continue;
    ++counted;
    right += predicted[i] == labels[i];
  }
  return counted ? double(right) / double(counted) : 0.0;
}

// Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN), over the classes that occur among the
// labels or the predictions (scikit-learn's f1_score(average="macro")); ignored labels are skipped.
inline double macro_f1(std::span<const std::int32_t> predicted, std::span<const std::int32_t> labels,
                       std::int32_t ignore = -100) {
  detail::check_sizes("macro_f1", predicted.size(), labels.size());
  std::set<std::int32_t> classes;
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != ignore) {
      classes.insert(labels[i]);
      classes.insert(predicted[i]);
    }
  if (classes.empty()) return 0.0;
  double total = 0;
  for (std::int32_t c : classes) {
    double tp = 0, fp = 0, fn = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] == ignore) continue;
      tp += predicted[i] == c && labels[i] == c;
      fp += predicted[i] == c && labels[i] != c;
      fn += predicted[i] != c && labels[i] == c;
    }
    total += 2 * tp / (2 * tp + fp + fn);
  }
  return total / double(classes.size());
}

// Mean squared / absolute error over elements; optional per-sample weights (0 excludes a sample; the
// elements of a sample are the size / weights.size() consecutive values).
namespace detail {
template <class T, class F>
double weighted_error(const char* what, std::span<const T> predicted, std::span<const T> target,
                      std::span<const float> weights, F f) {
  check_sizes(what, predicted.size(), target.size());
  const std::size_t per = weights.empty() ? 1 : predicted.size() / std::max<std::size_t>(weights.size(), 1);
  if (!weights.empty() && per * weights.size() != predicted.size())
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(weights.size()) + " weights for " +
                                std::to_string(predicted.size()) + " values");
  double sum = 0, wsum = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) {
    const double w = weights.empty() ? 1.0 : double(weights[i / per]);
    if (w == 0) continue;
    sum += w * f(double(predicted[i]) - double(target[i]));
    wsum += w;
  }
  return wsum > 0 ? sum / wsum : 0.0;
}
}  // namespace detail
template <class T>
double mse(std::span<const T> predicted, std::span<const T> target, std::span<const float> weights = {}) {
  return detail::weighted_error("mse", predicted, target, weights, [](double d) { return d * d; });
}
template <class T>
double mae(std::span<const T> predicted, std::span<const T> target, std::span<const float> weights = {}) {
  return detail::weighted_error("mae", predicted, target, weights, [](double d) { return std::abs(d); });
}

// One task's metric in the multi-task model and in its single-task baseline.
struct task_metric {
  double multi_task = 0;
  double single_task = 0;
  bool lower_is_better = false;  // l_t = 1 (errors, losses), 0 (accuracy, F1)
};

// Delta_p = (1/T) sum_t (-1)^{l_t} (M_mt,t - M_st,t) / M_st,t, as a fraction (x100 for percent):
// > 0 means the multi-task model is better on average.
inline double delta_p(std::span<const task_metric> tasks) {
  if (tasks.empty()) throw std::invalid_argument("delta_p: no tasks");
  double total = 0;
  for (const task_metric& t : tasks) {
    if (t.single_task == 0) throw std::invalid_argument("delta_p: a single-task baseline of 0");
    const double rel = (t.multi_task - t.single_task) / t.single_task;
    total += t.lower_is_better ? -rel : rel;
  }
  return total / double(tasks.size());
}

}  // namespace hybrid::mtl
