// Gated multimodal unit (Arevalo et al. 2017, GMU) for M modalities of any widths: each modality is
// projected to Width by tanh(W_m x_m), and gates computed from all inputs weigh the projections.
#pragma once
#include <array>
#include <random>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/reduce.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid::fuse {

// softmax: z = softmax over modalities per feature; with two modalities exactly the paper's bimodal
//   z, 1 - z; absent modalities get weight 0 and the present ones renormalise.
// sigmoid: z_m = sigmoid(.) independently per modality, the paper's M-modality form.
enum class gmu_gate { softmax, sigmoid };

// h = sum_m z_m * tanh(W_m x_m + b_m),  z = gate(W_z [x_1; ...; x_M] + b_z).
// Parameters: proj.<m>.{weight,bias} [Width, W_m], gate.{weight,bias} [Width * M, sum W_m]: the gate's
// output row f * M + m is modality m's gate for feature f.
template <index_t Width, gmu_gate Gate = gmu_gate::softmax>
struct gated {
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    static_assert(M >= 1, "fuse::gated: needs at least one modality");

   public:
    using value_type = T;
    static constexpr index_t width = Width;

    op() : proj_{layers::linear<T>(Widths, Width)...}, gate_((Widths + ... + 0), Width * index_t(M)) {
      std::mt19937 rng(0x6a7e);
      for (auto& p : proj_) p.init(rng);
      gate_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      for (std::size_t m = 0; m < M; ++m) proj_[m].visit(modality_name(prefix, "proj", m, names), f);
      gate_.visit(join_name(prefix, "gate"), f);
    }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      const index_t B = parts[0].pooled.dim(0);
      std::array<var<T>, M> xs, hs;
      for (std::size_t m = 0; m < M; ++m) {
        xs[m] = mask_absent(parts[m].pooled, present[m]);
        hs[m] = mask_absent(proj_[m].apply(xs[m], activation::tanh), present[m]);
      }
      const var<T> logits = reshape(gate_(M == 1 ? xs[0] : hybrid::concat(std::span<const var<T>>(xs), -1)),
                                    {B, Width, index_t(M)});
      var<T> z;
      if constexpr (Gate == gmu_gate::softmax) {
        const var<T> mask = modality_mask(present, B);
        z = softmax(logits, mask.valid() ? reshape(mask, {B, 1, index_t(M)}) : mask);
      } else {
        z = sigmoid(logits);
      }
      return hybrid::sum(var<T>(z * stack(std::span<const var<T>>(hs), 2)), -1);
    }

   private:
    std::array<layers::linear<T>, M> proj_;
    layers::linear<T> gate_;
  };
};

}  // namespace hybrid::fuse
