// The flagship demo: pre-train a small BERT with masked-LM on real text, then train a multimodal (text + image
// + speech) multi-task model on the emoji set with that encoder, and evaluate it with every subset of modalities.
// Usage: flagship [--quick] [--steps N] [--epochs N] [--no-baseline] [--reuse] [--lr X] [--text-lr X] [--out DIR]
//                 [--seed S] [--help]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <hybrid/data/emoji.hpp>
#include <hybrid/enc/audio.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/enc/conv_image.hpp>
#include <hybrid/fuse/gated.hpp>
#include <hybrid/fuse/missing.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/head/multilabel.hpp>
#include <hybrid/model.hpp>
#include <hybrid/mtl/metrics.hpp>
#include <hybrid/mtl/weighting.hpp>
#include <hybrid/optim/adam.hpp>
#include <hybrid/optim/clip.hpp>
#include <hybrid/optim/schedule.hpp>
#include <hybrid/train/mlm_pretrainer.hpp>
#include <hybrid/train/progress.hpp>

#include "wordnet_text.hpp"

using namespace hybrid;

namespace {

// The text encoder: BERT-mini-like width with the real 30,522-token vocabulary. No pooler: masked-LM does not
// train one, so the pooled vector is the [CLS] token's hidden state.
constexpr enc::bert_config text_cfg{.vocab = 30522, .hidden = 128, .layers = 2, .heads = 2, .ffn = 512,
                                    .max_positions = 64, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                                    .attention_dropout = 0.1, .pooler = false};
constexpr enc::conv_image_config image_cfg{.size = 32, .channels = 3, .width = 128, .base = 16, .blocks = 2,
                                           .dropout = 0.1};
constexpr enc::audio_config audio_cfg{.channels = 64, .layers = 3, .width = 128, .dropout = 0.1};
constexpr index_t keywords = 32;
// Speech is cut at 3 s (the clips' median is 1.4 s before silence trimming, 5.7 s the longest): padding every
// clip to the longest would double the audio encoder's work for a few long names.
constexpr index_t max_speech_samples = 3 * audio_cfg.sample_rate;

// Gated (GMU) fusion with modality dropout and learned placeholders, so that any subset of the three modalities
// works at test time; two tasks weighted by learned uncertainties. An item has 1.6 of the 32 keywords on
// average: pos_weight 3 keeps the keyword head from settling on "none" early.
using net = model<encoders<modality<"text", enc::bert<text_cfg>>, modality<"image", enc::conv_image<image_cfg>>,
                           modality<"audio", enc::audio<audio_cfg>>>,
                  fuse::with_missing<fuse::gated<128>, fuse::missing_options{.dropout = 0.3}>,
                  heads<head::classify<"category", 8>,
                        head::multilabel<"keywords", keywords, head::multilabel_options{.pos_weight = 3}>>,
                  mtl::uncertainty_weighting>;
constexpr std::array<std::string_view, 3> modality_names{"text", "image", "audio"};

struct settings {
  bool quick = false, baseline = true;
  index_t pretrain_steps = 1000, pretrain_batch = 64;
  double corpus_fraction = 1.0;  // of the WordNet glosses + fortunes
  int epochs = 15;
  index_t batch = 32;
  double lr = 1e-3;
  double text_lr = 1e-3;  // of the text encoder's parameters, in both models
  bool reuse = false;     // load OUT/mlm instead of pre-training again
  std::filesystem::path out = "runs/flagship";
  std::uint64_t seed = 1;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Wall and CPU time (all threads) of each phase: on a shared machine the wall time alone says little, and
// CPU time bounds what an idle 2-core machine needs (between CPU / 2 and CPU).
struct phase_clock {
  struct entry {
    std::string name;
    double wall = 0, cpu = 0;
  };
  std::vector<entry> phases;
  std::chrono::steady_clock::time_point wall0 = std::chrono::steady_clock::now(), start = wall0;
  std::clock_t cpu0 = std::clock(), cpu_start = cpu0;
  void begin() {
    wall0 = std::chrono::steady_clock::now();
    cpu0 = std::clock();
  }
  void end(std::string name) {
    phases.push_back({std::move(name), seconds_since(wall0), double(std::clock() - cpu0) / CLOCKS_PER_SEC});
  }
  void print() const {
    std::printf("\n%-34s %8s %8s\n", "phase", "wall s", "CPU s");
    for (const auto& p : phases) std::printf("%-34s %8.1f %8.1f\n", p.name.c_str(), p.wall, p.cpu);
    std::printf("%-34s %8.1f %8.1f\n", "total", seconds_since(start),
                double(std::clock() - cpu_start) / CLOCKS_PER_SEC);
  }
};

// Everything the emoji phases read, prepared once: the dataset, each item's name as token ids, each clip's
// log-mel features.
struct emoji_inputs {
  data::emoji_dataset d;
  std::vector<std::vector<std::int32_t>> names;  // [CLS] name [SEP], per item
  std::int32_t pad = 0;
  tensor<float> audio;  // [items * voices, mels, frames], row i * voices + v
  index_t voices = 0;
};

emoji_inputs prepare_emoji(const io::wordpiece_tokenizer& tok) {
  const auto t0 = std::chrono::steady_clock::now();
  emoji_inputs e{data::load_emoji(data::emoji_options{.load_audio = true}), {}, tok.pad_id(), {}, 0};
  const double t_load = seconds_since(t0);
  for (const auto& it : e.d.items) {
    std::vector<std::int32_t> s{tok.cls_id()};
    const auto ids = tok.tokenize_ids(it.name);
    s.insert(s.end(), ids.begin(), ids.begin() + std::min<std::ptrdiff_t>(std::ssize(ids), text_cfg.max_positions - 2));
    s.push_back(tok.sep_id());
    e.names.push_back(std::move(s));
  }
  e.voices = static_cast<index_t>(e.d.items.front().audio.size());
  std::vector<std::vector<float>> clips;
  for (const auto& it : e.d.items) {
    if (static_cast<index_t>(it.audio.size()) != e.voices)
      throw std::runtime_error("emoji: items with different voice counts");
    for (const auto& c : it.audio)
      clips.emplace_back(c.begin(), c.begin() + std::min<std::ptrdiff_t>(std::ssize(c), max_speech_samples));
  }
  // One padded length for all: the features of a batch are then rows of one tensor.
  const auto t1 = std::chrono::steady_clock::now();
  e.audio = enc::precompute_features(audio_cfg, clips, max_speech_samples);
  std::printf("  emoji set with speech loaded in %.1f s, log-mel features of %zu clips in %.1f s\n", t_load,
              clips.size(), seconds_since(t1));
  return e;
}

// A batch of items `ids` with the modalities in `use` (text, image, audio); voice[k] picks each item's clip.
batch make_batch(const emoji_inputs& e, std::span<const index_t> ids, std::span<const index_t> voice,
                 std::array<bool, 3> use) {
  batch b;
  b.size = static_cast<index_t>(ids.size());
  if (use[0]) b.inputs["text"] = {train::pad_batch(e.names, ids, e.pad), {}};
  if (use[1]) b.inputs["image"] = {enc::dense_input{e.d.batch_images(ids)}, {}};
  if (use[2]) {
    const index_t row = e.audio.numel() / e.audio.dim(0);
    shape s = e.audio.shape();
    s[0] = b.size;
    tensor<float> a(s);
    for (index_t k = 0; k < b.size; ++k) {
      const index_t r = ids[static_cast<std::size_t>(k)] * e.voices + voice[static_cast<std::size_t>(k)];
      std::copy_n(e.audio.data() + r * row, row, a.data() + k * row);
    }
    b.inputs["audio"] = {enc::dense_input{std::move(a)}, {}};
  }
  b.labels["category"] = {e.d.batch_labels(ids), {}, {}};
  b.labels["keywords"] = {{}, e.d.batch_keyword_targets(ids), {}};
  return b;
}

// ---- phase 1: masked-LM pre-training ---------------------------------------------------------------------

struct pretrain_result {
  train::mlm_evaluation held_out;
  index_t sequences = 0, tokens = 0;
};

pretrain_result pretrain(const settings& s, const io::wordpiece_tokenizer& tok, const emoji_inputs& e,
                         const std::filesystem::path& dir) {
  const auto wn = wordnet_text::load_wordnet();
  std::vector<std::string> texts = wn.glosses.subset(wn.split.train).texts;
  const data::text_corpus fortunes = data::load_fortunes(wordnet_text::data_dir() / "text" / "fortunes");
  texts.insert(texts.end(), fortunes.texts.begin(), fortunes.texts.end());
  if (s.corpus_fraction < 1) {
    // A seeded sample rather than a prefix: the gloss file is sorted by part of speech.
    const std::vector<index_t> pick = data::shuffled_indices(static_cast<index_t>(texts.size()), s.seed);
    std::vector<std::string> kept;
    for (std::size_t i = 0; i < static_cast<std::size_t>(s.corpus_fraction * static_cast<double>(texts.size())); ++i)
      kept.push_back(std::move(texts[static_cast<std::size_t>(pick[i])]));
    texts = std::move(kept);
  }
  // The emoji names of the training split only: the test names stay unseen text.
  for (index_t i : e.d.train) texts.push_back(e.d.items[static_cast<std::size_t>(i)].name);
  auto seqs = train::tokenize_for_mlm(tok, std::span<const std::string>(texts), text_cfg.max_positions);
  // 1% held out (seeded) to measure masked-LM loss and accuracy on text the encoder never saw.
  const auto split = data::stratified_split(std::vector<std::int32_t>(seqs.size(), 0), 0.01, 0, 99);
  std::vector<std::vector<std::int32_t>> train_seqs, eval_seqs;
  for (index_t i : split.train) train_seqs.push_back(std::move(seqs[static_cast<std::size_t>(i)]));
  for (index_t i : split.test) eval_seqs.push_back(std::move(seqs[static_cast<std::size_t>(i)]));
  pretrain_result r;
  r.sequences = static_cast<index_t>(train_seqs.size());
  for (const auto& q : train_seqs) r.tokens += static_cast<index_t>(q.size());
  std::printf("  corpus: %zu texts (WordNet glosses, fortunes, %zu emoji names of the training split) -> %lld "
              "sequences, %lld tokens; %lld updates of %lld sequences\n",
              texts.size(), e.d.train.size(), static_cast<long long>(r.sequences), static_cast<long long>(r.tokens),
              static_cast<long long>(s.pretrain_steps), static_cast<long long>(s.pretrain_batch));

  // No dropout while pre-training: a short run underfits rather than overfits.
  enc::bert_config cfg = text_cfg;
  cfg.dropout = cfg.attention_dropout = 0;
  head::bert_for_masked_lm<float> mlm(cfg, static_cast<unsigned>(s.seed));
  train::mlm_pretrainer<float> trainer(
      mlm, std::move(train_seqs), train::mlm_vocab::of(tok),
      {.batch_size = s.pretrain_batch, .steps = s.pretrain_steps, .lr = 1e-3,
       .seed = s.seed});
  train::progress bar("  pre-train", s.pretrain_steps, {.unit = "step"});
  // A moving average of the per-update loss and accuracy: steadier than one batch's, and current at every step.
  double avg_loss = 0, avg_acc = 0;
  trainer.on_step([&](const train::mlm_metrics& m) {
    const double a = m.step == 1 ? 1.0 : 0.05;
    avg_loss += a * (m.loss - avg_loss);
    avg_acc += a * (m.accuracy - avg_acc);
    char buf[96];
    std::snprintf(buf, sizeof buf, "loss %.3f  masked acc %.1f%%  %s", avg_loss, 100 * avg_acc,
                  train::format_rate(m.tokens_per_second, "tok").c_str());
    bar.update(m.step, buf);
  });
  trainer.run();
  bar.finish();
  r.held_out = trainer.evaluate(eval_seqs);
  std::vector<std::string> vocab;
  for (std::size_t i = 0; i < tok.vocab_size(); ++i) vocab.push_back(tok.id_to_token(static_cast<std::int32_t>(i)));
  trainer.save(dir, vocab);
  std::printf("  held-out masked-LM (%zu sequences): loss %.3f, accuracy %.1f%% (chance: loss %.2f); saved %s\n",
              eval_seqs.size(), r.held_out.loss, 100 * r.held_out.accuracy, std::log(double(text_cfg.vocab)),
              dir.string().c_str());
  return r;
}

// ---- phase 2: multimodal multi-task training ---------------------------------------------------------------

void train_model(net& m, const settings& s, const emoji_inputs& e, const std::string& name) {
  // Biases, LayerNorm weights and the task log-variances get no weight decay.
  auto no_decay = [](std::string_view n) { return optim::no_decay_name(n) || n.starts_with("mtl."); };
  std::vector<parameter<float>*> text, rest;
  for (parameter<float>* p : parameters_of(m)) (p->name().starts_with("text.") ? text : rest).push_back(p);
  auto groups = optim::weight_decay_groups(rest, no_decay);
  for (auto& g : optim::weight_decay_groups(text, no_decay)) {
    g.lr = s.text_lr;
    groups.push_back(std::move(g));
  }
  optim::adamw<float> opt(std::move(groups), {.lr = s.lr, .weight_decay = 0.01});
  const index_t per_epoch = static_cast<index_t>(e.d.train.size()) / s.batch, total = per_epoch * s.epochs;
  const optim::lr_schedule schedule = optim::linear_schedule_with_warmup(total / 10, total);
  std::vector<index_t> order = e.d.train;
  std::mt19937_64 rng(s.seed);
  index_t step = 0;
  for (int epoch = 0; epoch < s.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    char label[64];
    std::snprintf(label, sizeof label, "  %s epoch %d/%d", name.c_str(), epoch + 1, s.epochs);
    train::progress bar(label, per_epoch, {.plain_every_percent = 100, .unit = "batch"});
    double loss_sum = 0;
    index_t correct = 0, seen = 0;
    for (index_t k = 0; k < per_epoch; ++k, ++step) {
      const std::span<const index_t> ids(order.data() + k * s.batch, static_cast<std::size_t>(s.batch));
      std::vector<index_t> voice(ids.size());
      for (auto& v : voice) v = static_cast<index_t>(rng() % static_cast<std::uint64_t>(e.voices));  // augmentation
      const batch b = make_batch(e, ids, voice, {true, true, true});
      opt.zero_grad();
      const auto out = m(b, true);
      auto loss = m.loss(out, b);
      loss_sum += loss.item();
      loss.backward();
      optim::clip_grad_norm(opt, 1.0);
      opt.scale_lr(schedule(step));
      opt.step();
      const auto predicted = mtl::argmax_rows(out["category"].value());
      const auto& labels = b.labels.at("category").classes;
      for (std::size_t r = 0; r < predicted.size(); ++r) correct += predicted[r] == labels[r];
      seen += b.size;
      char metrics[96];
      std::snprintf(metrics, sizeof metrics, "loss %.3f  train acc %.1f%%", loss_sum / double(k + 1),
                    100.0 * double(correct) / double(seen));
      bar.update(k + 1, metrics);
    }
    bar.finish();
  }
}

// ---- phase 3: evaluation with every subset of modalities ---------------------------------------------------

struct subset_score {
  double accuracy = 0, micro_f1 = 0;
};

// Category accuracy and keyword micro-F1 (a keyword is predicted when its logit is > 0) on the test split,
// for each of the 7 non-empty subsets of {text, image, audio}; test speech is the first voice.
std::array<subset_score, 7> evaluate(net& m, const emoji_inputs& e, const std::string& name) {
  no_grad ng;
  const index_t chunk = 128, n = static_cast<index_t>(e.d.test.size()), chunks = (n + chunk - 1) / chunk;
  std::array<subset_score, 7> scores{};
  train::progress bar("  evaluate " + name, 7 * chunks, {.plain_every_percent = 100, .unit = "batch"});
  for (int mask = 1; mask <= 7; ++mask) {
    const std::array<bool, 3> use{(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
    std::vector<std::int32_t> predicted, labels;
    index_t tp = 0, fp = 0, fn = 0;
    for (index_t c = 0; c < chunks; ++c) {
      tape_scope scope;
      const std::span<const index_t> ids(e.d.test.data() + c * chunk,
                                         static_cast<std::size_t>(std::min(chunk, n - c * chunk)));
      const std::vector<index_t> voice(ids.size(), 0);
      const batch b = make_batch(e, ids, voice, use);
      const auto out = m(b);
      const auto p = mtl::argmax_rows(out["category"].value());
      predicted.insert(predicted.end(), p.begin(), p.end());
      labels.insert(labels.end(), b.labels.at("category").classes.begin(), b.labels.at("category").classes.end());
      const var<float>& kw = out["keywords"];
      const tensor<float>& target = b.labels.at("keywords").values;
      for (index_t r = 0; r < b.size; ++r) {
        for (index_t k = 0; k < keywords; ++k) {
          const bool predicted = kw.data()[r * keywords + k] > 0, truth = target(r, k) > 0.5f;
          tp += predicted && truth;
          fp += predicted && !truth;
          fn += !predicted && truth;
        }
      }
      bar.advance();
    }
    scores[static_cast<std::size_t>(mask - 1)] = {mtl::accuracy(predicted, labels),
                                                  tp ? 2.0 * double(tp) / double(2 * tp + fp + fn) : 0.0};
  }
  bar.finish();
  return scores;
}

std::string subset_name(int mask) {
  std::string s;
  for (int i = 0; i < 3; ++i)
    if (mask & (1 << i)) s += (s.empty() ? "" : " + ") + std::string(modality_names[static_cast<std::size_t>(i)]);
  return s;
}

int usage(int code) {
  (code ? std::cerr : std::cout)
      << "usage: flagship [--quick] [--steps N] [--epochs N] [--no-baseline] [--reuse] [--lr X] [--text-lr X]\n"
         "                [--out DIR] [--seed S] [--help]\n"
         "  1. pre-trains a small BERT (hidden 128, 2 layers, bert-base-uncased vocabulary) with masked-LM on\n"
         "     WordNet glosses + fortunes + the emoji names of the training split;\n"
         "  2. trains text (that BERT) + image (CNN) + speech (log-mel CNN) -> gated fusion with modality\n"
         "     dropout -> category (8 classes) + keywords (32 labels), uncertainty-weighted, on the emoji set;\n"
         "     the same model with a BERT that is not pre-trained as a baseline;\n"
         "  3. evaluates both on the held-out test split with every subset of modalities.\n"
         "  --quick        a smoke test (< 1 minute): 5% of the corpus, 40 updates, 2 epochs, no baseline\n"
         "  --steps N      pre-training updates (default 1000)\n"
         "  --epochs N     multimodal training epochs (default 15)\n"
         "  --no-baseline  skip the model whose text encoder is not pre-trained\n"
         "  --reuse        skip pre-training: load the encoder an earlier run saved in DIR/mlm\n"
         "  --lr X         multimodal training learning rate (default 1e-3; warmup 10%, linear decay)\n"
         "  --text-lr X    ... of the text encoder's parameters (default 1e-3)\n"
         "  --out DIR      where the pre-trained encoder is saved (default runs/flagship)\n"
         "  --seed S       seed of the batches, masks, dropout and corpus sample (default 1)\n"
         "Data: scripts/fetch_data.sh (emoji set with espeak-ng speech, bert-base-uncased vocabulary, WordNet,\n"
         "fortunes) into the directory fixed at build time (CMake's HYBRID_EXAMPLE_DATA_DIR, default data/).\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even into a file or a pipe, so that a log shows each phase as it starts.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  settings s;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* a = argv[i];
    const char* v = nullptr;
    if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) return usage(0);
    if (!std::strcmp(a, "--quick")) {
      s.quick = true;
      s.baseline = false;
      s.corpus_fraction = 0.05;
      s.pretrain_steps = 40;
      s.epochs = 2;
    } else if (!std::strcmp(a, "--steps") && (v = next())) s.pretrain_steps = std::atoll(v);
    else if (!std::strcmp(a, "--epochs") && (v = next())) s.epochs = std::atoi(v);
    else if (!std::strcmp(a, "--no-baseline")) s.baseline = false;
    else if (!std::strcmp(a, "--reuse")) s.reuse = true;
    else if (!std::strcmp(a, "--lr") && (v = next())) s.lr = std::atof(v);
    else if (!std::strcmp(a, "--text-lr") && (v = next())) s.text_lr = std::atof(v);
    else if (!std::strcmp(a, "--out") && (v = next())) s.out = v;
    else if (!std::strcmp(a, "--seed") && (v = next())) s.seed = std::strtoull(v, nullptr, 10);
    else return usage(2);
  }
  if (s.pretrain_steps <= 0 || s.epochs <= 0) return usage(2);
  try {
    phase_clock timer;
    std::printf("hybrid flagship demo%s\n[0] data\n", s.quick ? " (--quick)" : "");
    const auto tok = io::wordpiece_tokenizer::from_file(wordnet_text::vocab_file());
    const emoji_inputs e = prepare_emoji(tok);
    timer.end("0 data (emoji, speech features)");
    std::printf("  emoji: %zu train / %zu test items, %zu categories, %lld keywords, %lld voices; speech features "
                "[%lld mels x %lld frames]\n",
                e.d.train.size(), e.d.test.size(), e.d.categories.size(), static_cast<long long>(keywords),
                static_cast<long long>(e.voices), static_cast<long long>(e.audio.dim(1)),
                static_cast<long long>(e.audio.dim(2)));

    std::printf("[1] masked-LM pre-training of the text encoder (BERT hidden %lld, %lld layers, vocabulary %lld)\n",
                static_cast<long long>(text_cfg.hidden), static_cast<long long>(text_cfg.layers),
                static_cast<long long>(text_cfg.vocab));
    const auto mlm_dir = s.out / "mlm";
    pretrain_result pre;
    if (s.reuse) {
      std::printf("  --reuse: the encoder pre-trained by an earlier run, %s\n", mlm_dir.string().c_str());
    } else {
      timer.begin();
      pre = pretrain(s, tok, e, mlm_dir);
      timer.end("1 pre-training (incl. corpus)");
    }

    std::printf("[2] multimodal multi-task training: text + image + audio -> gated fusion (modality dropout 0.3) "
                "-> category + keywords, uncertainty weighting; %d epochs of %lld\n",
                s.epochs, static_cast<long long>(s.batch));
    net pretrained(s.seed);
    const auto report = io::load_hf_bert(pretrained.encoder<"text">(), mlm_dir);
    std::printf("  text encoder: %zu tensors loaded from %s\n", report.loaded.size(), mlm_dir.string().c_str());
    timer.begin();
    train_model(pretrained, s, e, "pre-trained");
    timer.end("2 training (pre-trained text)");
    const auto w = pretrained.weighting().weights();
    std::printf("  learned task weights exp(-s_k): category %.2f, keywords %.2f\n", w[0], w[1]);
    std::unique_ptr<net> scratch;
    if (s.baseline) {
      scratch = std::make_unique<net>(s.seed);
      timer.begin();
      train_model(*scratch, s, e, "scratch");
      timer.end("2 training (text from scratch)");
    }

    std::printf("[3] evaluation on the %zu test items, every subset of modalities\n", e.d.test.size());
    timer.begin();
    const auto a = evaluate(pretrained, e, "pre-trained");
    std::array<subset_score, 7> b{};
    if (scratch) b = evaluate(*scratch, e, "scratch");
    timer.end("3 evaluation");

    std::printf("\n%-22s | %-29s |%s\n", "modalities at test", "pre-trained text encoder",
                scratch ? " text encoder from scratch" : "");
    std::printf("%-22s | %12s %16s |%s\n", "", "category acc", "keyword micro-F1",
                scratch ? " category acc keyword micro-F1" : "");
    // Rows in a reading order: all three, the pairs, then each alone.
    for (int mask : {7, 3, 5, 6, 1, 2, 4}) {
      const auto& x = a[static_cast<std::size_t>(mask - 1)];
      std::printf("%-22s | %11.1f%% %16.3f |", subset_name(mask).c_str(), 100 * x.accuracy, x.micro_f1);
      if (scratch) {
        const auto& y = b[static_cast<std::size_t>(mask - 1)];
        std::printf(" %11.1f%% %16.3f", 100 * y.accuracy, y.micro_f1);
      }
      std::printf("\n");
    }
    const auto counts = e.d.category_counts(e.d.test);
    const double majority = double(*std::max_element(counts.begin(), counts.end())) / double(e.d.test.size());
    std::printf("majority class: %.1f%% of the test items; keywords: predicted where the logit is > 0\n",
                100 * majority);
    if (!s.reuse)
      std::printf("pre-trained encoder: %lld updates over %lld sequences / %lld tokens, held-out masked-LM "
                  "accuracy %.1f%%\n",
                  static_cast<long long>(s.pretrain_steps), static_cast<long long>(pre.sequences),
                  static_cast<long long>(pre.tokens), 100 * pre.held_out.accuracy);
    timer.print();
  } catch (const std::exception& ex) {
    std::cerr << "flagship: " << ex.what() << "\n(run scripts/setup.sh and scripts/fetch_data.sh first)\n";
    return 1;
  }
}
