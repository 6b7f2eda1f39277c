// classify<"name", Classes>: a linear classification head trained with cross-entropy
// (optional label smoothing); regress<"name", Outputs>: a linear regression head (MSE or L1).
#pragma once
#include "hybrid/head/head.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/loss.hpp"

namespace hybrid::head {

namespace detail {
template <class T>
std::span<const T> sample_weights(const task_labels& y, std::vector<T>& storage) {
  if (y.weights.empty()) return {};
  storage.assign(y.weights.begin(), y.weights.end());
  return storage;
}
}  // namespace detail

struct classify_options {
  double label_smoothing = 0;
};

template <fixed_string Name, index_t Classes, classify_options Options = classify_options{}>
struct classify {
  static constexpr auto name = Name;
  static constexpr index_t outputs = Classes;
  template <class T, index_t In>
  class op {
   public:
    using value_type = T;
    op() : proj_(In, Classes) {
      std::mt19937 rng(7);
      proj_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      proj_.visit(prefix, f);
    }
    var<T> operator()(const var<T>& fused, dropout_rng&, bool) const { return proj_(fused); }
    var<T> loss(const var<T>& logits, const task_labels& y) const {
      if (static_cast<index_t>(y.classes.size()) != logits.dim(0))
        throw shape_error("classify '" + std::string(Name.view()) + "': " + std::to_string(y.classes.size()) +
                          " labels for logits " + logits.shape().str());
      std::vector<T> w;
      return cross_entropy(logits, std::span<const std::int32_t>(y.classes),
                           {.ignore_index = no_label, .label_smoothing = Options.label_smoothing},
                           detail::sample_weights<T>(y, w));
    }

   private:
    layers::linear<T> proj_;
  };
};

enum class regression_loss { mse, l1 };

template <fixed_string Name, index_t Outputs, regression_loss Loss = regression_loss::mse>
struct regress {
  static constexpr auto name = Name;
  static constexpr index_t outputs = Outputs;
  template <class T, index_t In>
  class op {
   public:
    using value_type = T;
    op() : proj_(In, Outputs) {
      std::mt19937 rng(11);
      proj_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      proj_.visit(prefix, f);
    }
    var<T> operator()(const var<T>& fused, dropout_rng&, bool) const { return proj_(fused); }
    var<T> loss(const var<T>& pred, const task_labels& y) const {
      tensor<T> target(pred.shape());
      if (y.values.numel() != pred.numel())
        throw shape_error("regress '" + std::string(Name.view()) + "'", "targets", y.values.shape(), "predictions",
                          pred.shape());
      std::copy(y.values.begin(), y.values.end(), target.begin());
      if (!y.weights.empty()) {
        // Unlabelled samples: the target is set to the prediction, so they add nothing; the mean is
        // over labelled samples only.
        index_t labelled = 0;
        const index_t K = pred.numel() / std::max<index_t>(pred.dim(0), 1);
        for (index_t b = 0; b < pred.dim(0); ++b) {
          if (y.weights[static_cast<std::size_t>(b)] != 0) {
            ++labelled;
            continue;
          }
          for (index_t k = 0; k < K; ++k) target[b * K + k] = pred[b * K + k];
        }
        const T scale = labelled ? T(pred.dim(0)) / T(labelled) : T(0);
        var<T> l = Loss == regression_loss::mse ? mse_loss(pred, target) : l1_loss(pred, target);
        return l * scale;
      }
      return Loss == regression_loss::mse ? mse_loss(pred, target) : l1_loss(pred, target);
    }

   private:
    layers::linear<T> proj_;
  };
};

}  // namespace hybrid::head
