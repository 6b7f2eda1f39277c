// Labelled English text from scripts/data/text.sh: WordNet 3.0 glosses (label: the lexicographer file,
// lexnames(5)) and fortune cookies (label: the fortune file); deterministic, seeded splits and few-shot draws.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/core/shape.hpp"
#include "hybrid/data/data_dir.hpp"

namespace hybrid::data {

// lexnames(5): file number -> lexicographer file. 0-2 adjectives/adverbs, 3-28 nouns, 29-43 verbs, 44 adj.ppl.
inline constexpr std::array<std::string_view, 45> wordnet_lexnames = {
    "adj.all",          "adj.pert",        "adv.all",          "noun.Tops",        "noun.act",
    "noun.animal",      "noun.artifact",   "noun.attribute",   "noun.body",        "noun.cognition",
    "noun.communication", "noun.event",    "noun.feeling",     "noun.food",        "noun.group",
    "noun.location",    "noun.motive",     "noun.object",      "noun.person",      "noun.phenomenon",
    "noun.plant",       "noun.possession", "noun.process",     "noun.quantity",    "noun.relation",
    "noun.shape",       "noun.state",      "noun.substance",   "noun.time",        "verb.body",
    "verb.change",      "verb.cognition",  "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact",     "verb.creation",   "verb.emotion",     "verb.motion",      "verb.perception",
    "verb.possession",  "verb.social",     "verb.stative",     "verb.weather",     "adj.ppl"};
inline constexpr std::int32_t wordnet_first_noun_class = 3, wordnet_noun_classes = 26;

// Texts with one class each; labels index label_names.
struct text_corpus {
  std::vector<std::string> texts;
  std::vector<std::int32_t> labels;
  std::vector<std::string> label_names;

  index_t size() const { return static_cast<index_t>(texts.size()); }
  index_t classes() const { return static_cast<index_t>(label_names.size()); }
  std::vector<index_t> class_counts() const {
    std::vector<index_t> n(label_names.size(), 0);
    for (std::int32_t y : labels) ++n[static_cast<std::size_t>(y)];
    return n;
  }
  // The items at `rows`, in that order (label names kept).
  text_corpus subset(std::span<const index_t> rows) const;
  // Only the items of `classes`, relabelled 0..k-1 in the order given (e.g. the 26 noun classes).
  text_corpus select_classes(std::span<const std::int32_t> classes) const;
  void append(const text_corpus& other) {  // label spaces must agree
    if (other.label_names != label_names) throw std::invalid_argument("text_corpus::append: different label names");
    texts.insert(texts.end(), other.texts.begin(), other.texts.end());
    labels.insert(labels.end(), other.labels.begin(), other.labels.end());
  }
};

// ---- WordNet ----------------------------------------------------------------------------------------

// One synset line of data.{noun,verb,adj,adv}: "offset lex_filenum ss_type w_cnt word lex_id ... | gloss  ".
struct wordnet_synset {
  std::string_view offset;
  std::int32_t lexname = 0;  // the lexicographer file number, 0..44
  char pos = 0;              // n, v, a, s (adjective satellite), r
  std::string_view gloss;    // after " | ", trailing spaces trimmed
};

// Parses a synset line; the licence header (lines starting with two spaces) and empty lines give nullopt.
// A malformed synset line throws std::runtime_error.
HYBRID_DECL std::optional<wordnet_synset> parse_wordnet_line(std::string_view line);

struct wordnet_options {
  bool noun = true, verb = true, adj = true, adv = true;  // which data.* files to read
};

// All glosses of the chosen files, in file order (noun, verb, adj, adv) then line order; label = the
// lexicographer file number (label_names = the 45 lexnames whatever files are read). 117,659 in all.
HYBRID_DECL text_corpus load_wordnet_glosses(const std::filesystem::path& dir = default_data_dir() / "text" / "wordnet",
                                             const wordnet_options& o = {});

// ---- fortunes ---------------------------------------------------------------------------------------

// The items of a fortune file: text between lines holding only "%", each without its final newline;
// items that are empty or only whitespace are dropped.
HYBRID_DECL std::vector<std::string> parse_fortunes(std::string_view text);

// Every fortune file in `dir` (sorted by name; .dat indexes and .u8 links skipped); label = the file.
HYBRID_DECL text_corpus load_fortunes(const std::filesystem::path& dir = default_data_dir() / "text" / "fortunes");

// ---- deterministic splits -----------------------------------------------------------------------------

// A permutation of [0, n) that depends only on the seed: Fisher-Yates driven by mt19937_64's raw outputs
// (fully specified by the standard; std::shuffle and the std distributions are not, across libraries).
HYBRID_DECL std::vector<index_t> shuffled_indices(index_t n, std::uint64_t seed);

struct index_split {
  std::vector<index_t> train, test;  // each in increasing order
};

// Per class, a seeded shuffle of its items puts min(floor(test_fraction * n_c), max_test_per_class) of them
// in test (max_test_per_class <= 0: no cap) and the rest in train. Unlabelled data: pass all-zero labels.
HYBRID_DECL index_split stratified_split(std::span<const std::int32_t> labels, double test_fraction,
                                         index_t max_test_per_class, std::uint64_t seed);

// Up to `per_class` items of each class drawn from `pool` (indices into labels) in a seeded order: the
// few-shot training set. Returned shuffled (classes interleaved), so it can be batched as is.
HYBRID_DECL std::vector<index_t> sample_per_class(std::span<const std::int32_t> labels, std::span<const index_t> pool,
                                                  index_t per_class, std::uint64_t seed);

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL text_corpus text_corpus::subset(std::span<const index_t> rows) const {
  text_corpus s{{}, {}, label_names};
  s.texts.reserve(rows.size());
  s.labels.reserve(rows.size());
  for (index_t r : rows) {
    s.texts.push_back(texts.at(static_cast<std::size_t>(r)));
    s.labels.push_back(labels.at(static_cast<std::size_t>(r)));
  }
  return s;
}

HYBRID_DECL text_corpus text_corpus::select_classes(std::span<const std::int32_t> classes) const {
  std::vector<std::int32_t> map(label_names.size(), -1);
  text_corpus s;
  for (std::int32_t c : classes) {
    if (c < 0 || c >= this->classes() || map[static_cast<std::size_t>(c)] >= 0)
      throw std::invalid_argument("text_corpus::select_classes: class " + std::to_string(c) +
                                  " is out of range or repeated");
    map[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(s.label_names.size());
    s.label_names.push_back(label_names[static_cast<std::size_t>(c)]);
  }
  for (std::size_t i = 0; i < texts.size(); ++i)
    if (const std::int32_t y = map[static_cast<std::size_t>(labels[i])]; y >= 0) {
      s.texts.push_back(texts[i]);
      s.labels.push_back(y);
    }
  return s;
}

HYBRID_DECL std::optional<wordnet_synset> parse_wordnet_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line.starts_with("  ")) return std::nullopt;
  auto bad = [&](const char* why) {
    return std::runtime_error("WordNet synset line " + std::string(why) + ": '" + std::string(line.substr(0, 60)) + "'");
  };
  wordnet_synset s;
  const std::size_t a = line.find(' '), b = a == line.npos ? a : line.find(' ', a + 1),
                    c = b == line.npos ? b : line.find(' ', b + 1);
  if (c == line.npos) throw bad("has too few fields");
  s.offset = line.substr(0, a);
  const std::string_view lex = line.substr(a + 1, b - a - 1), type = line.substr(b + 1, c - b - 1);
  if (lex.size() != 2 || lex[0] < '0' || lex[0] > '9' || lex[1] < '0' || lex[1] > '9') throw bad("has a bad lex_filenum");
  s.lexname = (lex[0] - '0') * 10 + (lex[1] - '0');
  if (s.lexname >= static_cast<std::int32_t>(wordnet_lexnames.size())) throw bad("has a lex_filenum above 44");
  if (type.size() != 1 || std::string_view("nvasr").find(type[0]) == std::string_view::npos) throw bad("has a bad ss_type");
  s.pos = type[0];
  const std::size_t bar = line.find(" | ");
  if (bar == line.npos) throw bad("has no gloss (\" | \")");
  s.gloss = line.substr(bar + 3);
  while (!s.gloss.empty() && (s.gloss.back() == ' ' || s.gloss.back() == '\n')) s.gloss.remove_suffix(1);
  return s;
}

HYBRID_DECL text_corpus load_wordnet_glosses(const std::filesystem::path& dir, const wordnet_options& o) {
  text_corpus c;
  c.label_names.assign(wordnet_lexnames.begin(), wordnet_lexnames.end());
  const std::pair<bool, const char*> files[] = {{o.noun, "data.noun"}, {o.verb, "data.verb"}, {o.adj, "data.adj"},
                                                {o.adv, "data.adv"}};
  for (const auto& [on, name] : files) {
    if (!on) continue;
    const std::filesystem::path p = dir / name;
    std::ifstream in(p, std::ios::binary);
    if (!in) throw data_missing(p, "the text corpus");
    index_t line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      std::optional<wordnet_synset> s;
      try {
        s = parse_wordnet_line(line);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(p.string() + ":" + std::to_string(line_no) + ": " + e.what());
      }
      if (!s) continue;
      c.texts.emplace_back(s->gloss);
      c.labels.push_back(s->lexname);
    }
  }
  return c;
}

HYBRID_DECL std::vector<std::string> parse_fortunes(std::string_view text) {
  std::vector<std::string> items;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && (cur.back() == '\n' || cur.back() == '\r')) cur.pop_back();
    if (cur.find_first_not_of(" \t\r\n") != std::string::npos) items.push_back(cur);
    cur.clear();
  };
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == text.npos ? std::string_view{} : text.substr(nl + 1);
    if (line == "%" || line == "%\r") flush();
    else cur.append(line).push_back('\n');
  }
  flush();
  return items;
}

HYBRID_DECL text_corpus load_fortunes(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) throw data_missing(dir, "the text corpus");
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && ext != ".dat" && ext != ".u8" && ext != ".tmp") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  text_corpus c;
  for (const auto& p : files) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("load_fortunes: cannot read " + p.string());
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const auto label = static_cast<std::int32_t>(c.label_names.size());
    c.label_names.push_back(p.filename().string());
    for (std::string& item : parse_fortunes(text)) {
      c.texts.push_back(std::move(item));
      c.labels.push_back(label);
    }
  }
  if (c.texts.empty()) throw data_missing(dir / "*", "the text corpus (no fortunes)");
  return c;
}

HYBRID_DECL std::vector<index_t> shuffled_indices(index_t n, std::uint64_t seed) {
  std::vector<index_t> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (index_t i = n - 1; i > 0; --i)
    std::swap(v[static_cast<std::size_t>(i)], v[static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(i + 1))]);
  return v;
}

HYBRID_DECL index_split stratified_split(std::span<const std::int32_t> labels, double test_fraction,
                                         index_t max_test_per_class, std::uint64_t seed) {
  if (!(test_fraction >= 0 && test_fraction <= 1))
    throw std::invalid_argument("stratified_split: test_fraction must be in [0, 1]");
  std::int32_t classes = 0;
  for (std::int32_t y : labels) {
    if (y < 0) throw std::invalid_argument("stratified_split: negative label");
    classes = std::max(classes, y + 1);
  }
  std::vector<std::vector<index_t>> by_class(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < labels.size(); ++i) by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<index_t>(i));
  index_split s;
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    const auto& items = by_class[c];
    const auto n = static_cast<index_t>(items.size());
    index_t k = static_cast<index_t>(test_fraction * static_cast<double>(n));
    if (max_test_per_class > 0) k = std::min(k, max_test_per_class);
    const std::vector<index_t> order = shuffled_indices(n, seed ^ (0x9E3779B97F4A7C15ull * (c + 1)));
    for (index_t j = 0; j < n; ++j)
      (j < k ? s.test : s.train).push_back(items[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])]);
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

HYBRID_DECL std::vector<index_t> sample_per_class(std::span<const std::int32_t> labels, std::span<const index_t> pool,
                                                  index_t per_class, std::uint64_t seed) {
  std::int32_t classes = 0;
  for (std::int32_t y : labels) classes = std::max(classes, y + 1);
  std::vector<index_t> taken(static_cast<std::size_t>(classes), 0), out;
  const std::vector<index_t> order = shuffled_indices(static_cast<index_t>(pool.size()), seed);
  for (index_t o : order) {
    const index_t i = pool[static_cast<std::size_t>(o)];
    index_t& n = taken[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
    if (n < per_class) {
      ++n;
      out.push_back(i);
    }
  }
  return out;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::data
