// tagging<"name", Tags, "modality">: token tagging (NER, POS) over a sequence encoder's output: one
// linear map per token, softmax cross-entropy per token, padding and unlabelled tokens ignored.
#pragma once
#include "hybrid/head/head.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/loss.hpp"

namespace hybrid::head {

// Reads the sequence [B, L, W] of modality `Modality` (declared in `sources`, see head.hpp), not the
// fused vector: the model passes that encoder's sequence and its width W as In.
template <fixed_string Name, index_t Tags, fixed_string Modality = "text">
struct tagging {
  static constexpr auto name = Name;
  static constexpr index_t outputs = Tags;
  static constexpr std::array<source, 1> sources{{{Modality.view(), input::sequence}}};
  template <class T, index_t In>
  class op {
   public:
    using value_type = T;
    op() : proj_(In, Tags) {
      std::mt19937 rng(17);
      proj_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      proj_.visit(prefix, f);
    }
    // sequence [B, L, In] -> logits [B, L, Tags]
    var<T> operator()(const var<T>& sequence, dropout_rng&, bool) const {
      if (sequence.rank() != 3)
        throw shape_error("tagging '" + std::string(Name.view()) + "': needs a sequence [B, L, W], got " +
                          sequence.shape().str());
      return proj_(sequence);
    }
    // y.classes: one tag per token in row-major order [B * L], no_label (-100) for padding and
    // unlabelled tokens; y.weights: per sample (0 excludes all of its tokens). Mean over counted tokens.
    var<T> loss(const var<T>& logits, const task_labels& y) const {
      return detail::token_cross_entropy(logits, y, "tagging '" + std::string(Name.view()) + "'");
    }

   private:
    layers::linear<T> proj_;
  };
};

}  // namespace hybrid::head
