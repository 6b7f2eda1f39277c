// FiLM (Perez et al. 2018): the other modalities produce a per-feature scale and shift for one
// conditioned modality, h' = gamma * h + beta, with gamma = 1 + W_g c + b_g and beta = W_b c + b_b.
#pragma once
#include <algorithm>
#include <vector>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/linear.hpp"

namespace hybrid::fuse {

// film<Width, Conditioned>: modality number Conditioned (its width must be Width, checked at compile
// time) is modulated by c = [x_m; ...] over all other modalities (absent ones zeroed). gamma is
// predicted around 1 (as a residual 1 + delta) so an untrained FiLM starts near the identity; a sample
// with no conditioning modality present gets exactly the identity (gamma = 1, beta = 0). Applied to the
// pooled vector: the fusion contract returns [B, Width] only, so modulating the sequence would be lost.
// Parameters: gamma.{weight,bias}, beta.{weight,bias} [Width, sum of the other widths].
template <index_t Width, std::size_t Conditioned = 0>
struct film {
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    static_assert(M >= 2, "fuse::film: needs a conditioned modality and at least one conditioning modality");
    static_assert(Conditioned < M, "fuse::film: the conditioned modality's index is out of range");
    static_assert(width_check<Width, nth_width<Conditioned, Widths...>>::ok);
    static constexpr index_t conditioning_width = (Widths + ... + 0) - Width;

   public:
    using value_type = T;
    static constexpr index_t width = Width;

    op() : gamma_(conditioning_width, Width), beta_(conditioning_width, Width) {
      std::mt19937 rng(0xf11a);
      gamma_.init(rng);
      beta_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      gamma_.visit(join_name(prefix, "gamma"), f);
      beta_.visit(join_name(prefix, "beta"), f);
    }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      const index_t B = parts[0].pooled.dim(0);
      std::vector<var<T>> cond;
      bool any_absent = false;
      for (std::size_t m = 0; m < M; ++m) {
        if (m == Conditioned) continue;
        cond.push_back(mask_absent(parts[m].pooled, present[m]));
        any_absent = any_absent || present[m].valid();
      }
      const var<T> c = cond.size() == 1 ? cond[0] : hybrid::concat(cond, -1);
      const var<T> h = mask_absent(parts[Conditioned].pooled, present[Conditioned]);
      if (!any_absent) return h + h * gamma_(c) + beta_(c);
      // Per sample, 1 when some conditioning modality is present, else 0: no conditioning, no change.
      var<T> conditioned = make_result<T>({B, 1}, false);
      for (index_t b = 0; b < B; ++b) {
        T any = 0;
        for (std::size_t m = 0; m < M; ++m)
          if (m != Conditioned) any = std::max(any, presence(present[m], b));
        conditioned.data()[b] = any;
      }
      return h + (h * gamma_(c) + beta_(c)) * conditioned;
    }

   private:
    layers::linear<T> gamma_, beta_;
  };
};

}  // namespace hybrid::fuse
