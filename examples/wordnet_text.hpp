// What pretrain_mlm and finetune_wordnet share: the data paths, the held-out WordNet test split (never seen
// in pre-training) and the small BERT both use.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <hybrid/data/text_corpus.hpp>
#include <hybrid/enc/bert.hpp>

namespace wordnet_text {

inline std::filesystem::path data_dir() { return HYBRID_DATA_DIR; }
inline std::filesystem::path vocab_file() { return data_dir() / "bert-base-uncased" / "vocab.txt"; }

// The fine-tuning test set: per lexicographer class, min(100, 25%) of its glosses, fixed by this seed.
// Pre-training reads only the other glosses (and the fortunes), so test glosses are unseen text.
inline constexpr std::uint64_t split_seed = 20240;
inline constexpr hybrid::index_t test_per_class = 100;
inline constexpr double test_fraction = 0.25;

struct wordnet_data {
  hybrid::data::text_corpus glosses;  // all 117,659, labels = the 45 lexnames
  hybrid::data::index_split split;    // train: usable for pre-training and few-shot draws; test: held out
};
inline wordnet_data load_wordnet() {
  wordnet_data d{hybrid::data::load_wordnet_glosses(data_dir() / "text" / "wordnet"), {}};
  d.split = hybrid::data::stratified_split(d.glosses.labels, test_fraction, test_per_class, split_seed);
  return d;
}

// The encoder pre-trained by pretrain_mlm (a BERT-mini-like shape with the real 30,522-token vocabulary).
inline hybrid::enc::bert_config small_bert() {
  return {.vocab = 30522, .hidden = 128, .layers = 2, .heads = 2, .ffn = 512, .max_positions = 64,
          .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1, .attention_dropout = 0.1, .pooler = false};
}

inline std::string clock_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace wordnet_text
