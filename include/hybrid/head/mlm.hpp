// Masked-language modelling for BERT: the 15% / 80-10-10 masking procedure, Hugging Face's BertForMaskedLM
// head (cls.predictions.*, decoder tied to the word embeddings) and the two together as bert_for_masked_lm.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/batch.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/enc/bert.hpp"
#include "hybrid/head/head.hpp"
#include "hybrid/ops/loss.hpp"
#include "hybrid/ops/shape_ops.hpp"

namespace hybrid::head {

// ---- masking ------------------------------------------------------------------------------------------

// BERT's recipe (DataCollatorForLanguageModeling): each non-special token is chosen with `probability`;
// a chosen token becomes [MASK] with probability `mask`, a uniformly random token (any id in [0, vocab))
// with probability `random`, and stays itself otherwise. The loss is computed at the chosen tokens only.
struct mask_options {
  double probability = 0.15;
  double mask = 0.8;
  double random = 0.1;
};

struct masked_tokens {
  tensor<std::int32_t> ids;             // the model's input: ids with the chosen tokens replaced
  std::vector<std::int32_t> labels;     // one per token: the original id where chosen, no_label (-100) elsewhere
  std::vector<std::int32_t> positions;  // flat indices of the chosen tokens, increasing
  std::vector<std::int32_t> targets;    // the original ids at `positions` (labels without the -100s)
};

// 1 where ids holds one of `special_ids` ([CLS], [SEP], [PAD]): tokens never chosen for masking.
inline std::vector<std::uint8_t> special_tokens_mask(std::span<const std::int32_t> ids,
                                                     std::initializer_list<std::int32_t> special_ids) {
  std::vector<std::uint8_t> m(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i)
    m[i] = std::find(special_ids.begin(), special_ids.end(), ids[i]) != special_ids.end();
  return m;
}

namespace detail {
// A uniform double in [0, 1) from the top 53 bits: the same on every standard library (unlike the std
// distributions), so a seed gives the same masks everywhere.
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
}  // namespace detail

// Chooses and replaces tokens of `ids` (any shape; `special`: one flag per token, nonzero = never chosen).
// Draws, in token order: one uniform per non-special token; per chosen token one uniform for the
// replacement and, for a random replacement, one draw for the id.
inline masked_tokens mask_tokens(const tensor<std::int32_t>& ids, std::span<const std::uint8_t> special,
                                 std::int32_t mask_id, index_t vocab, std::mt19937_64& rng,
                                 const mask_options& o = {}) {
  if (static_cast<index_t>(special.size()) != ids.numel())
    throw shape_error("mask_tokens", "ids", ids.shape(), "special mask", hybrid::shape{static_cast<index_t>(special.size())},
                      "one flag per token");
  if (!(o.probability >= 0 && o.probability <= 1 && o.mask >= 0 && o.random >= 0 && o.mask + o.random <= 1 + 1e-12))
    throw std::invalid_argument("mask_tokens: probability must be in [0, 1], mask and random >= 0 with mask + random <= 1");
  if (vocab <= 0 || mask_id < 0 || mask_id >= vocab)
    throw std::invalid_argument("mask_tokens: mask id " + std::to_string(mask_id) + " outside a vocabulary of " +
                                std::to_string(vocab));
  masked_tokens m{ids.clone(), std::vector<std::int32_t>(static_cast<std::size_t>(ids.numel()), no_label), {}, {}};
  for (index_t i = 0; i < ids.numel(); ++i) {
    if (special[static_cast<std::size_t>(i)] || detail::uniform01(rng) >= o.probability) continue;
    const std::int32_t original = ids[i];
    m.labels[static_cast<std::size_t>(i)] = original;
    m.positions.push_back(static_cast<std::int32_t>(i));
    m.targets.push_back(original);
    const double u = detail::uniform01(rng);
    if (u < o.mask) m.ids[i] = mask_id;
    else if (u < o.mask + o.random) m.ids[i] = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
  }
  return m;
}

// ---- the head -------------------------------------------------------------------------------------------

// BertOnlyMLMHead: logits = LayerNorm(gelu(h W_t^T + b_t)) E^T + b, with E the [vocab, hidden] word-embedding
// table (tied: the decoder has no weight of its own, so both uses of E add into one gradient). Parameter
// names, under the model's "cls" prefix: predictions.transform.dense.{weight,bias},
// predictions.transform.LayerNorm.{weight,bias}, predictions.bias.
template <class T = float>
class mlm_head {
 public:
  using value_type = T;
  mlm_head() = default;
  explicit mlm_head(const enc::bert_config& c)
      : dense_(c.hidden, c.hidden), norm_(c.hidden, c.layer_norm_eps), bias_("bias", {c.vocab}) {}

  index_t vocab() const { return bias_.numel(); }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    dense_.visit(join_name(prefix, "predictions.transform.dense"), f);
    norm_.visit(join_name(prefix, "predictions.transform.LayerNorm"), f);
    f(join_name(prefix, "predictions.bias"), bias_);
  }
  void init_bert(std::mt19937& rng) {
    dense_.init_bert(rng);
    norm_.init();
    init_constant(bias_, 0.0);
  }

  // hidden [..., H] -> logits [..., V]; decoder_weight [V, H] (the word-embedding table).
  var<T> operator()(const var<T>& hidden, const var<T>& decoder_weight) const {
    if (decoder_weight.rank() != 2 || decoder_weight.dim(0) != vocab() || decoder_weight.dim(1) != dense_.in_features())
      throw shape_error("mlm_head", "decoder weight", decoder_weight.shape(), "expected [vocab, hidden]",
                        hybrid::shape{vocab(), dense_.in_features()});
    var<T> h = norm_(dense_.apply(hidden, activation::gelu));
    return matmul(h, decoder_weight, {.b = true}) + bias_;
  }
  // Logits at some positions of a sequence [B, L, H] only (flat indices b * L + t): the rows are gathered
  // before the transform, so the [n, V] decoder product is paid for the masked tokens alone (~15%).
  var<T> at(const var<T>& sequence, std::span<const std::int32_t> positions, const var<T>& decoder_weight) const {
    const index_t H = sequence.dim(-1);
    return (*this)(take_rows(reshape(sequence, {sequence.numel() / H, H}), positions), decoder_weight);
  }

 private:
  layers::linear<T> dense_;
  layers::layer_norm<T> norm_;
  parameter<T> bias_;
};

// Mean cross-entropy of logits [n, V] against the original ids, and how many rows the argmax gets right.
template <class T>
struct mlm_loss_result {
  var<T> loss;
  index_t correct = 0, count = 0;
};
template <class T>
mlm_loss_result<T> mlm_loss(const var<T>& logits, std::span<const std::int32_t> targets) {
  mlm_loss_result<T> r{cross_entropy(logits, targets), 0, static_cast<index_t>(targets.size())};
  const index_t V = logits.dim(-1);
  for (index_t i = 0; i < r.count; ++i) {
    const T* row = logits.data() + i * V;
    r.correct += std::max_element(row, row + V) - row == targets[static_cast<std::size_t>(i)];
  }
  return r;
}

// BertForMaskedLM: a BERT encoder without pooler ("bert.*") and the MLM head ("cls.*"). Its parameter
// names are exactly those of Hugging Face's checkpoints (the tied cls.predictions.decoder.weight is not a
// parameter of its own, as transformers leaves it out of the safetensors file).
template <class T = float>
class bert_for_masked_lm {
 public:
  using value_type = T;
  explicit bert_for_masked_lm(enc::bert_config c = {}, unsigned seed = 42);

  const enc::bert_config& config() const { return bert_.config(); }
  enc::bert_model<T>& bert() { return bert_; }
  const enc::bert_model<T>& bert() const { return bert_; }
  mlm_head<T>& head() { return cls_; }
  parameter<T>& word_embeddings() { return bert_.word_embeddings().weight(); }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    bert_.visit(join_name(prefix, "bert"), f);
    cls_.visit(join_name(prefix, "cls"), f);
  }

  // Logits [n, vocab] at n > 0 flat positions (b * L + t) of the input: the masked tokens.
  var<T> operator()(const enc::text_input& in, std::span<const std::int32_t> positions, dropout_rng& rng,
                    bool training = false) const;
  // Logits [B, L, vocab] at every position (inference, tests).
  var<T> all_logits(const enc::text_input& in, dropout_rng& rng, bool training = false) const;

 private:
  static enc::bert_config without_pooler(enc::bert_config c) {
    c.pooler = false;
    return c;
  }
  var<T> table() const { return const_cast<enc::bert_model<T>&>(bert_).word_embeddings().weight().use(); }

  enc::bert_model<T> bert_;
  mlm_head<T> cls_;
};

// Outside the class: prebuilt for float with HYBRID_COMPILED (core/compiled.hpp).
template <class T>
bert_for_masked_lm<T>::bert_for_masked_lm(enc::bert_config c, unsigned seed)
    : bert_(without_pooler(c)), cls_(c) {
  std::mt19937 rng(seed);
  bert_.init_bert(rng);
  cls_.init_bert(rng);
  assign_names(*this);
}

template <class T>
var<T> bert_for_masked_lm<T>::operator()(const enc::text_input& in, std::span<const std::int32_t> positions,
                                         dropout_rng& rng, bool training) const {
  if (positions.empty()) throw std::invalid_argument("bert_for_masked_lm: no positions to predict");
  return cls_.at(bert_(in, rng, training).sequence, positions, table());
}

template <class T>
var<T> bert_for_masked_lm<T>::all_logits(const enc::text_input& in, dropout_rng& rng, bool training) const {
  return cls_(bert_(in, rng, training).sequence, table());
}

HYBRID_EXTERN_FLOAT(class bert_for_masked_lm<float>)


// ---- the head in a composed model -----------------------------------------------------------------------

struct mlm_options {
  // true: the decoder is the word-embedding table of the encoder the head reads (BERT's tying; the model
  // passes it, and the encoder must have word_embeddings() of shape [Vocab, width]); false: a decoder
  // weight of the head's own, "predictions.decoder.weight".
  bool tie_word_embeddings = true;
  double layer_norm_eps = 1e-12;
};

// mlm<"name", Vocab, "modality">: masked-LM as one task of model<...> (pre-training next to other heads,
// or MLM as an auxiliary task while fine-tuning). Reads the modality's sequence [B, L, W]; the prediction
// is BERT's MLM logits at every token [B, L, Vocab]; the labels are one id per token (y.classes, [B * L]) with
// no_label at the tokens not chosen, as mask_tokens makes them (see mask_modality below). Parameter names
// under "heads.<name>" are those of mlm_head (predictions.transform.*, predictions.bias).
template <fixed_string Name, index_t Vocab, fixed_string Modality = "text", mlm_options Options = mlm_options{}>
struct mlm {
  static_assert(Vocab > 0, "head::mlm: the vocabulary size must be positive");
  static constexpr auto name = Name;
  static constexpr index_t outputs = Vocab;
  static constexpr std::array<source, 1> sources{{{Modality.view(), input::sequence}}};
  static constexpr bool tied_word_embeddings = Options.tie_word_embeddings;

  template <class T, index_t In>
  class op {
   public:
    using value_type = T;
    op() : head_(enc::bert_config{.vocab = Vocab, .hidden = In, .layer_norm_eps = Options.layer_norm_eps}) {
      std::mt19937 rng(23);
      head_.init_bert(rng);
      if constexpr (!tied_word_embeddings) {
        decoder_ = parameter<T>("weight", {Vocab, In});
        init_normal(decoder_, rng, 0.02);
      }
    }
    template <class F>
    void visit(const std::string& prefix, F&& f) {
      head_.visit(prefix, f);
      if constexpr (!tied_word_embeddings) f(join_name(prefix, "predictions.decoder.weight"), decoder_);
    }
    // sequence [B, L, In], word-embedding table [Vocab, In] -> logits [B, L, Vocab]
    var<T> operator()(const var<T>& sequence, const var<T>& word_embeddings, dropout_rng&, bool) const
      requires(tied_word_embeddings)
    {
      return head_(checked(sequence), word_embeddings);
    }
    var<T> operator()(const var<T>& sequence, dropout_rng&, bool) const
      requires(!tied_word_embeddings)
    {
      return head_(checked(sequence), decoder_.use());
    }
    // Mean cross-entropy over the chosen tokens (labels: the original ids there, no_label elsewhere).
    var<T> loss(const var<T>& logits, const task_labels& y) const {
      return detail::token_cross_entropy(logits, y, "mlm '" + std::string(Name.view()) + "'");
    }

   private:
    static const var<T>& checked(const var<T>& sequence) {
      if (sequence.rank() != 3 || sequence.dim(2) != In)
        throw shape_error("mlm '" + std::string(Name.view()) + "': needs a sequence [B, L, " + std::to_string(In) +
                          "], got " + sequence.shape().str());
      return sequence;
    }
    mlm_head<T> head_;
    parameter<T> decoder_;
  };
};

// Masks the token ids of `modality` in a batch for an mlm head called `head`: the batch's input becomes
// the masked ids, its labels the original ids at the chosen tokens (no_label elsewhere). Tokens whose
// attention mask is 0 and the ids in `special_ids` ([CLS], [SEP], [PAD]) are never chosen; a sample whose
// modality is absent gets no chosen token. Returns how many tokens were chosen.
inline index_t mask_modality(batch& b, std::string_view modality, std::string_view head, std::int32_t mask_id, index_t vocab,
                      std::initializer_list<std::int32_t> special_ids, std::mt19937_64& rng, const mask_options& o = {}) {
  const auto it = b.inputs.find(modality);
  if (it == b.inputs.end())
    throw std::invalid_argument("mask_modality: the batch has no modality '" + std::string(modality) + "'");
  auto* text = std::get_if<enc::text_input>(&it->second.input);
  if (!text) throw std::invalid_argument("mask_modality: modality '" + std::string(modality) + "' is not token ids");
  const tensor<std::int32_t>& ids = text->ids;
  std::vector<std::uint8_t> special = special_tokens_mask(std::span<const std::int32_t>(ids.data(), ids.numel()), special_ids);
  const index_t B = ids.rank() ? ids.dim(0) : 0, L = B ? ids.numel() / B : 0;
  if (text->attention_mask.numel() == ids.numel())
    for (index_t i = 0; i < ids.numel(); ++i) special[static_cast<std::size_t>(i)] |= text->attention_mask[i] == 0;
  const auto& present = it->second.present;
  for (index_t bi = 0; bi < B && !present.empty(); ++bi)
    if (!present[static_cast<std::size_t>(bi)]) std::fill_n(special.begin() + bi * L, L, std::uint8_t{1});
  masked_tokens m = mask_tokens(ids, special, mask_id, vocab, rng, o);
  text->ids = std::move(m.ids);
  b.labels[std::string(head)] = task_labels{std::move(m.labels), {}, {}};
  return static_cast<index_t>(m.positions.size());
}

}  // namespace hybrid::head
