// contrastive<"name", "a", "b", Embed>: CLIP-style alignment of two modalities: per-modality linear
// projections, L2-normalised rows, symmetric InfoNCE with a learned temperature (log scale, clamped).
#pragma once
#include <cmath>
#include <numeric>

#include "hybrid/head/head.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/loss.hpp"
#include "hybrid/ops/matmul.hpp"

namespace hybrid::head {

struct contrastive_options {
  double temperature = 0.07;  // initial: logit_scale = log(1 / temperature), as CLIP
  double max_scale = 100;     // CLIP clamps the logit scale to [0, log 100]
};

// Rows scaled to unit L2 norm: x / max(|x|, 1e-12), as torch.nn.functional.normalize.
template <class T>
var<T> l2_normalize(const var<T>& x) {
  var<T> squares = square(x);
  var<T> norm2 = sum(squares, -1, true);
  return x * rsqrt(maximum(norm2, T(1e-24)));
}

// Reads the pooled vectors of modalities A and B (declared in `sources`, see head.hpp). The prediction
// is [B, 2 * Embed]: the normalised embeddings of A (first Embed columns) and of B, ready for retrieval.
// The loss is self-supervised (sample i of A matches sample i of B); it needs no labels, and samples
// where either modality is absent (or whose weight is 0) are left out, as rows and as negatives.
template <fixed_string Name, fixed_string A, fixed_string B, index_t Embed,
          contrastive_options Options = contrastive_options{}>
struct contrastive {
  static constexpr auto name = Name;
  static constexpr index_t outputs = 2 * Embed;
  static constexpr bool self_supervised = true;
  static constexpr std::array<source, 2> sources{{{A.view(), input::pooled}, {B.view(), input::pooled}}};
  template <class T, index_t WidthA, index_t WidthB>
  class op {
   public:
    using value_type = T;
    op() : proj_a_(WidthA, Embed, false), proj_b_(WidthB, Embed, false), logit_scale_("logit_scale", {1}) {
      std::mt19937 rng(19);
      proj_a_.init(rng);
      proj_b_.init(rng);
      init_constant(logit_scale_, std::log(1 / Options.temperature));
    }
    // HF CLIP's names: "<a>_projection.weight", "<b>_projection.weight", "logit_scale".
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      proj_a_.visit(join_name(prefix, std::string(A.view()) + "_projection"), f);
      proj_b_.visit(join_name(prefix, std::string(B.view()) + "_projection"), f);
      f(join_name(prefix, "logit_scale"), logit_scale_);
    }
    parameter<T>& logit_scale() { return logit_scale_; }

    var<T> operator()(std::span<const var<T>> xs, dropout_rng&, bool) const {
      if (xs.size() != 2) throw std::invalid_argument("contrastive '" + std::string(Name.view()) + "': needs two inputs");
      return concat({l2_normalize(proj_a_(xs[0])), l2_normalize(proj_b_(xs[1]))}, -1);
    }

    // 0.5 * (CE(s * za zb^T, diag) + CE(s * zb za^T, diag)), s = exp(clamp(logit_scale, 0, log max_scale)).
    var<T> loss(const var<T>& pred, const task_labels& y) const {
      const index_t n = pred.dim(0);
      if (pred.rank() != 2 || pred.dim(1) != 2 * Embed)
        throw shape_error("contrastive '" + std::string(Name.view()) + "': prediction must be [B, " +
                          std::to_string(2 * Embed) + "], got " + pred.shape().str());
      if (!y.weights.empty() && static_cast<index_t>(y.weights.size()) != n)
        throw shape_error("contrastive '" + std::string(Name.view()) + "': " + std::to_string(y.weights.size()) +
                          " sample weights for a batch of " + std::to_string(n));
      std::vector<std::int32_t> kept;
      for (index_t i = 0; i < n; ++i)
        if (y.weights.empty() || y.weights[static_cast<std::size_t>(i)] != 0) kept.push_back(static_cast<std::int32_t>(i));
      var<T> za = slice(pred, -1, 0, Embed), zb = slice(pred, -1, Embed, Embed);
      if (kept.empty()) return sum(var<T>(za * T(0)));  // nothing to align: 0, still connected
      if (static_cast<index_t>(kept.size()) < n) {
        za = take_rows(za, std::span<const std::int32_t>(kept));
        zb = take_rows(zb, std::span<const std::int32_t>(kept));
      }
      std::vector<std::int32_t> diagonal(kept.size());
      std::iota(diagonal.begin(), diagonal.end(), 0);
      var<T> scale = exp(clamp(logit_scale_, 0.0, std::log(Options.max_scale)));
      var<T> logits = matmul(za, zb, {.b = true}) * scale;
      const std::span<const std::int32_t> targets(diagonal);
      return (cross_entropy(logits, targets) + cross_entropy(transpose(logits, 0, 1), targets)) * T(0.5);
    }

   private:
    layers::linear<T> proj_a_, proj_b_;
    parameter<T> logit_scale_;
  };
};

}  // namespace hybrid::head
