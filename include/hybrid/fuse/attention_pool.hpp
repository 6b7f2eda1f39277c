// Attention pooling over modalities: a learned query scores each modality's projected vector, a softmax
// over the modalities a sample has gives the weights, and the output is the weighted sum.
#pragma once
#include <array>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/matmul.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid::fuse {

// attention_pool<Width>: u_m = tanh(W_m x_m + b_m) [Width], s_m = q . u_m + priority_m,
// alpha = softmax over present modalities of s, out = sum_m alpha_m u_m. q is the learned query (which
// content matters), priority a learned per-modality bias (which modality is trusted a priori, zeros at
// start). The weights of the last call are kept, [B, M] (rows of absent modalities' weights are 0, a
// sample with no modality has all zeros and a zero output); reading them is not thread-safe.
// Parameters: proj.<m>.{weight,bias} [Width, W_m], query [Width], priority [M].
template <index_t Width>
struct attention_pool {
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    static_assert(M >= 1, "fuse::attention_pool: needs at least one modality");

   public:
    using value_type = T;
    static constexpr index_t width = Width;

    op() : proj_{layers::linear<T>(Widths, Width)...}, query_("query", {Width}), priority_("priority", {index_t(M)}) {
      std::mt19937 rng(0xa77e);
      for (auto& p : proj_) p.init(rng);
      init_uniform(query_, rng, 1.0 / std::sqrt(double(Width)));
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      for (std::size_t m = 0; m < M; ++m) proj_[m].visit(modality_name(prefix, "proj", m, names), f);
      f(join_name(prefix, "query"), query_);
      f(join_name(prefix, "priority"), priority_);
    }

    // The weights alpha [B, M] of the last forward call.
    const hybrid::tensor<T>& weights() const { return weights_; }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      const index_t B = parts[0].pooled.dim(0);
      std::array<var<T>, M> us;
      for (std::size_t m = 0; m < M; ++m) us[m] = proj_[m].apply(parts[m].pooled, activation::tanh);
      const var<T> u = stack(std::span<const var<T>>(us), 1);  // [B, M, Width]
      const var<T> scores = reshape(matmul(u, reshape(query_.use(), {Width, 1})), {B, index_t(M)}) + priority_;
      const var<T> alpha = softmax(scores, modality_mask(present, B));
      weights_ = alpha.value();
      return reshape(matmul(reshape(alpha, {B, 1, index_t(M)}), u), {B, Width});
    }

   private:
    std::array<layers::linear<T>, M> proj_;
    parameter<T> query_, priority_;
    mutable hybrid::tensor<T> weights_;
  };
};

}  // namespace hybrid::fuse
