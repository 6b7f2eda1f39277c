// A generic transformer encoder block: self-attention and a two-layer MLP, each a residual branch, with
// LayerNorm before each branch (pre-LN: ViT, GPT-2) or after each residual add (post-LN: BERT).
#pragma once
#include "hybrid/layers/attention.hpp"
#include "hybrid/layers/layer_norm.hpp"
#include "hybrid/layers/mlp.hpp"

namespace hybrid::layers {

// How a block names its parameters: generic (ViT-style norm1 / attention / norm2 / mlp.fc1 / mlp.fc2) or
// Hugging Face's BertLayer (attention.*, attention.output.LayerNorm, intermediate.dense, output.dense,
// output.LayerNorm), which BERT checkpoints and the BERT-layout cross-attention fusion use.
enum class block_names { generic, bert };

struct transformer_block_config {
  index_t width = 768;
  index_t heads = 12;
  index_t ffn = 3072;
  bool pre_norm = true;              // false: post-LN, numerically BertLayer
  double layer_norm_eps = 1e-6;      // ViT's; BERT uses 1e-12
  double dropout = 0.0;              // on each branch's output, before the residual add
  double attention_dropout = 0.0;    // on the attention probabilities
  activation act = activation::gelu;  // of the MLP's hidden layer; erf GELU, as BERT and ViT
  block_names names = block_names::generic;
};

// Self-attention block x -> block(x), and cross-attention block (x, memory) -> block(x attends to memory):
// queries from x, keys and values from another sequence (another modality's tokens, an encoder's output).
// Parameters (generic names): norm1, attention.{self.query, self.key, self.value, output.dense}, norm2,
// mlp.fc1, mlp.fc2; with block_names::bert, BertLayer's names and order.
template <class T = float>
class transformer_block {
  struct part_names {
    const char *norm1, *norm2, *fc1, *fc2;
  };
  part_names names() const {
    if (cfg_.names == block_names::bert)
      return {"attention.output.LayerNorm", "output.LayerNorm", "intermediate.dense", "output.dense"};
    return {"norm1", "norm2", "mlp.fc1", "mlp.fc2"};
  }

 public:
  using value_type = T;
  transformer_block() = default;
  explicit transformer_block(const transformer_block_config& c)
      : cfg_(c), norm1_(c.width, c.layer_norm_eps), attention_(c.width, c.heads, c.attention_dropout),
        norm2_(c.width, c.layer_norm_eps), fc1_(c.width, c.ffn), fc2_(c.ffn, c.width) {
    hybrid::detail::check_dropout_p("transformer_block: dropout", c.dropout);
  }

  const transformer_block_config& config() const { return cfg_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    visit_modules(prefix, [&](const std::string& name, auto& m) { m.visit(name, f); });
  }
  // Direct child modules (what a sub-module walk, e.g. LoRA's apply_lora, descends into), in visit's order.
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    const part_names n = names();
    if (cfg_.names == block_names::bert) {
      f(join_name(prefix, "attention"), attention_);
      f(join_name(prefix, n.norm1), norm1_);
      f(join_name(prefix, n.fc1), fc1_);
      f(join_name(prefix, n.fc2), fc2_);
      f(join_name(prefix, n.norm2), norm2_);
      return;
    }
    f(join_name(prefix, n.norm1), norm1_);
    f(join_name(prefix, "attention"), attention_);
    f(join_name(prefix, n.norm2), norm2_);
    f(join_name(prefix, n.fc1), fc1_);
    f(join_name(prefix, n.fc2), fc2_);
  }
  // N(0, stddev) weights and zero biases (BERT's and ViT's recipe), unit LayerNorm.
  void init(std::mt19937& rng, double stddev = 0.02) {
    norm1_.init();
    norm2_.init();
    attention_.init_bert(rng);
    fc1_.init_bert(rng, stddev);
    fc2_.init_bert(rng, stddev);
  }

  // Self-attention. x [B, T, width]; mask additive, broadcast to [B, heads, T, T] (or empty). Returns [B, T, width].
  // `attention_probabilities`, when given, receives the attention's [B, heads, T, T] (before dropout).
  var<T> operator()(const var<T>& x, const var<T>& mask, dropout_rng& rng, bool training,
                    tensor<T>* attention_probabilities = nullptr) const {
    return block(x, nullptr, mask, rng, training, attention_probabilities);
  }
  var<T> operator()(const var<T>& x, dropout_rng& rng, bool training) const { return (*this)(x, var<T>{}, rng, training); }
  // Cross-attention. x [B, T, width] asks, memory [B, S, width] answers; mask additive, broadcast to
  // [B, heads, T, S] (e.g. -inf on the memory tokens of an absent modality). Returns [B, T, width].
  // Pre-LN normalises the queries only: the memory comes normalised (or not) from whoever produced it.
  var<T> operator()(const var<T>& x, const var<T>& memory, const var<T>& mask, dropout_rng& rng, bool training) const {
    return block(x, &memory, mask, rng, training, nullptr);
  }

 private:
  var<T> block(const var<T>& x, const var<T>* memory, const var<T>& mask, dropout_rng& rng, bool training,
               tensor<T>* probabilities) const {
    const double p = cfg_.dropout;
    // branch(h) + skip. Without dropout on the branch (inference, or p = 0) the skip is the residual of the
    // branch's last product, which adds it in its epilogue when nothing needs a gradient.
    const bool dropout_off = !training || p == 0;
    auto attend_add = [&](const var<T>& h, const var<T>& skip) -> var<T> {
      const var<T>& kv = memory ? *memory : h;
      if (dropout_off) return attention_(h, kv, mask, rng, training, probabilities, &skip);
      return dropout(attention_(h, kv, mask, rng, training, probabilities), p, rng, training) + skip;
    };
    auto mlp_add = [&](const var<T>& h, const var<T>& skip) -> var<T> {
      const var<T> hidden = linear_activation(fc1_, h, cfg_.act, &rng, training);
      if (dropout_off) return fc2_.apply(hidden, activation::identity, &rng, training, &skip);
      return dropout(fc2_(hidden, rng, training), p, rng, training) + skip;
    };
    if (cfg_.pre_norm) {
      const var<T> h = attend_add(norm1_(x), x);
      return mlp_add(norm2_(h), h);
    }
    const var<T> h = norm1_(attend_add(x, x));
    return norm2_(mlp_add(h, h));
  }

  transformer_block_config cfg_;
  layer_norm<T> norm1_;
  attention<T> attention_;
  layer_norm<T> norm2_;
  linear<T> fc1_, fc2_;
};

}  // namespace hybrid::layers
