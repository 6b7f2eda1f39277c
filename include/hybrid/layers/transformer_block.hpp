// A generic transformer encoder block: self-attention and a two-layer MLP, each a residual branch, with
// LayerNorm before each branch (pre-LN: ViT, GPT-2) or after each residual add (post-LN: BERT).
#pragma once
#include "hybrid/layers/attention.hpp"
#include "hybrid/layers/layer_norm.hpp"

namespace hybrid::layers {

enum class activation { gelu, relu };

struct transformer_block_config {
  index_t width = 768;
  index_t heads = 12;
  index_t ffn = 3072;
  bool pre_norm = true;              // false: post-LN, numerically BertLayer
  double layer_norm_eps = 1e-6;      // ViT's; BERT uses 1e-12
  double dropout = 0.0;              // on each branch's output, before the residual add
  double attention_dropout = 0.0;    // on the attention probabilities
  activation act = activation::gelu;  // erf GELU, as BERT and ViT
};

// Parameters: norm1, attention.{self.query, self.key, self.value, output.dense}, norm2, mlp.fc1, mlp.fc2.
template <class T = float>
class transformer_block {
 public:
  using value_type = T;
  transformer_block() = default;
  explicit transformer_block(const transformer_block_config& c)
      : cfg_(c), norm1_(c.width, c.layer_norm_eps), attention_(c.width, c.heads, c.attention_dropout),
        norm2_(c.width, c.layer_norm_eps), fc1_(c.width, c.ffn), fc2_(c.ffn, c.width) {}

  const transformer_block_config& config() const { return cfg_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    norm1_.visit(join_name(prefix, "norm1"), f);
    attention_.visit(join_name(prefix, "attention"), f);
    norm2_.visit(join_name(prefix, "norm2"), f);
    fc1_.visit(join_name(prefix, "mlp.fc1"), f);
    fc2_.visit(join_name(prefix, "mlp.fc2"), f);
  }
  // Direct child modules (what a sub-module walk, e.g. LoRA's apply_lora, descends into).
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    f(join_name(prefix, "norm1"), norm1_);
    f(join_name(prefix, "attention"), attention_);
    f(join_name(prefix, "norm2"), norm2_);
    f(join_name(prefix, "mlp.fc1"), fc1_);
    f(join_name(prefix, "mlp.fc2"), fc2_);
  }
  // N(0, stddev) weights and zero biases (BERT's and ViT's recipe), unit LayerNorm.
  void init(std::mt19937& rng, double stddev = 0.02) {
    norm1_.init();
    norm2_.init();
    attention_.init_bert(rng);
    fc1_.init_bert(rng, stddev);
    fc2_.init_bert(rng, stddev);
  }

  // x [B, T, width]; mask additive, broadcast to [B, heads, T, T] (or empty). Returns [B, T, width].
  var<T> operator()(const var<T>& x, const var<T>& mask, dropout_rng& rng, bool training) const {
    const double p = cfg_.dropout;
    auto attend = [&](const var<T>& h) { return dropout(attention_(h, h, mask, rng, training), p, rng, training); };
    auto mlp = [&](const var<T>& h) {
      const var<T> a = cfg_.act == activation::gelu ? fc1_(h, [](const auto& z) { return gelu(z); })
                                                    : fc1_(h, [](const auto& z) { return relu(z); });
      return dropout(fc2_(a), p, rng, training);
    };
    if (cfg_.pre_norm) {
      const var<T> h = attend(norm1_(x)) + x;
      return mlp(norm2_(h)) + h;
    }
    const var<T> h = norm1_(attend(x) + x);
    return norm2_(mlp(h) + h);
  }
  var<T> operator()(const var<T>& x, dropout_rng& rng, bool training) const { return (*this)(x, var<T>{}, rng, training); }

 private:
  transformer_block_config cfg_;
  layer_norm<T> norm1_;
  attention<T> attention_;
  layer_norm<T> norm2_;
  linear<T> fc1_, fc2_;
};

}  // namespace hybrid::layers
