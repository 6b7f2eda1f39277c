// The BERT text encoder, numerically compatible with Hugging Face's BertModel (post-LN blocks,
// erf GELU, LayerNorm eps 1e-12, additive -10000 padding mask, tanh pooler on [CLS]).
#pragma once
#include <numeric>
#include <vector>

#include "hybrid/autodiff/keep_result.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/enc/encoder.hpp"
#include "hybrid/layers/attention.hpp"
#include "hybrid/layers/embedding.hpp"
#include "hybrid/layers/layer_norm.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/layers/transformer_block.hpp"

namespace hybrid::enc {

// Field names follow Hugging Face's BertConfig where they exist (hidden_size -> hidden, ...).
struct bert_config {
  index_t vocab = 30522;
  index_t hidden = 768;
  index_t layers = 12;
  index_t heads = 12;
  index_t ffn = 3072;
  index_t max_positions = 512;
  index_t type_vocab = 2;
  double layer_norm_eps = 1e-12;
  double dropout = 0.1;
  double attention_dropout = 0.1;
  bool pooler = true;
};

// Token ids [B, T]; token types and attention mask may be left empty (zeros / all ones).
struct text_input {
  tensor<std::int32_t> ids;
  tensor<std::int32_t> token_types;
  tensor<float> attention_mask;
};

// BERT's output: sequence = last hidden state [B, T, hidden]; pooled = tanh(dense([CLS])) [B, hidden]
// (or [CLS] itself without a pooler).
template <class T>
using bert_output = encoded<T>;

// What one forward pass can also hand out (Hugging Face's output_hidden_states and output_attentions), as copies.
template <class T>
struct bert_trace {
  std::vector<tensor<T>> hidden_states;  // the embeddings' output, then each layer's: layers + 1 of [B, T, hidden]
  std::vector<tensor<T>> attentions;     // each layer's attention probabilities [B, heads, T, T], before dropout
};

// One BertLayer: the post-LN transformer block with BERT's names.
inline layers::transformer_block_config bert_block_config(const bert_config& c) {
  return {.width = c.hidden, .heads = c.heads, .ffn = c.ffn, .pre_norm = false, .layer_norm_eps = c.layer_norm_eps,
          .dropout = c.dropout, .attention_dropout = c.attention_dropout, .act = layers::activation::gelu,
          .names = layers::block_names::bert};
}
template <class T = float>
using bert_block = layers::transformer_block<T>;

// BertModel with a configuration chosen at run time (checkpoint tools); `bert<cfg>` below fixes it
// at compile time for static composition.
template <class T = float>
class bert_model {
 public:
  using value_type = T;
  using input_type = text_input;

  bert_model() : bert_model(bert_config{}) {}
  explicit bert_model(const bert_config& c);

  const bert_config& config() const { return cfg_; }
  index_t width() const { return cfg_.hidden; }
  layers::embedding<T>& word_embeddings() { return word_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    word_.visit(join_name(prefix, "embeddings.word_embeddings"), f);
    position_.visit(join_name(prefix, "embeddings.position_embeddings"), f);
    token_type_.visit(join_name(prefix, "embeddings.token_type_embeddings"), f);
    embedding_norm_.visit(join_name(prefix, "embeddings.LayerNorm"), f);
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      blocks_[i].visit(join_name(prefix, "encoder.layer." + std::to_string(i)), f);
    if (cfg_.pooler) pooler_.visit(join_name(prefix, "pooler.dense"), f);
  }
  // The sub-modules, named as in visit (layers::walk_modules walks the tree).
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    f(join_name(prefix, "embeddings.word_embeddings"), word_);
    f(join_name(prefix, "embeddings.position_embeddings"), position_);
    f(join_name(prefix, "embeddings.token_type_embeddings"), token_type_);
    f(join_name(prefix, "embeddings.LayerNorm"), embedding_norm_);
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      f(join_name(prefix, "encoder.layer." + std::to_string(i)), blocks_[i]);
    if (cfg_.pooler) f(join_name(prefix, "pooler.dense"), pooler_);
  }
  // BERT's initialisation: N(0, 0.02) for weights and embeddings, zero biases, unit LayerNorm.
  void init_bert(std::mt19937& rng) {
    word_.init_normal(rng);
    position_.init_normal(rng);
    token_type_.init_normal(rng);
    embedding_norm_.init();
    for (auto& b : blocks_) b.init(rng);
    pooler_.init_bert(rng);
  }

  // trace, when given, receives the hidden states and attention probabilities of every layer (bert_trace).
  bert_output<T> operator()(const text_input& in, dropout_rng& rng, bool training = false,
                            bert_trace<T>* trace = nullptr) const;
  // Hugging Face's inputs_embeds: the word embeddings given as a var [B, L, hidden] instead of looked up from
  // in.ids, which may then be empty (token types and the attention mask still come from `in`). Gradients reach
  // them: gradient x input attributions, adversarial perturbations, soft prompts. Position and token-type
  // embeddings are added as usual.
  bert_output<T> operator()(const text_input& in, const var<T>& inputs_embeds, dropout_rng& rng, bool training = false,
                            bert_trace<T>* trace = nullptr) const;

 private:
  void check_input(const text_input& in, const char* what, const hybrid::shape& given, index_t B, index_t L) const {
    if (L > cfg_.max_positions)
      throw shape_error("bert", what, given, "position table", hybrid::shape{cfg_.max_positions, cfg_.hidden},
                        "sequence longer than max_positions");
    if (!in.token_types.empty() && in.token_types.shape() != hybrid::shape{B, L})
      throw shape_error("bert", "token_types", in.token_types.shape(), what, given);
    if (!in.attention_mask.empty() && in.attention_mask.shape() != hybrid::shape{B, L})
      throw shape_error("bert", "attention_mask", in.attention_mask.shape(), what, given);
  }
  // Everything after the word-embedding lookup: words [B, L, hidden].
  bert_output<T> encode(const var<T>& words, const text_input& in, index_t B, index_t L, dropout_rng& rng,
                        bool training, bert_trace<T>* trace) const {
    // Position ids (and zero type ids when none are given) in the tape's arena, not on the heap: an inference call
    // allocates nothing after warm-up (tests/enc/bert_test.cpp).
    tape& tp = tape::current();
    const std::span<std::int32_t> positions(tp.allocate<std::int32_t>(B * L), static_cast<std::size_t>(B * L));
    for (index_t b = 0; b < B; ++b) std::iota(positions.begin() + b * L, positions.begin() + (b + 1) * L, 0);
    std::span<const std::int32_t> types = in.token_types.span();
    if (in.token_types.empty()) {
      const std::span<std::int32_t> zeros(tp.allocate<std::int32_t>(B * L), static_cast<std::size_t>(B * L));
      std::fill(zeros.begin(), zeros.end(), 0);
      types = zeros;
    }
    const hybrid::shape layout{B, L};
    var<T> e = words + position_(positions, layout) + token_type_(types, layout);
    var<T> x = dropout(embedding_norm_(e), cfg_.dropout, rng, training);
    if (trace) {
      trace->hidden_states.assign(1, x.value());
      trace->attentions.clear();
    }

    var<T> mask;
    if (!in.attention_mask.empty()) mask = layers::additive_padding_mask<T>(in.attention_mask.span(), B, L);
    // In inference each layer frees its intermediates as it ends (keep_result): memory of one layer, not all.
    for (const auto& block : blocks_) {
      tensor<T>* probabilities = trace ? &trace->attentions.emplace_back() : nullptr;
      x = keep_result([&] { return block(x, mask, rng, training, probabilities); });
      if (trace) trace->hidden_states.push_back(x.value());
    }

    var<T> cls = reshape(slice(x, 1, 0, 1), {B, cfg_.hidden});
    var<T> pooled = cfg_.pooler ? pooler_.apply(cls, activation::tanh, &rng, training) : cls;
    return {x, pooled};
  }

  bert_config cfg_;
  layers::embedding<T> word_, position_, token_type_;
  layers::layer_norm<T> embedding_norm_;
  std::vector<bert_block<T>> blocks_;
  layers::linear<T> pooler_;
};

// Defined outside the class so that HYBRID_COMPILED can take them from the prebuilt library (core/compiled.hpp).
template <class T>
bert_model<T>::bert_model(const bert_config& c)
    : cfg_(c), word_(c.vocab, c.hidden), position_(c.max_positions, c.hidden), token_type_(c.type_vocab, c.hidden),
      embedding_norm_(c.hidden, c.layer_norm_eps), pooler_(c.hidden, c.hidden) {
  blocks_.reserve(static_cast<std::size_t>(c.layers));
  for (index_t i = 0; i < c.layers; ++i) blocks_.emplace_back(bert_block_config(c));
  std::mt19937 rng(42);
  init_bert(rng);
  assign_names(*this);
}

template <class T>
bert_output<T> bert_model<T>::operator()(const text_input& in, dropout_rng& rng, bool training,
                                         bert_trace<T>* trace) const {
  if (in.ids.rank() != 2) throw shape_error("bert: input ids must be [batch, length], got " + in.ids.shape().str());
  const index_t B = in.ids.dim(0), L = in.ids.dim(1);
  check_input(in, "input ids", in.ids.shape(), B, L);
  return encode(word_(in.ids.span(), {B, L}), in, B, L, rng, training, trace);
}

template <class T>
bert_output<T> bert_model<T>::operator()(const text_input& in, const var<T>& inputs_embeds, dropout_rng& rng,
                                         bool training, bert_trace<T>* trace) const {
  const hybrid::shape& s = inputs_embeds.shape();
  if (s.rank() != 3 || s[2] != cfg_.hidden)
    throw shape_error("bert", "inputs_embeds", s, "expected [B, L, hidden]",
                      hybrid::shape{s.rank() > 0 ? s[0] : 0, s.rank() > 1 ? s[1] : 0, cfg_.hidden},
                      "inputs_embeds must be [batch, length, hidden]");
  const index_t B = s[0], L = s[1];
  if (!in.ids.empty() && in.ids.shape() != hybrid::shape{B, L})
    throw shape_error("bert", "ids", in.ids.shape(), "inputs_embeds", s,
                      "ids, when given, must be [B, L] of inputs_embeds");
  check_input(in, "inputs_embeds", s, B, L);
  return encode(inputs_embeds, in, B, L, rng, training, trace);
}

HYBRID_EXTERN_FLOAT(class bert_model<float>)

// The compile-time form: widths are constants the composition checks (`model<...>`).
template <bert_config Config, class T = float>
class bert : public bert_model<T> {
 public:
  static constexpr index_t width = Config.hidden;
  static constexpr bool sequence_output = true;
  static constexpr bert_config config_value = Config;
  bert() : bert_model<T>(Config) {}
};

}  // namespace hybrid::enc
