// Masked-LM pre-training of a BERT on tokenized text: length-grouped batches with dynamic padding, seeded
// masking, AdamW (no decay on biases / LayerNorm), warmup + linear decay, clipping, metrics, checkpoints.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/backend/parallel.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/data/text_corpus.hpp"
#include "hybrid/head/mlm.hpp"
#include "hybrid/io/checkpoint.hpp"
#include "hybrid/io/hf_bert.hpp"
#include "hybrid/io/wordpiece.hpp"
#include "hybrid/optim/adam.hpp"
#include "hybrid/optim/clip.hpp"
#include "hybrid/optim/schedule.hpp"
#include "hybrid/train/guard.hpp"

namespace hybrid::train {

// The token ids the masking needs.
struct mlm_vocab {
  std::int32_t cls = 101, sep = 102, pad = 0, mask = 103;
  index_t size = 30522;
  static mlm_vocab of(const io::wordpiece_tokenizer& tok) {
    const std::int32_t mask = tok.token_to_id(tok.options().mask_token);
    if (mask == tok.unk_id() && tok.options().mask_token != tok.options().unk_token)
      throw std::invalid_argument("mlm_vocab: the vocabulary has no " + tok.options().mask_token + " token");
    return {tok.cls_id(), tok.sep_id(), tok.pad_id(), mask, static_cast<index_t>(tok.vocab_size())};
  }
};

// [CLS] tokens [SEP] per text; a text longer than max_length - 2 tokens is cut into consecutive windows
// (each with its own [CLS] ... [SEP]) so no text is wasted. Texts with no tokens are dropped.
// Tokenizes in parallel (the tokenizer is immutable); the result is in text order for any thread count.
template <class Exec = exec::default_policy>
std::vector<std::vector<std::int32_t>> tokenize_for_mlm(const io::wordpiece_tokenizer& tok,
                                                        std::span<const std::string> texts, index_t max_length) {
  if (max_length < 3) throw std::invalid_argument("tokenize_for_mlm: max_length must be >= 3");
  const auto n = static_cast<index_t>(texts.size());
  std::vector<std::vector<std::int32_t>> ids(texts.size());
  Exec::for_each((n + 255) / 256, [&](index_t k) {
    for (index_t i = k * 256; i < std::min(n, (k + 1) * 256); ++i)
      ids[static_cast<std::size_t>(i)] = tok.tokenize_ids(texts[static_cast<std::size_t>(i)]);
  });
  const auto window = static_cast<std::size_t>(max_length - 2);
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& t : ids)
    for (std::size_t b = 0; b < t.size(); b += window) {
      std::vector<std::int32_t>& s = out.emplace_back();
      s.reserve(std::min(window, t.size() - b) + 2);
      s.push_back(tok.cls_id());
      s.insert(s.end(), t.begin() + static_cast<std::ptrdiff_t>(b),
               t.begin() + static_cast<std::ptrdiff_t>(std::min(t.size(), b + window)));
      s.push_back(tok.sep_id());
    }
  return out;
}

// A padded batch: ids [B, L] with L the longest sequence of the batch, attention mask 1/0.
inline enc::text_input pad_batch(const std::vector<std::vector<std::int32_t>>& seqs, std::span<const index_t> rows,
                                 std::int32_t pad) {
  std::size_t L = 0;
  for (index_t r : rows) L = std::max(L, seqs.at(static_cast<std::size_t>(r)).size());
  const auto B = static_cast<index_t>(rows.size());
  enc::text_input in{tensor<std::int32_t>({B, static_cast<index_t>(L)}), {}, tensor<float>({B, static_cast<index_t>(L)})};
  std::fill(in.ids.begin(), in.ids.end(), pad);
  std::fill(in.attention_mask.begin(), in.attention_mask.end(), 0.0f);
  for (index_t b = 0; b < B; ++b) {
    const auto& s = seqs[static_cast<std::size_t>(rows[static_cast<std::size_t>(b)])];
    std::copy(s.begin(), s.end(), in.ids.data() + b * static_cast<index_t>(L));
    std::fill_n(in.attention_mask.data() + b * static_cast<index_t>(L), s.size(), 1.0f);
  }
  return in;
}

struct mlm_options {
  index_t batch_size = 64;
  index_t steps = 1000;         // total updates (the schedule decays to 0 there)
  index_t warmup = -1;          // warmup updates; -1: 6% of steps
  double lr = 1e-3;
  double weight_decay = 0.01;   // not on biases and LayerNorm weights
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-6;
  double clip_norm = 1.0;       // global gradient norm; <= 0: no clipping
  head::mask_options masking{};
  index_t log_every = 50;       // the report callback runs every log_every updates and after the last
  std::uint64_t seed = 1;       // batch order, masks and dropout are functions of (seed, step)
  bool group_by_length = true;  // batches of similar lengths (less padding), in random order
  index_t max_consecutive_skips = 10;  // this many non-finite updates in a row throw train::non_finite_error
};

struct mlm_metrics {
  index_t step = 0;                // updates done
  double loss = 0, accuracy = 0;   // mean masked-token loss / accuracy over the updates since the last report
  double lr = 0, grad_norm = 0;    // of the last update
  index_t tokens = 0;              // non-padding tokens processed by this run so far
  double tokens_per_second = 0;    // over this run so far
  double elapsed_s = 0, eta_s = 0;
};

struct mlm_evaluation {
  double loss = 0, accuracy = 0;  // per masked token
  index_t masked = 0;
};

namespace detail {
inline std::uint64_t mix(std::uint64_t seed, std::uint64_t k) {
  return hybrid::detail::mix64(hybrid::detail::mix64(seed) + (k + 1) * hybrid::detail::golden64);
}
}  // namespace detail

// Writes a BertForMaskedLM checkpoint directory: config.json ("BertForMaskedLM"), model.safetensors
// ("bert.*" and "cls.*", F32, "format": "pt") and, when a vocabulary is given, vocab.txt. Each file is
// replaced atomically (model.safetensors last); transformers' BertForMaskedLM.from_pretrained reads it.
template <class T>
void save_bert_for_masked_lm(head::bert_for_masked_lm<T>& model, const std::filesystem::path& dir,
                             std::span<const std::string> vocab = {},
                             const std::map<std::string, std::string>& metadata = {}) {
  std::filesystem::create_directories(dir);
  io::write_bert_config(model.config(), dir / "config.json", "BertForMaskedLM");
  if (!vocab.empty())
    io::write_file_atomically(dir / "vocab.txt", [&](io::atomic_file_writer& w) {
      for (const std::string& t : vocab) {
        w.write(t);
        w.write(std::string_view("\n"));
      }
    });
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  io::save_parameters(model, dir / "model.safetensors", meta);
}

// Loads the encoder and MLM head of a BertForMaskedLM checkpoint (ours or transformers'; legacy
// gamma/beta names, a "bert." prefix or not). The tied cls.predictions.decoder.{weight,bias} that older
// files carry are skipped; every other head tensor must be there.
template <class T>
io::hf_bert_report load_bert_for_masked_lm(head::bert_for_masked_lm<T>& model, const io::safetensors_reader& r) {
  io::hf_bert_report rep = io::load_hf_bert(model.bert(), r);
  io::load_options o{.strip_prefix = "cls",
                     .add_prefix = "",
                     .rename = [](const std::string& name) -> std::string {
                       if (name.starts_with("predictions.decoder.")) return "";
                       return io::hf_bert_parameter_name(name);
                     },
                     .strict = true,
                     .unexpected = io::unexpected_tensors::ignore};
  io::load_parameters(model.head(), r, o);
  return rep;
}
template <class T = float>
head::bert_for_masked_lm<T> load_bert_for_masked_lm(const std::filesystem::path& dir) {
  head::bert_for_masked_lm<T> m(io::read_bert_config(dir / "config.json"));
  load_bert_for_masked_lm(m, io::safetensors_reader::open(dir / "model.safetensors"));
  return m;
}

// The training loop as an object: step() does one update; run() does the remaining ones, reporting every
// log_every updates. The model must stay where it is while the trainer lives (the optimizer holds
// pointers to its parameters).
template <class T = float, class Exec = exec::default_policy>
class mlm_pretrainer {
 public:
  using report_fn = std::function<void(const mlm_metrics&)>;

  mlm_pretrainer(head::bert_for_masked_lm<T>& model, std::vector<std::vector<std::int32_t>> sequences,
                 const mlm_vocab& vocab, const mlm_options& o = {});

  // Called by run() every log_every updates (and after the last) with the window's mean loss / accuracy.
  void on_report(report_fn f) { report_ = std::move(f); }
  // Called by run() after every update with that update's metrics (a live progress line).
  void on_step(report_fn f) { on_step_ = std::move(f); }
  const mlm_options& options() const { return opt_; }
  optim::adamw<T, Exec>& optimizer() { return optimizer_; }
  index_t step_count() const { return step_; }      // batches consumed
  index_t skipped_updates() const { return skipped_; }  // updates dropped for a non-finite gradient
  index_t batches_per_epoch() const { return (static_cast<index_t>(seqs_.size()) + opt_.batch_size - 1) / opt_.batch_size; }

  // One update. Returns its own metrics (loss and accuracy of this batch).
  mlm_metrics step();

  // Runs until options().steps updates are done (resumes where a loaded state left off).
  void run();

  // Loss and accuracy per masked token on other sequences, with masks fixed by `seed` (comparable across
  // calls); no gradients, no dropout.
  mlm_evaluation evaluate(const std::vector<std::vector<std::int32_t>>& seqs, std::uint64_t seed = 7,
                          index_t batch_size = 128) const;

  // The model (save_bert_for_masked_lm) plus trainer_state.safetensors: the optimizer's moments and step.
  void save(const std::filesystem::path& dir, std::span<const std::string> vocab = {});
  // Restores what save() wrote; run() then continues from the saved step with the same batches and masks.
  void resume(const std::filesystem::path& dir);

 private:
  head::masked_tokens mask(const tensor<std::int32_t>& ids, std::mt19937_64& rng) const {
    const auto special = head::special_tokens_mask(ids.span(), {vocab_.cls, vocab_.sep, vocab_.pad});
    head::masked_tokens m = head::mask_tokens(ids, special, vocab_.mask, vocab_.size, rng, opt_.masking);
    // A tiny batch can come out with nothing chosen: draw again (the rng has moved on) rather than waste it.
    for (int tries = 0; m.positions.empty() && tries < 100 && opt_.masking.probability > 0; ++tries)
      m = head::mask_tokens(ids, special, vocab_.mask, vocab_.size, rng, opt_.masking);
    return m;
  }

  // The rows of update s: epoch e = s / batches_per_epoch is a seeded permutation of all sequences; with
  // group_by_length, windows of 50 batches are sorted by length, cut into batches, and the batches shuffled.
  std::vector<index_t> batch_rows(index_t s) {
    const index_t per_epoch = batches_per_epoch(), epoch = s / per_epoch;
    if (epoch != plan_epoch_) {
      plan_epoch_ = epoch;
      plan_.clear();
      const auto N = static_cast<index_t>(seqs_.size());
      std::vector<index_t> order = data::shuffled_indices(N, detail::mix(opt_.seed ^ 0xba7c4, static_cast<std::uint64_t>(epoch)));
      if (opt_.group_by_length) {
        const index_t w = 50 * opt_.batch_size;
        for (index_t b = 0; b < N; b += w)
          std::stable_sort(order.begin() + b, order.begin() + std::min(N, b + w), [&](index_t x, index_t y) {
            return seqs_[static_cast<std::size_t>(x)].size() < seqs_[static_cast<std::size_t>(y)].size();
          });
      }
      for (index_t b = 0; b < N; b += opt_.batch_size)
        plan_.emplace_back(order.begin() + b, order.begin() + std::min(N, b + opt_.batch_size));
      if (opt_.group_by_length) {
        const std::vector<index_t> perm =
            data::shuffled_indices(static_cast<index_t>(plan_.size()), detail::mix(opt_.seed ^ 0x9e0, static_cast<std::uint64_t>(epoch)));
        std::vector<std::vector<index_t>> shuffled;
        shuffled.reserve(plan_.size());
        for (index_t p : perm) shuffled.push_back(std::move(plan_[static_cast<std::size_t>(p)]));
        plan_ = std::move(shuffled);
      }
    }
    return plan_[static_cast<std::size_t>(s % per_epoch)];
  }

  void start_timer() {
    timing_ = true;
    t0_ = std::chrono::steady_clock::now();
    first_step_ = step_;
  }
  void fill_timing(mlm_metrics& m) const {
    m.tokens = tokens_;
    m.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    m.tokens_per_second = m.elapsed_s > 0 ? static_cast<double>(tokens_) / m.elapsed_s : 0;
    const index_t done = m.step - first_step_;
    m.eta_s = done > 0 ? m.elapsed_s / static_cast<double>(done) * static_cast<double>(std::max<index_t>(0, opt_.steps - m.step)) : 0;
  }
  void report(mlm_metrics m) {
    if (window_steps_) m.loss = window_loss_ / static_cast<double>(window_steps_);
    if (window_masked_) m.accuracy = static_cast<double>(window_correct_) / static_cast<double>(window_masked_);
    window_loss_ = 0;
    window_correct_ = window_masked_ = window_steps_ = 0;
    if (report_) report_(m);
  }

  head::bert_for_masked_lm<T>& model_;
  std::vector<std::vector<std::int32_t>> seqs_;
  mlm_vocab vocab_;
  mlm_options opt_;
  optim::adamw<T, Exec> optimizer_;
  optim::lr_schedule schedule_;
  step_guard<T, Exec> guard_{optimizer_, {.max_consecutive_skips = opt_.max_consecutive_skips}};
  report_fn report_, on_step_;
  index_t step_ = 0, skipped_ = 0;
  index_t plan_epoch_ = -1;
  std::vector<std::vector<index_t>> plan_;
  bool timing_ = false;
  std::chrono::steady_clock::time_point t0_{};
  index_t first_step_ = 0, tokens_ = 0;
  double window_loss_ = 0;
  index_t window_correct_ = 0, window_masked_ = 0, window_steps_ = 0;
};

// Outside the class: prebuilt for float with HYBRID_COMPILED (core/compiled.hpp).
template <class T, class Exec>
mlm_pretrainer<T, Exec>::mlm_pretrainer(head::bert_for_masked_lm<T>& model,
                                        std::vector<std::vector<std::int32_t>> sequences, const mlm_vocab& vocab,
                                        const mlm_options& o)
    : model_(model), seqs_(std::move(sequences)), vocab_(vocab), opt_(o),
      optimizer_(optim::weight_decay_groups(parameters_of(model)),
                 optim::adamw_options{.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps,
                                      .weight_decay = o.weight_decay}),
      schedule_(optim::linear_schedule_with_warmup(
          o.warmup >= 0 ? o.warmup : static_cast<index_t>(std::llround(0.06 * static_cast<double>(o.steps))),
          o.steps)) {
  if (seqs_.empty()) throw std::invalid_argument("mlm_pretrainer: no sequences");
  if (o.batch_size <= 0 || o.steps < 0) throw std::invalid_argument("mlm_pretrainer: batch_size must be > 0, steps >= 0");
  if (vocab.size != model.config().vocab)
    throw std::invalid_argument("mlm_pretrainer: vocabulary of " + std::to_string(vocab.size) +
                                " tokens for a model with " + std::to_string(model.config().vocab));
  for (const auto& s : seqs_)
    if (static_cast<index_t>(s.size()) > model.config().max_positions)
      throw shape_error("mlm_pretrainer: a sequence of " + std::to_string(s.size()) + " tokens exceeds max_positions " +
                        std::to_string(model.config().max_positions));
}

template <class T, class Exec>
mlm_metrics mlm_pretrainer<T, Exec>::step() {
  if (!timing_) start_timer();
  const index_t s = step_;
  const std::vector<index_t> rows = batch_rows(s);
  const enc::text_input in = pad_batch(seqs_, rows, vocab_.pad);
  std::mt19937_64 rng(detail::mix(opt_.seed, 2 * static_cast<std::uint64_t>(s)));
  head::masked_tokens m = mask(in.ids, rng);
  enc::text_input masked{std::move(m.ids), {}, in.attention_mask};
  dropout_rng drop{detail::mix(opt_.seed, 2 * static_cast<std::uint64_t>(s) + 1), 0};

  optimizer_.zero_grad();
  auto logits = model_(masked, m.positions, drop, true);
  const auto r = head::mlm_loss(logits, std::span<const std::int32_t>(m.targets));
  const double loss = r.loss.item();
  r.loss.backward();
  const double norm = opt_.clip_norm > 0 ? optim::clip_grad_norm<Exec>(optimizer_, opt_.clip_norm)
                                         : optim::grad_norm<Exec>(optimizer_.parameters());
  const double factor = schedule_(s);
  optimizer_.scale_lr(factor);
  // A non-finite loss or gradient (an overflow): skip the update and move on to the next batch; a run of
  // them stops training (step_guard).
  if (!guard_.step(loss)) ++skipped_;
  ++step_;

  index_t tokens = 0;
  for (float a : in.attention_mask) tokens += a != 0;
  tokens_ += tokens;
  window_loss_ += loss;
  window_correct_ += r.correct;
  window_masked_ += r.count;
  ++window_steps_;
  mlm_metrics out;
  out.step = step_;
  out.loss = loss;
  out.accuracy = r.count ? static_cast<double>(r.correct) / static_cast<double>(r.count) : 0;
  out.lr = optimizer_.lr();
  out.grad_norm = norm;
  fill_timing(out);
  return out;
}

template <class T, class Exec>
void mlm_pretrainer<T, Exec>::run() {
  while (step_ < opt_.steps) {
    mlm_metrics m = step();
    if (on_step_) on_step_(m);
    if (m.step % std::max<index_t>(opt_.log_every, 1) == 0 || m.step == opt_.steps) report(m);
  }
}

template <class T, class Exec>
mlm_evaluation mlm_pretrainer<T, Exec>::evaluate(const std::vector<std::vector<std::int32_t>>& seqs,
                                                 std::uint64_t seed, index_t batch_size) const {
  mlm_evaluation e;
  double total = 0;
  index_t correct = 0;
  std::mt19937_64 rng(seed);
  no_grad ng;
  for (index_t b = 0; b < static_cast<index_t>(seqs.size()); b += batch_size) {
    tape_scope scope;
    std::vector<index_t> rows(static_cast<std::size_t>(std::min(batch_size, static_cast<index_t>(seqs.size()) - b)));
    std::iota(rows.begin(), rows.end(), b);
    const enc::text_input in = pad_batch(seqs, rows, vocab_.pad);
    head::masked_tokens m = mask(in.ids, rng);
    if (m.positions.empty()) continue;
    dropout_rng drop{0, 0};
    auto logits = model_(enc::text_input{std::move(m.ids), {}, in.attention_mask}, m.positions, drop, false);
    const auto r = head::mlm_loss(logits, std::span<const std::int32_t>(m.targets));
    total += r.loss.item() * static_cast<double>(r.count);
    correct += r.correct;
    e.masked += r.count;
  }
  if (e.masked) {
    e.loss = total / static_cast<double>(e.masked);
    e.accuracy = static_cast<double>(correct) / static_cast<double>(e.masked);
  }
  return e;
}

template <class T, class Exec>
void mlm_pretrainer<T, Exec>::save(const std::filesystem::path& dir, std::span<const std::string> vocab) {
  const std::map<std::string, std::string> meta{{"step", std::to_string(step_)},
                                                {"optimizer_step", std::to_string(optimizer_.step_count())},
                                                {"seed", std::to_string(opt_.seed)}};
  std::filesystem::create_directories(dir);
  optim::optimizer_state<T> st = optimizer_.state();
  io::f32_tensors t;
  for (const auto& nt : st.tensors) t.add(nt.name, nt.value.shape(), std::span<const T>(nt.value.span()));
  io::save_safetensors(dir / "trainer_state.safetensors", t.tensors(), meta);
  save_bert_for_masked_lm(model_, dir, vocab, meta);
}

template <class T, class Exec>
void mlm_pretrainer<T, Exec>::resume(const std::filesystem::path& dir) {
  load_bert_for_masked_lm(model_, io::safetensors_reader::open(dir / "model.safetensors"));
  const io::safetensors_reader r = io::safetensors_reader::open(dir / "trainer_state.safetensors");
  optim::optimizer_state<T> st = optimizer_.state();
  for (auto& nt : st.tensors) r.read_into<T>(nt.name, nt.value.span());
  const auto& meta = r.metadata();
  const auto a = meta.find("step"), b = meta.find("optimizer_step");
  if (a == meta.end() || b == meta.end())
    throw io::checkpoint_error("mlm_pretrainer::resume: " + (dir / "trainer_state.safetensors").string() +
                               " has no step / optimizer_step metadata");
  st.step = std::stoll(b->second);
  optimizer_.load_state(st);
  step_ = std::stoll(a->second);
  skipped_ = step_ - st.step;
  guard_.counters() = {.steps = step_, .skipped = skipped_, .consecutive = 0};
}

HYBRID_EXTERN_FLOAT(class mlm_pretrainer<float, exec::tbb>)
HYBRID_EXTERN_FLOAT(std::vector<std::vector<std::int32_t>> tokenize_for_mlm<exec::tbb>(const io::wordpiece_tokenizer&,
                                                                                       std::span<const std::string>,
                                                                                       index_t))

}  // namespace hybrid::train
