// Tensor fusion (Zadeh et al. 2017, TFN): the outer product of [1; h_m] over modalities keeps every
// unimodal, bimodal and trimodal interaction; flattened, a linear maps it to Width.
#pragma once
#include <array>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/linear.hpp"

namespace hybrid::fuse {

// tensor_fusion<Width, Proj>: h_m = W_m x_m + b_m projects each modality to Proj dims first, so the
// product has (Proj + 1)^M entries (729 for Proj 8 and three modalities); out = W_o vec(z_1 x ... x z_M) + b_o
// with z_m = [1; h_m]. An absent modality has h_m = 0: only the interactions without it survive, as if
// the modality were not in the product. Named tensor_fusion so it does not hide hybrid::tensor inside fuse.
// Parameters: proj.<m>.{weight,bias} [Proj, W_m], out.{weight,bias} [Width, (Proj + 1)^M].
template <index_t Width, index_t Proj = 8>
struct tensor_fusion {
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    static constexpr index_t product_size = [] {
      index_t n = 1;
      for (std::size_t m = 0; m < M; ++m) n *= Proj + 1;
      return n;
    }();
    static_assert(Proj >= 1 && M >= 1, "fuse::tensor_fusion: needs Proj >= 1 and a modality");
    static_assert(product_size <= 65536,
                  "fuse::tensor_fusion: (Proj + 1)^M is too large; lower Proj or use fuse::low_rank");

   public:
    using value_type = T;
    static constexpr index_t width = Width;

    op() : proj_{layers::linear<T>(Widths, Proj)...}, out_(product_size, Width) {
      std::mt19937 rng(0x7e45);
      for (auto& p : proj_) p.init(rng);
      out_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      for (std::size_t m = 0; m < M; ++m) proj_[m].visit(modality_name(prefix, "proj", m, names), f);
      out_.visit(join_name(prefix, "out"), f);
    }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      const index_t B = parts[0].pooled.dim(0);
      const var<T> one = constant(hybrid::shape{B, 1}, T(1));
      var<T> acc;  // [B, (Proj + 1)^m] after m modalities
      for (std::size_t m = 0; m < M; ++m) {
        const var<T> z = hybrid::concat({one, mask_absent(proj_[m](parts[m].pooled), present[m])}, -1);
        if (m == 0) {
          acc = z;
          continue;
        }
        const index_t n = acc.dim(1);  // per sample, [n, 1] x [1, Proj + 1]: the batched outer product
        acc = reshape(matmul(reshape(acc, {B, n, 1}), reshape(z, {B, 1, Proj + 1})), {B, n * (Proj + 1)});
      }
      return out_(acc);
    }

   private:
    std::array<layers::linear<T>, M> proj_;
    layers::linear<T> out_;
  };
};

}  // namespace hybrid::fuse
