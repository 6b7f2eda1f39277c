// Bayesian late fusion (product of experts): each modality has its own classifier, and the fused class
// log-posterior is log p(y | x_1..x_M) = sum_m log p(y | x_m) - (M - 1) log p(y), renormalised.
#pragma once
#include <array>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid::fuse {

// uniform: p(y) = 1 / Classes. Then (M - 1) log p(y) is the same for every class and the renormalisation
//   removes it: the fused posterior is the normalised product of the experts' posteriors.
// learned: log p(y) = log_softmax(prior), a parameter [Classes] starting uniform (zeros). To use the
//   training set's class frequencies instead, set it to their logs and freeze it (set_trainable(false)).
enum class bayes_prior { uniform, learned };

// bayes<Classes, Prior>: modality m's expert is a linear classifier, log p(y | x_m) = log_softmax(W_m x_m + b_m).
// A sample's absent modalities drop out of the sum and of the count: with n_b present modalities the
// fused log-posterior is log_softmax(sum_{m present} log p(y | x_m) - (n_b - 1) log p(y)); with none, the prior.
// The output [B, Classes] is a log-probability, so the head after it must not add a linear layer: its
// loss is the negative log-likelihood of the label, which cross_entropy computes exactly on these
// log-probabilities (log_softmax(log p) = log p): head::classify with classify_options{.linear = false}.
// The default head::classify would put a linear layer on top; that
// still trains, but the product of experts then becomes one more feature extractor.
// Parameters: expert.<m>.{weight,bias} [Classes, W_m]; prior [Classes] when learned.
template <index_t Classes, bayes_prior Prior = bayes_prior::uniform>
struct bayes {
  static_assert(Classes >= 2, "fuse::bayes: needs at least two classes");
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);

   public:
    using value_type = T;
    static constexpr index_t width = Classes;

    op() : expert_{layers::linear<T>(Widths, Classes)...}, prior_("prior", {Classes}) {
      std::mt19937 rng(0xba7e5);
      for (auto& e : expert_) e.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      for (std::size_t m = 0; m < M; ++m) expert_[m].visit(modality_name(prefix, "expert", m, names), f);
      if constexpr (Prior == bayes_prior::learned) f(join_name(prefix, "prior"), prior_);
    }

    // Modality m's own class log-posterior [B, Classes] (for per-modality losses or diagnostics).
    var<T> expert_log_posterior(std::size_t m, const var<T>& x) const { return log_softmax(expert_[m](x)); }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      const index_t B = parts[0].pooled.dim(0);
      var<T> total = mask_absent(expert_log_posterior(0, parts[0].pooled), present[0]);
      for (std::size_t m = 1; m < M; ++m)
        total = total + mask_absent(expert_log_posterior(m, parts[m].pooled), present[m]);
      if constexpr (Prior == bayes_prior::learned) {
        var<T> extra = make_result<T>({B, 1}, false);  // n_b - 1 per sample
        for (index_t b = 0; b < B; ++b) {
          T n = 0;
          for (const var<T>& p : present) n += presence(p, b);
          extra.data()[b] = n - T(1);
        }
        total = total - extra * log_softmax(prior_.use());
      }
      return log_softmax(total);
    }

   private:
    std::array<layers::linear<T>, M> expert_;
    parameter<T> prior_;
  };
};

}  // namespace hybrid::fuse
