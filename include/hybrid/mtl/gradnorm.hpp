// GradNorm (Chen et al. 2018): task weights that balance the tasks' gradient norms, pushing each toward
// the mean norm times its relative inverse training rate to the power alpha.
#pragma once
#include <cmath>

#include "hybrid/mtl/weighting.hpp"

namespace hybrid::mtl {

struct gradnorm_options {
  double alpha = 1.5;   // asymmetry: larger pulls slow tasks harder
  double lr = 0.025;    // step size of the weights' own update
};

// Per step, over the tasks with a loss: G_k = w_k |dL_k/dr|, Gbar = mean G, rtilde_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0)),
// L_grad = sum_k |G_k - Gbar rtilde_k^alpha| (the target held constant, as in the paper), then
// w_k -= lr dL_grad/dw_k = lr sign(G_k - target_k) |dL_k/dr|, w_k >= 1e-3, renormalised to sum K.
// The step's loss uses the weights before the update. L_k(0) is task k's first loss seen.
// Affordable variant: r is the shared representation (model_output::boundary: the fused vector and any
// modality output a head reads), not the last shared layer's weights, so the K norms cost K passes
// through the heads only. The weights are a non-trainable parameter "loss_weights" (checkpointed, never
// touched by the optimizer).
template <gradnorm_options Options = gradnorm_options{}>
struct gradnorm {
  using option_kind = weighting_option;
  template <class T, std::size_t K>
  class op {
   public:
    using value_type = T;
    op() : w_("loss_weights", {static_cast<index_t>(K)}) {
      init_constant(w_, 1.0);
      w_.set_trainable(false);
      initial_.fill(0);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      f(join_name(prefix, "loss_weights"), w_);
    }
    std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>& ctx) {
      const std::array<double, K> w = weights();
      std::vector<var<T>> valid;
      std::vector<std::size_t> task;
      for (std::size_t k = 0; k < K; ++k)
        if (losses[k].valid() && losses[k].requires_grad()) {
          valid.push_back(losses[k]);
          task.push_back(k);
        }
      if (valid.size() > 1) {
        if (!ctx.gradient_norms) throw std::logic_error("gradnorm: the model gave no way to compute gradient norms");
        const std::vector<double> norms = ctx.gradient_norms(valid);
        const std::size_t n = valid.size();
        std::vector<double> ratio(n), g(n);
        double mean_ratio = 0, mean_g = 0;
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t k = task[i];
          const double l = double(valid[i].item());
          if (initial_[k] <= 0) initial_[k] = l;
          ratio[i] = initial_[k] > 0 ? l / initial_[k] : 1.0;
          g[i] = w[k] * norms[i];
          mean_ratio += ratio[i] / double(n);
          mean_g += g[i] / double(n);
        }
        std::array<double, K> next = w;
        for (std::size_t i = 0; i < n; ++i) {
          const double target = mean_g * std::pow(mean_ratio > 0 ? ratio[i] / mean_ratio : 1.0, Options.alpha);
          const double d = g[i] > target ? norms[i] : g[i] < target ? -norms[i] : 0.0;
          next[task[i]] = std::max(w[task[i]] - Options.lr * d, 1e-3);
        }
        double total = 0;
        for (double v : next) total += v;
        for (std::size_t k = 0; k < K; ++k) w_.value()[static_cast<index_t>(k)] = static_cast<T>(next[k] * double(K) / total);
      }
      return detail::scaled(losses, w);
    }
    std::array<double, K> weights() const {
      std::array<double, K> w;
      for (std::size_t k = 0; k < K; ++k) w[k] = double(w_.value()[static_cast<index_t>(k)]);
      return w;
    }

   private:
    parameter<T> w_;
    std::array<double, K> initial_{};
  };
};

}  // namespace hybrid::mtl
