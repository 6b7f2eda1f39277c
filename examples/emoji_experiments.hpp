// The emoji experiments' shared part (examples/emoji_*.cpp, one driver emoji_experiments): the three-modality
// model family, the data with tokenized names and precomputed speech features, training, evaluation, tables.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <hybrid/data/emoji.hpp>
#include <hybrid/enc/audio.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/enc/conv_image.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/head/multilabel.hpp>
#include <hybrid/io/wordpiece.hpp>
#include <hybrid/model.hpp>
#include <hybrid/optim/adam.hpp>

namespace emoji_exp {
using namespace hybrid;

// Every encoder gives a 64-wide pooled vector, so that every fusion operator (sum/mean, FiLM and
// cross-attention need equal widths) takes the same three encoders.
inline constexpr index_t width = 64;
// The text encoder: a small BERT trained from scratch on the names (as examples/emoji_text_image.cpp). To
// try a pre-trained one, change this alias and load its weights into m.encoder<"text">() in train_seeds.
constexpr enc::bert_config text_cfg{.vocab = 30522, .hidden = width, .layers = 2, .heads = 2, .ffn = 128,
                                    .max_positions = 32, .dropout = 0.1, .attention_dropout = 0.1};
using text_encoder = enc::bert<text_cfg>;
constexpr enc::conv_image_config image_cfg{.size = 32, .channels = 3, .width = width, .base = 16, .blocks = 2};
using image_encoder = enc::conv_image<image_cfg>;
// 40 mel bins (the emoji names are short words; 64 bins buy nothing here and cost the first conv's time).
constexpr enc::audio_config audio_cfg{.mels = 40, .channels = 64, .layers = 3, .width = width};
using audio_encoder = enc::audio<audio_cfg>;

inline constexpr index_t categories = 8;
inline constexpr int keyword_count = 32;  // emoji_options::top_keywords
using category_head = head::classify<"category", categories>;
using keyword_head = head::multilabel<"keywords", keyword_count>;

template <class Fusion, class Heads = heads<category_head>, class... Options>
using emoji_net = model<encoders<modality<"text", text_encoder>, modality<"image", image_encoder>,
                                 modality<"audio", audio_encoder>>,
                        Fusion, Heads, Options...>;

// A subset of modalities: bit m is modality m of emoji_net (text, image, audio).
enum : unsigned { text_bit = 1, image_bit = 2, audio_bit = 4, all_modalities = 7 };
inline std::string subset_name(unsigned mods) {
  std::string s;
  const char* names[] = {"text", "image", "audio"};
  for (unsigned m = 0; m < 3; ++m)
    if (mods & (1u << m)) s += (s.empty() ? "" : "+") + std::string(names[m]);
  return s.empty() ? "none" : s;
}

// The data set plus what every batch needs, computed once: token ids of the names and each clip's
// normalised log-mels (per-utterance statistics of the unpadded clip; a batch pads with zeros, the mean).
struct emoji_data {
  data::emoji_dataset set;
  std::vector<std::vector<std::int32_t>> tokens;  // per item, [CLS] name [SEP]
  std::vector<std::vector<float>> speech;         // per item and voice (item * voices + v): [mels, frames]
  std::size_t voices = 0;
  double load_seconds = 0;
};

inline emoji_data load_data() {
  const auto t0 = std::chrono::steady_clock::now();
  emoji_data d;
  d.set = data::load_emoji(data::emoji_options{.top_keywords = keyword_count, .load_audio = true,
                                               .sample_rate = audio_cfg.sample_rate});
  const auto tok = io::wordpiece_tokenizer::from_file(data::default_data_dir() / "bert-base-uncased" / "vocab.txt");
  std::vector<std::string> names;
  for (const auto& it : d.set.items) names.push_back(it.name);
  for (auto& e : tok.encode_batch(names, {.max_length = text_cfg.max_positions,
                                          .truncation = io::truncation_strategy::longest_first}))
    d.tokens.push_back(std::move(e.input_ids));
  d.voices = d.set.items.front().audio.size();
  const enc::audio_frontend frontend(audio_cfg);
  d.speech.resize(d.set.items.size() * d.voices);
  exec::default_policy::for_each(static_cast<index_t>(d.speech.size()), [&](index_t c) {
    const auto& wave = d.set.items[static_cast<std::size_t>(c) / d.voices].audio.at(static_cast<std::size_t>(c) % d.voices);
    std::vector<float> padded(wave);  // a clip shorter than one analysis window gets zeros to fill it
    padded.resize(std::max<std::size_t>(padded.size(), static_cast<std::size_t>(frontend.min_samples())));
    std::vector<float>& f = d.speech[static_cast<std::size_t>(c)];
    f.resize(static_cast<std::size_t>(frontend.mels() * frontend.frames(static_cast<index_t>(padded.size()))));
    frontend.compute(padded, f.data());
  });
  for (auto& it : d.set.items) it.audio = {};  // the waveforms are not needed any more
  d.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

// Items `ids` with the modalities of `mods` (voice[k] for item k's speech) and the labels asked for.
inline batch make_batch(const emoji_data& d, std::span<const index_t> ids, std::span<const std::size_t> voice,
                        unsigned mods, bool category, bool keywords) {
  batch b;
  b.size = static_cast<index_t>(ids.size());
  const auto item = [&](std::size_t k) { return static_cast<std::size_t>(ids[k]); };
  if (mods & text_bit) {
    std::size_t L = 0;
    for (std::size_t k = 0; k < ids.size(); ++k) L = std::max(L, d.tokens[item(k)].size());
    enc::text_input t{tensor<std::int32_t>::zeros({b.size, static_cast<index_t>(L)}), {},
                      tensor<float>::zeros({b.size, static_cast<index_t>(L)})};
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const auto& tk = d.tokens[item(k)];
      for (std::size_t c = 0; c < tk.size(); ++c) {
        t.ids(static_cast<index_t>(k), static_cast<index_t>(c)) = tk[c];
        t.attention_mask(static_cast<index_t>(k), static_cast<index_t>(c)) = 1;
      }
    }
    b.inputs["text"] = {t, {}};
  }
  if (mods & image_bit) b.inputs["image"] = {enc::dense_input{d.set.batch_images(ids)}, {}};
  if (mods & audio_bit) {
    const index_t mels = audio_cfg.mels;
    index_t frames = 0;
    const auto clip = [&](std::size_t k) -> const std::vector<float>& { return d.speech[item(k) * d.voices + voice[k]]; };
    for (std::size_t k = 0; k < ids.size(); ++k) frames = std::max(frames, static_cast<index_t>(clip(k).size()) / mels);
    tensor<float> f = tensor<float>::zeros({b.size, mels, frames});
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const auto& c = clip(k);
      const index_t n = static_cast<index_t>(c.size()) / mels;
      for (index_t m = 0; m < mels; ++m)
        std::copy_n(c.data() + m * n, n, f.data() + (static_cast<index_t>(k) * mels + m) * frames);
    }
    b.inputs["audio"] = {enc::dense_input{std::move(f)}, {}};
  }
  if (category) b.labels["category"] = {d.set.batch_labels(ids), {}, {}};
  if (keywords) b.labels["keywords"] = {{}, d.set.batch_keyword_targets(ids), {}};
  return b;
}

struct run_options {
  int epochs = 8;
  std::uint64_t seed = 1;
  double lr = 1e-3;
  std::size_t batch_size = 32;
  unsigned modalities = all_modalities;  // given to the model in training
  bool category = true, keywords = false;  // labels in the training batches (a missing task adds no loss)
};

// The default backward pass: the model's weighted loss. Gradient surgery replaces it (see emoji_mtl.cpp).
struct plain_backward {
  template <class Net, class Out>
  void operator()(Net& m, const Out& out, const batch& b) const {
    m.loss(out, b).backward();
  }
};

// AdamW on shuffled mini-batches; each training sample's speech is one of its voices, drawn per epoch.
// The seed drives the order, the voices and the model's dropout stream (incl. modality dropout); the
// initial weights are the library's fixed per-component ones. Returns the training time in seconds.
template <class Net, class Backward>
double train(Net& m, const emoji_data& d, const run_options& o, Backward&& backward) {
  const auto t0 = std::chrono::steady_clock::now();
  m.rng() = dropout_rng{o.seed, 0};
  optim::adamw<float> opt(parameters_of(m), {.lr = o.lr, .weight_decay = 0.01});
  std::vector<index_t> order = d.set.train;
  std::vector<std::size_t> voice(o.batch_size);
  std::mt19937_64 rng(o.seed);
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    // Fisher-Yates on mt19937_64's raw output: the same order with every standard library.
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
    for (std::size_t s = 0; s + o.batch_size <= order.size(); s += o.batch_size) {
      for (auto& v : voice) v = rng() % d.voices;
      const batch b = make_batch(d, std::span<const index_t>(order.data() + s, o.batch_size), voice, o.modalities,
                                 o.category, o.keywords);
      opt.zero_grad();
      const auto out = m(b, true);
      backward(m, out, b);
      opt.step();
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Test-set scores: category accuracy, and the keyword head's micro-F1 (every (item, keyword) pair, logit > 0
// i.e. probability > 0.5) when the model has one. Test speech is voice 0.
struct scores {
  double accuracy = 0, keyword_f1 = 0;
};
template <class Net>
scores evaluate(Net& m, const emoji_data& d, unsigned mods) {
  constexpr bool has_keywords = std::ranges::find(Net::head_names, "keywords") != Net::head_names.end();
  no_grad ng;
  const auto& test = d.set.test;
  const std::vector<std::size_t> voice(64, 0);
  index_t right = 0;
  double tp = 0, fp = 0, fn = 0;
  for (std::size_t s = 0; s < test.size(); s += 64) {
    tape_scope scope;
    const std::span<const index_t> ids(test.data() + s, std::min<std::size_t>(64, test.size() - s));
    const batch b = make_batch(d, ids, std::span(voice).first(ids.size()), mods, false, false);
    const auto out = m(b);
    const var<float>& logits = out["category"];
    for (index_t r = 0; r < b.size; ++r) {
      const float* row = logits.data() + r * categories;
      right += std::max_element(row, row + categories) - row == d.set.labels[static_cast<std::size_t>(ids[r])];
    }
    if constexpr (has_keywords) {
      const var<float>& kw = out["keywords"];
      for (index_t r = 0; r < b.size; ++r)
        for (index_t k = 0; k < keyword_count; ++k) {
          const bool predicted = kw.data()[r * keyword_count + k] > 0;
          const bool truth = d.set.keyword_targets(ids[static_cast<std::size_t>(r)], k) > 0.5f;
          tp += predicted && truth;
          fp += predicted && !truth;
          fn += !predicted && truth;
        }
    }
  }
  return {static_cast<double>(right) / static_cast<double>(test.size()), tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0};
}

// A one-column score: category accuracy given the modalities of `mods`.
inline auto accuracy_with(const emoji_data& d, unsigned mods) {
  return [&d, mods](auto& m) { return std::vector<double>{evaluate(m, d, mods).accuracy}; };
}

// A results table: one row per configuration, one column per metric; each cell's runs are the seeds.
struct table {
  std::string title;
  std::vector<std::string> columns;
  struct row {
    std::string label;
    std::vector<std::vector<double>> runs;  // [seed][column]
    index_t parameters = 0, fusion_parameters = 0;  // trainable: the whole model, its fusion operator
    std::vector<double> seconds;            // training time per seed
  };
  std::vector<row> rows;
};

// "mean ± sd" (sample sd over the seeds; the mean alone for one seed), in percent; NaN (not applicable): a dash.
inline std::string cell(const table::row& r, std::size_t c) {
  double mean = 0, var = 0;
  const double n = static_cast<double>(r.runs.size());
  for (const auto& run : r.runs) mean += run[c] / n;
  for (const auto& run : r.runs) var += (run[c] - mean) * (run[c] - mean) / std::max(n - 1, 1.0);
  char buf[64];
  if (std::isnan(mean)) return "—";
  if (r.runs.size() > 1) std::snprintf(buf, sizeof buf, "%.1f ± %.1f", 100 * mean, 100 * std::sqrt(var));
  else std::snprintf(buf, sizeof buf, "%.1f", 100 * mean);
  return buf;
}

inline void print_markdown(const table& t) {
  std::printf("\n### %s\n\n| |", t.title.c_str());
  for (const auto& c : t.columns) std::printf(" %s |", c.c_str());
  std::printf(" parameters (fusion) | train s/run |\n|---|");
  for (std::size_t c = 0; c < t.columns.size(); ++c) std::printf("---:|");
  std::printf("---:|---:|\n");
  for (const auto& r : t.rows) {
    std::printf("| %s |", r.label.c_str());
    for (std::size_t c = 0; c < t.columns.size(); ++c) std::printf(" %s |", cell(r, c).c_str());
    double s = 0;
    for (double x : r.seconds) s += x / static_cast<double>(r.seconds.size());
    std::printf(" %lld (%lld) | %.0f |\n", static_cast<long long>(r.parameters),
                static_cast<long long>(r.fusion_parameters), s);
  }
  std::fflush(stdout);
}

// What the command line chose.
struct settings {
  int epochs = 8;
  std::vector<std::uint64_t> seeds{1};
  std::string only;  // run only the rows whose label contains this
};

// Trains a fresh Net once per seed and appends a row of `score(net)` (one value per column) to `t`;
// `backward_for(seed)` gives the backward pass of that seed's run. Progress goes to stderr, so stdout
// is the tables alone.
template <class Net, class Score, class BackwardFor>
void add_row(table& t, std::string label, const emoji_data& d, const settings& s, run_options o, Score&& score,
             BackwardFor&& backward_for) {
  if (!s.only.empty() && label.find(s.only) == std::string::npos) return;
  table::row r{std::move(label), {}, 0, 0, {}};
  for (std::uint64_t seed : s.seeds) {
    auto m = std::make_unique<Net>();
    r.parameters = count_parameters(*m, true);
    r.fusion_parameters = count_parameters(m->fusion(), true);
    o.seed = seed;
    o.epochs = s.epochs;
    r.seconds.push_back(train(*m, d, o, backward_for(seed)));
    r.runs.push_back(score(*m));
    std::fprintf(stderr, "  %-36s seed %llu %6.1f s ", r.label.c_str(), static_cast<unsigned long long>(seed),
                 r.seconds.back());
    for (std::size_t c = 0; c < r.runs.back().size(); ++c)
      std::fprintf(stderr, "  %s %.3f", t.columns[c].c_str(), r.runs.back()[c]);
    std::fprintf(stderr, "\n");
  }
  t.rows.push_back(std::move(r));
}
template <class Net, class Score>
void add_row(table& t, std::string label, const emoji_data& d, const settings& s, const run_options& o, Score&& score) {
  add_row<Net>(t, std::move(label), d, s, o, std::forward<Score>(score), [](std::uint64_t) { return plain_backward{}; });
}

// The experiment groups, one translation unit each (every model type costs compile time).
table modality_group(const emoji_data&, const settings&);
table fusion_group(const emoji_data&, const settings&);
void add_interaction_fusion_rows(table&, const emoji_data&, const settings&);  // the fusion group's second half
table missing_group(const emoji_data&, const settings&);
table mtl_group(const emoji_data&, const settings&);

}  // namespace emoji_exp
