// Multi-task loss weighting: the contract (a model option, model<..., heads<...>, Weighting>) and the
// methods that need no gradients: equal, fixed, uncertainty (Kendall et al.), DWA (Liu et al.), random (Lin et al.).
#pragma once
#include <array>
#include <cmath>
#include <functional>
#include <random>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/shape_ops.hpp"

namespace hybrid::mtl {

// The tag a weighting recipe carries (`using option_kind = weighting_option;`), so the model can tell
// its options apart.
struct weighting_option {};

// What a weighting may ask of the model. gradient_norms(losses) gives, for each valid loss,
// |d loss / d r| with r the shared representation (model_output::boundary), from one head-only
// backward pass per task over the current forward; parameters' gradients are left as they were.
template <class T>
struct weighting_context {
  std::function<std::vector<double>(std::span<const var<T>>)> gradient_norms;
};

// A weighting recipe W: `template <class T, std::size_t K> class op`, a module (its parameters, if any,
// are named "mtl.*" in the model) with
//   std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>&);
//     per-task terms whose sum is the training loss; an invalid loss (no labels) gives an invalid term;
//     gradient surgery differentiates each term on its own.
//   std::array<double, K> weights() const;   // the weights of the last step (for logs)
// and optionally `void end_epoch()` (methods that look at epoch-level losses).
template <class Op, class T, std::size_t K>
concept weighting_op = module<Op> && requires(Op& op, const std::array<var<T>, K>& l, const weighting_context<T>& c) {
  { op.terms(l, c) } -> std::same_as<std::array<var<T>, K>>;
  { std::as_const(op).weights() } -> std::convertible_to<std::array<double, K>>;
};

namespace detail {
// term_k = w_k * L_k for the valid losses.
template <class T, std::size_t K>
std::array<var<T>, K> scaled(const std::array<var<T>, K>& losses, const std::array<double, K>& w) {
  std::array<var<T>, K> t;
  for (std::size_t k = 0; k < K; ++k)
    if (losses[k].valid()) t[k] = w[k] == 1 ? losses[k] : var<T>(losses[k] * static_cast<T>(w[k]));
  return t;
}
template <std::size_t K>
std::array<double, K> filled(double v) {
  std::array<double, K> a;
  a.fill(v);
  return a;
}
// K * softmax(x): weights that sum to K.
template <std::size_t K>
std::array<double, K> scaled_softmax(const std::array<double, K>& x, double total) {
  double m = x[0], z = 0;
  for (double v : x) m = std::max(m, v);
  std::array<double, K> w;
  for (std::size_t k = 0; k < K; ++k) z += (w[k] = std::exp(x[k] - m));
  for (double& v : w) v *= total / z;
  return w;
}
}  // namespace detail

// L = sum_k L_k: the default.
struct equal_weighting {
  using option_kind = weighting_option;
  template <class T, std::size_t K>
  class op {
   public:
    using value_type = T;
    template <class F>
    void visit(const std::string&, F&&) {}
    std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>&) { return losses; }
    std::array<double, K> weights() const { return detail::filled<K>(1); }
  };
};

// Weights fixed at compile time, one per head in heads<...> order: fixed_weighting<task_weights{1.0, 0.3}>.
struct task_weights {
  std::array<double, 16> w{};
  std::size_t count = 0;
  template <class... D>
  constexpr task_weights(D... d) : w{static_cast<double>(d)...}, count(sizeof...(D)) {  // NOLINT: implicit
    static_assert(sizeof...(D) <= 16, "task_weights: at most 16 tasks");
  }
};

// L = sum_k w_k L_k.
template <task_weights W>
struct fixed_weighting {
  using option_kind = weighting_option;
  template <class T, std::size_t K>
  class op {
   public:
    using value_type = T;
    op() {
      if (W.count != K)
        throw std::invalid_argument("fixed_weighting: " + std::to_string(W.count) + " weights for " +
                                    std::to_string(K) + " heads");
      std::copy_n(W.w.begin(), K, w_.begin());
    }
    template <class F>
    void visit(const std::string&, F&&) {}
    std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>&) {
      return detail::scaled(losses, w_);
    }
    std::array<double, K> weights() const { return w_; }

   private:
    std::array<double, K> w_{};
  };
};

// Kendall, Gal & Cipolla (2018), with learned log-variances s_k = log sigma_k^2 (parameter "log_vars", init 0):
//   L = sum_k exp(-s_k) L_k + s_k.
// One convention for every task, the common simplification (as LibMTL): Kendall's regression form
// 0.5 exp(-s) L + 0.5 s is the same objective times 0.5 (same optimal s = log L), so it only rescales
// that task by 2 against the others. A task absent from a batch adds neither term.
struct uncertainty_weighting {
  using option_kind = weighting_option;
  template <class T, std::size_t K>
  class op {
   public:
    using value_type = T;
    op() : log_vars_("log_vars", {static_cast<index_t>(K)}) {}
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      f(join_name(prefix, "log_vars"), log_vars_);
    }
    parameter<T>& log_vars() { return log_vars_; }
    std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>&) {
      std::array<var<T>, K> t;
      var<T> s = log_vars_.use();
      for (std::size_t k = 0; k < K; ++k) {
        if (!losses[k].valid()) continue;
        var<T> sk = slice(s, 0, static_cast<index_t>(k), 1);
        t[k] = reshape(var<T>(exp(-sk) * losses[k] + sk), hybrid::shape{});
      }
      return t;
    }
    std::array<double, K> weights() const {
      std::array<double, K> w;
      for (std::size_t k = 0; k < K; ++k) w[k] = std::exp(-double(log_vars_.value()[static_cast<index_t>(k)]));
      return w;
    }

   private:
    parameter<T> log_vars_;
  };
};

// Dynamic Weight Average (Liu, Johns & Davison 2019): w_k = K softmax_k(r_k / T), r_k = Lbar_k(e-1) / Lbar_k(e-2),
// with Lbar_k(e) task k's mean loss over epoch e; w = 1 for the first two epochs. The model averages the
// losses it sees; call model.end_epoch() (or op.end_epoch()) at the end of each epoch.
struct dwa_options {
  double temperature = 2;
};
template <dwa_options Options = dwa_options{}>
struct dwa {
  using option_kind = weighting_option;
  template <class T, std::size_t K>
  class op {
   public:
    using value_type = T;
    template <class F>
    void visit(const std::string&, F&&) {}
    std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>&) {
      for (std::size_t k = 0; k < K; ++k)
        if (losses[k].valid()) {
          sum_[k] += double(losses[k].item());
          ++count_[k];
        }
      return detail::scaled(losses, w_);
    }
    void end_epoch() {
      for (std::size_t k = 0; k < K; ++k) {
        before_[k] = last_[k];
        last_[k] = count_[k] ? sum_[k] / double(count_[k]) : last_[k];  // a task unseen this epoch keeps its last mean
        sum_[k] = 0;
        count_[k] = 0;
      }
      if (++epochs_ < 2) return;
      std::array<double, K> r;
      for (std::size_t k = 0; k < K; ++k)
        r[k] = (before_[k] > 0 ? last_[k] / before_[k] : 1.0) / Options.temperature;
      w_ = detail::scaled_softmax(r, double(K));
    }
    std::array<double, K> weights() const { return w_; }

   private:
    std::array<double, K> w_ = detail::filled<K>(1), sum_{}, last_{}, before_{};
    std::array<std::size_t, K> count_{};
    std::size_t epochs_ = 0;
  };
};

// Random Loss Weighting (Lin et al. 2022): every step w = softmax(eps), eps_k ~ N(0, 1), from a seeded
// RNG; the weights sum to 1 (not K), as in the paper and LibMTL.
struct random_weighting_options {
  std::uint64_t seed = 0x5eed;
};
template <random_weighting_options Options = random_weighting_options{}>
struct random_weighting {
  using option_kind = weighting_option;
  template <class T, std::size_t K>
  class op {
   public:
    using value_type = T;
    template <class F>
    void visit(const std::string&, F&&) {}
    std::array<var<T>, K> terms(const std::array<var<T>, K>& losses, const weighting_context<T>&) {
      std::array<double, K> eps;
      for (double& e : eps) e = normal_(rng_);
      w_ = detail::scaled_softmax(eps, 1.0);
      return detail::scaled(losses, w_);
    }
    std::array<double, K> weights() const { return w_; }
    void seed(std::uint64_t s) {
      rng_.seed(s);
      normal_.reset();
    }

   private:
    std::mt19937_64 rng_{Options.seed};
    std::normal_distribution<double> normal_;  // one stream of draws (it caches every second one)
    std::array<double, K> w_ = detail::filled<K>(1.0 / double(K));
  };
};

}  // namespace hybrid::mtl
