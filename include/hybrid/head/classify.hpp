// classify<"name", Classes>: a linear classification head trained with cross-entropy
// (optional label smoothing, or no linear layer); regress<"name", Outputs>: a linear regression head (MSE or L1).
#pragma once
#include "hybrid/head/head.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/loss.hpp"

namespace hybrid::head {

struct classify_options {
  double label_smoothing = 0;
  // false: no linear layer, the input already is the class scores (its width must be Classes). For a
  // fusion that outputs class log-probabilities (fuse::bayes): a linear layer on top would turn its
  // product of experts into one more feature extractor, and cross-entropy on log-probabilities is the NLL.
  bool linear = true;
};

template <fixed_string Name, index_t Classes, classify_options Options = classify_options{}>
struct classify {
  static constexpr auto name = Name;
  static constexpr index_t outputs = Classes;
  template <class T, index_t In>
  class op {
    static_assert(Options.linear || In == Classes,
                  "head::classify with linear = false: the input width must equal the number of classes");

   public:
    using value_type = T;
    op() {
      if constexpr (Options.linear) {
        proj_ = layers::linear<T>(In, Classes);
        std::mt19937 rng(7);
        proj_.init(rng);
      }
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      if constexpr (Options.linear) proj_.visit(prefix, f);
    }
    var<T> operator()(const var<T>& fused, dropout_rng&, bool) const {
      if constexpr (Options.linear) return proj_(fused);
      else return fused;
    }
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
    // Mean over the labelled samples (weights: 0 excludes a sample, other values weigh it).
    var<T> loss(const var<T>& pred, const task_labels& y) const {
      const tensor<T> target = detail::dense_targets<T>(y, pred.shape(), "regress", Name.view());
      const loss_options none{.reduction = reduction::none};
      var<T> l = Loss == regression_loss::mse ? mse_loss(pred, target, none) : l1_loss(pred, target, none);
      return detail::weighted_mean(l, y, Name.view());
    }

   private:
    layers::linear<T> proj_;
  };
};

}  // namespace hybrid::head
