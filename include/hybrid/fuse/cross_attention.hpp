// Cross-modal attention: one modality's tokens (text) attend to the tokens of all the others, in a
// BERT-layout cross-attention block (layers::transformer_block with a memory), then pooled.
#pragma once
#include <array>
#include <limits>
#include <vector>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/transformer_block.hpp"
#include "hybrid/ops/reduce.hpp"

namespace hybrid::fuse {

enum class cross_pool { first, mean };  // the first ([CLS]) token, or the mean over tokens

struct cross_attention_config {
  std::size_t query = 0;                 // the modality whose tokens ask (its width must be Width)
  index_t heads = 1;
  index_t ffn = 0;                       // 0: 4 * Width
  cross_pool pool = cross_pool::first;
  double dropout = 0.1;                  // on each branch before its residual add (BERT's hidden dropout)
  double attention_dropout = 0.1;
  double layer_norm_eps = 1e-12;
};

// Queries: the query modality's sequence [B, Lq, Width] (a pooled-only modality is a length-1 sequence).
// Keys/values: every other modality's sequence (or pooled vector as one token), projected to Width when
// its width differs, joined along the token axis. An absent sample's keys get an additive -inf mask, so
// it has exactly zero weight; an absent query modality is zeroed, so the output then depends on the other
// modalities only. Padding inside a sequence cannot be masked yet: encoded<T> carries no token mask.
// Parameters, as a BertLayer: attention.self.{query,key,value}, attention.output.dense,
// attention.output.LayerNorm, intermediate.dense, output.dense, output.LayerNorm; kv_proj.<m> where needed.
template <index_t Width, cross_attention_config C = cross_attention_config{}>
struct cross_attention {
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    static_assert(M >= 2, "fuse::cross_attention: needs a query modality and at least one other");
    static_assert(C.query < M, "fuse::cross_attention: the query modality's index is out of range");
    static constexpr std::array<index_t, M> widths{Widths...};
    static_assert(width_check<Width, nth_width<C.query, Widths...>>::ok);
    static_assert(C.heads > 0 && Width % C.heads == 0, "fuse::cross_attention: Width must be a multiple of heads");
    static constexpr index_t ffn = C.ffn > 0 ? C.ffn : 4 * Width;
    static constexpr bool projected(std::size_t m) { return m != C.query && widths[m] != Width; }

   public:
    using value_type = T;
    static constexpr index_t width = Width;

    op()
        : block_({.width = Width, .heads = C.heads, .ffn = ffn, .pre_norm = false, .layer_norm_eps = C.layer_norm_eps,
                  .dropout = C.dropout, .attention_dropout = C.attention_dropout, .act = layers::activation::gelu,
                  .names = layers::block_names::bert}) {
      std::mt19937 rng(0xc405);
      for (std::size_t m = 0; m < M; ++m)
        if (projected(m)) {
          kv_proj_[m] = layers::linear<T>(widths[m], Width);
          kv_proj_[m].init(rng);
        }
      block_.init(rng);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      for (std::size_t m = 0; m < M; ++m)
        if (projected(m)) kv_proj_[m].visit(modality_name(prefix, "kv_proj", m, names), f);
      block_.visit(prefix, f);
    }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng& rng,
                      bool training) const {
      const index_t B = parts[0].pooled.dim(0);
      const auto tokens = [&](std::size_t m) {
        const enc::encoded<T>& p = parts[m];
        return p.sequence.valid() ? p.sequence : reshape(p.pooled, {B, 1, widths[m]});
      };
      var<T> x = tokens(C.query);
      const index_t Lq = x.dim(1);
      if (present[C.query].valid()) x = reshape(mask_absent(reshape(x, {B, Lq * Width}), present[C.query]), {B, Lq, Width});

      std::vector<var<T>> keys;
      bool any_absent = false;
      for (std::size_t m = 0; m < M; ++m) {
        if (m == C.query) continue;
        keys.push_back(projected(m) ? kv_proj_[m](tokens(m)) : tokens(m));
        any_absent = any_absent || present[m].valid();
      }
      const var<T> kv = keys.size() == 1 ? keys[0] : hybrid::concat(keys, 1);
      var<T> mask;
      if (any_absent) {  // [B, 1, 1, K]: -inf on the tokens of a modality the sample lacks
        const index_t K = kv.dim(1);
        mask = make_result<T>({B, 1, 1, K}, false);
        for (index_t b = 0; b < B; ++b) {
          index_t k = 0;
          for (std::size_t m = 0, j = 0; m < M; ++m) {
            if (m == C.query) continue;
            const T fill = presence(present[m], b) != T(0) ? T(0) : -std::numeric_limits<T>::infinity();
            for (index_t end = k + keys[j++].dim(1); k < end; ++k) mask.data()[b * K + k] = fill;
          }
        }
      }
      const var<T> y = block_(x, kv, mask, rng, training);
      if constexpr (C.pool == cross_pool::mean) return hybrid::mean(y, 1);
      else return reshape(slice(y, 1, 0, 1), {B, Width});
    }

   private:
    std::array<layers::linear<T>, M> kv_proj_;
    layers::transformer_block<T> block_;  // post-LN, BertLayer names
  };
};

}  // namespace hybrid::fuse
