// multilabel<"name", Labels>: independent yes/no labels (keywords, tags): a linear map to one logit per
// label, sigmoid outputs, binary cross-entropy on the logits, per-sample masks and optional pos_weight.
#pragma once
#include "hybrid/head/head.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/loss.hpp"

namespace hybrid::head {

struct multilabel_options {
  // Weight of the positive term for every label (PyTorch's pos_weight with one value): > 1 favours
  // recall when positives are rare.
  double pos_weight = 1;
};

template <fixed_string Name, index_t Labels, multilabel_options Options = multilabel_options{}>
struct multilabel {
  static constexpr auto name = Name;
  static constexpr index_t outputs = Labels;
  template <class T, index_t In>
  class op {
   public:
    using value_type = T;
    op() : proj_(In, Labels) {
      std::mt19937 rng(13);
      proj_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      proj_.visit(prefix, f);
    }
    // The prediction is the logits [B, Labels] (what the loss needs for stability);
    // probabilities() applies the sigmoid.
    var<T> operator()(const var<T>& x, dropout_rng&, bool) const { return proj_(x); }
    static var<T> probabilities(const var<T>& logits) { return sigmoid(logits); }

    // targets: y.values [B, Labels] in [0, 1] (soft labels allowed); the mean over labels and over the
    // labelled samples (weights 0 excludes a sample).
    var<T> loss(const var<T>& logits, const task_labels& y) const {
      const tensor<T> target = detail::dense_targets<T>(y, logits.shape(), "multilabel", Name.view());
      const loss_options none{.reduction = reduction::none};
      const T pw[1] = {T(Options.pos_weight)};
      var<T> l = Options.pos_weight == 1 ? bce_with_logits(logits, target, none)
                                         : bce_with_logits(logits, target, std::span<const T>(pw), none);
      return detail::weighted_mean(l, y, Name.view());
    }

   private:
    layers::linear<T> proj_;
  };
};

}  // namespace hybrid::head
