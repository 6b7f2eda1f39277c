// Low-rank multimodal fusion (Liu et al. 2018, LMF): tensor fusion with the weight tensor factored
// into Rank modality-specific factors, so the cost is linear in the number of modalities.
#pragma once
#include <array>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/reduce.hpp"

namespace hybrid::fuse {

// low_rank<Width, Rank>: h = sum_r prod_m (W_m^(r) [x_m; 1]) + b. Factor m is one linear layer
// [Rank * Width, W_m] whose bias is the column that multiplies the appended 1; output row r * Width + f is
// rank r, feature f. An absent modality has x_m = 0, leaving its factor's constant column: exactly
// tensor fusion's behaviour with h_m = 0. Factors start Xavier-normal, as in the paper's code.
// Parameters: factor.<m>.{weight,bias}, bias [Width].
template <index_t Width, index_t Rank = 4>
struct low_rank {
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    static_assert(Rank >= 1 && M >= 1, "fuse::low_rank: needs Rank >= 1 and a modality");

   public:
    using value_type = T;
    static constexpr index_t width = Width;

    op() : factor_{layers::linear<T>(Widths, Rank * Width)...}, bias_("bias", {Width}) {
      std::mt19937 rng(0x10e4);
      for (auto& f : factor_) {
        const double stddev = std::sqrt(2.0 / double(f.in_features() + 1 + Width));
        init_normal(f.weight(), rng, stddev);
        init_normal(f.bias(), rng, stddev);
      }
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      for (std::size_t m = 0; m < M; ++m) factor_[m].visit(modality_name(prefix, "factor", m, names), f);
      f(join_name(prefix, "bias"), bias_);
    }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      const index_t B = parts[0].pooled.dim(0);
      var<T> prod = factor_[0](mask_absent(parts[0].pooled, present[0]));
      for (std::size_t m = 1; m < M; ++m) prod = prod * factor_[m](mask_absent(parts[m].pooled, present[m]));
      return hybrid::sum(reshape(prod, {B, Rank, Width}), 1) + bias_;
    }

   private:
    std::array<layers::linear<T>, M> factor_;
    parameter<T> bias_;
  };
};

}  // namespace hybrid::fuse
