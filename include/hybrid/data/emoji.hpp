// The gemojione emoji set as paired multimodal data: image (64x64 PNG, CC-BY-SA-4.0), text (name, keywords),
// speech (the name spoken by espeak-ng in 2 voice variants), built by scripts/data/emoji.sh into data/emoji/.
//
// Items: the 1,794 emoji minus the two tiny categories ("modifier": the 5 skin-tone swatches, "extras": 1 flag),
// i.e. 1,788 items in 8 categories (people 570, symbols 273, flags 257, objects 179, nature 161, activity 145,
// travel 118, food 85), in code-point order. Per item:
//   - category: index into emoji_categories (the order above, largest first);
//   - image: float [C, S, S] in [0, 1], C = 3 (alpha composited on white) or 4 (alpha_mode::channel adds alpha);
//   - keyword_target: [K] 0/1, the item's keywords among the K most frequent ones (counted over all 1,788 items,
//     ties broken alphabetically). Note the most frequent keywords include category-like ones ("symbol", "flag",
//     "country", "nature"): they make the multilabel task partly redundant with the category task, by design of
//     the source data;
//   - speech: the WAV paths (22,050 Hz files); waveforms at options.sample_rate when options.load_audio.
// Split: stratified by category; in each category round(n * test_fraction) items drawn by a seeded shuffle go
// to test (portable SplitMix64 Fisher-Yates, identical on every platform and standard library).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <numeric>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/core/tensor.hpp"
#include "hybrid/data/data_dir.hpp"
#include "hybrid/io/png.hpp"
#include "hybrid/io/wav.hpp"

namespace hybrid::data {

// The 8 categories kept, largest first; category indices refer to this order.
inline constexpr std::array<std::string_view, 8> emoji_categories = {"people", "symbols", "flags",  "objects",
                                                                     "nature", "activity", "travel", "food"};

struct emoji_options {
  index_t image_size = 32;                             // S: images are resized from 64x64 to S x S
  io::alpha_mode alpha = io::alpha_mode::white;        // white: 3 channels; channel: 4 (alpha last)
  io::resize_filter filter = io::resize_filter::box;   // box averages 2x2 blocks for 64 -> 32
  double test_fraction = 0.2;                          // per category
  std::uint64_t seed = 0;                              // of the split
  int top_keywords = 32;                               // K
  bool load_audio = false;                             // decode and resample every WAV (about 3,576 clips)
  int sample_rate = 16000;                             // of loaded waveforms
  bool trim_silence = true;                            // cut espeak-ng's leading and trailing silence
};

struct emoji_item {
  std::string unicode;                           // code points, e.g. "1F4AF" or "1F1EB-1F1F7"
  std::string name;                              // e.g. "hundred points symbol"
  std::int32_t category = 0;                     // index into emoji_categories
  std::vector<std::string> keywords;             // all of the item's keywords
  tensor<float> image;                           // [C, S, S], a view into emoji_dataset::images
  tensor<float> keyword_target;                  // [K], a view into emoji_dataset::keyword_targets
  std::filesystem::path png;                     // the 64x64 source image
  std::vector<std::filesystem::path> speech;     // one WAV per voice variant
  std::vector<std::string> voices;               // "voice speed pitch" of each WAV
  std::vector<std::vector<float>> audio;         // waveforms at sample_rate (only with load_audio)
};

struct emoji_dataset {
  std::vector<std::string> categories;           // = emoji_categories
  std::vector<std::string> keywords;             // the K target keywords, most frequent first
  std::vector<emoji_item> items;
  tensor<float> images;                          // [N, C, S, S]
  tensor<float> keyword_targets;                 // [N, K]
  std::vector<std::int32_t> labels;              // [N] category indices
  std::vector<index_t> train, test;              // item indices, ascending
  index_t dropped = 0;                           // manifest rows of the tiny categories left out
  int sample_rate = 0;                           // of emoji_item::audio

  index_t size() const { return static_cast<index_t>(items.size()); }

  // Rows `ids` of the images, keyword targets and labels, stacked in that order (a batch).
  tensor<float> batch_images(std::span<const index_t> ids) const { return gather(images, ids); }
  tensor<float> batch_keyword_targets(std::span<const index_t> ids) const { return gather(keyword_targets, ids); }
  std::vector<std::int32_t> batch_labels(std::span<const index_t> ids) const {
    std::vector<std::int32_t> out;
    out.reserve(ids.size());
    for (index_t i : ids) out.push_back(labels.at(static_cast<std::size_t>(i)));
    return out;
  }
  // Items per category among `ids`.
  std::vector<index_t> category_counts(std::span<const index_t> ids) const {
    std::vector<index_t> n(categories.size(), 0);
    for (index_t i : ids) ++n[static_cast<std::size_t>(labels.at(static_cast<std::size_t>(i)))];
    return n;
  }

 private:
  static tensor<float> gather(const tensor<float>& t, std::span<const index_t> ids);
};

namespace detail {

// io::resample's kernel (torchaudio's sinc_interp_hann, 6 zero crossings, rolloff 0.99) with its weights
// tabulated once per phase: 22,050 -> 16,000 Hz has 320 phases, and the table makes resampling every clip
// of the set ~50x faster than evaluating sin and cos per tap. Same output as io::resample within rounding.
HYBRID_DECL std::vector<float> resample_polyphase(std::span<const float> x, int from_rate, int to_rate);

}  // namespace detail

// One speech clip as mono floats at `sample_rate` (resampled from the file's 22,050 Hz), optionally trimmed of
// leading and trailing silence (|x| < 1e-3, keeping 10 ms of margin).
HYBRID_DECL std::vector<float> load_emoji_speech(const std::filesystem::path& wav, int sample_rate = 16000,
                                                 bool trim_silence = true);

namespace detail {

HYBRID_DECL std::vector<std::string> split_on(std::string_view s, char sep);

// SplitMix64: a portable, well-mixed generator for the split (std::shuffle's result is library-specific).
struct splitmix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by rejection (no modulo bias).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - ~std::uint64_t{0} % n;
    for (;;)
      if (const std::uint64_t r = next(); r < limit) return r % n;
  }
};

}  // namespace detail

// Loads data/emoji (see the top of this file). Images are decoded in parallel (oneTBB): about 0.1 s for all;
// load_audio adds the decoding and resampling of every clip (a few seconds).
HYBRID_DECL emoji_dataset load_emoji(const std::filesystem::path& data_dir = default_data_dir() / "emoji",
                                     const emoji_options& opt = {});
inline emoji_dataset load_emoji(const emoji_options& opt) { return load_emoji(default_data_dir() / "emoji", opt); }

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL tensor<float> emoji_dataset::gather(const tensor<float>& t, std::span<const index_t> ids) {
  const index_t row = t.numel() / std::max<index_t>(t.dim(0), 1);
  shape s = t.shape();
  s[0] = static_cast<index_t>(ids.size());
  tensor<float> out(s);
  for (std::size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] >= t.dim(0))
      throw std::out_of_range("emoji_dataset: item " + std::to_string(ids[k]) + " of " + std::to_string(t.dim(0)));
    std::copy_n(t.data() + ids[k] * row, row, out.data() + static_cast<index_t>(k) * row);
  }
  return out;
}

HYBRID_DECL std::vector<float> detail::resample_polyphase(std::span<const float> x, int from_rate, int to_rate) {
  if (from_rate <= 0 || to_rate <= 0 || from_rate == to_rate) return io::resample(x, from_rate, to_rate);
  const std::int64_t g = std::gcd(from_rate, to_rate), from = from_rate / g, to = to_rate / g;
  if (to > 4096) return io::resample(x, from_rate, to_rate);
  constexpr int zero_crossings = 6;
  constexpr double rolloff = 0.99;
  const double cutoff = rolloff * std::min(1.0, static_cast<double>(to) / static_cast<double>(from));
  const double width = zero_crossings / cutoff;
  // Phase p: output time = whole + p / to; taps k = whole + j for j in [j0[p], j0[p] + w[p].size()).
  std::vector<std::int64_t> j0(static_cast<std::size_t>(to));
  std::vector<std::vector<double>> w(static_cast<std::size_t>(to));
  for (std::int64_t p = 0; p < to; ++p) {
    const double frac = static_cast<double>(p) / static_cast<double>(to);
    const auto lo = static_cast<std::int64_t>(std::ceil(frac - width)), hi = static_cast<std::int64_t>(std::floor(frac + width));
    j0[static_cast<std::size_t>(p)] = lo;
    for (std::int64_t j = lo; j <= hi; ++j) {
      const double u = frac - static_cast<double>(j);
      const double a = std::numbers::pi * cutoff * u;
      const double sinc = u == 0 ? 1.0 : std::sin(a) / a;
      const double c = std::cos(std::numbers::pi * u / (2 * width));
      w[static_cast<std::size_t>(p)].push_back(cutoff * sinc * c * c);
    }
  }
  const auto n_in = static_cast<std::int64_t>(x.size());
  const std::int64_t n_out = (n_in * to + from - 1) / from;
  std::vector<float> y(static_cast<std::size_t>(n_out));
  for (std::int64_t n = 0; n < n_out; ++n) {
    const std::int64_t whole = n * from / to, p = n * from % to;
    const auto& wp = w[static_cast<std::size_t>(p)];
    const std::int64_t k0 = whole + j0[static_cast<std::size_t>(p)];
    const std::int64_t first = std::max<std::int64_t>(0, -k0);
    const std::int64_t last = std::min<std::int64_t>(static_cast<std::int64_t>(wp.size()), n_in - k0);
    double acc = 0;
    for (std::int64_t j = first; j < last; ++j)
      acc += x[static_cast<std::size_t>(k0 + j)] * wp[static_cast<std::size_t>(j)];
    y[static_cast<std::size_t>(n)] = static_cast<float>(acc);
  }
  return y;
}

HYBRID_DECL std::vector<float> load_emoji_speech(const std::filesystem::path& wav, int sample_rate, bool trim_silence) {
  io::wav_audio a = io::read_wav(wav);
  std::vector<float> x = detail::resample_polyphase(a.samples, a.sample_rate, sample_rate);
  if (trim_silence) {
    constexpr float threshold = 1e-3f;
    const auto loud = [](float v) { return std::abs(v) >= threshold; };
    const auto first = std::find_if(x.begin(), x.end(), loud);
    if (first == x.end()) return {};
    const auto last = std::find_if(x.rbegin(), x.rend(), loud).base();
    const auto margin = static_cast<std::ptrdiff_t>(sample_rate / 100);
    const auto b = std::max(x.begin(), first - std::min(margin, first - x.begin()));
    const auto e = last + std::min(margin, x.end() - last);
    x = std::vector<float>(b, e);
  }
  return x;
}

HYBRID_DECL std::vector<std::string> detail::split_on(std::string_view s, char sep) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  for (std::size_t start = 0;;) {
    const std::size_t end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

HYBRID_DECL emoji_dataset load_emoji(const std::filesystem::path& data_dir, const emoji_options& opt) {
  namespace fs = std::filesystem;
  if (opt.image_size < 1) throw std::invalid_argument("load_emoji: image_size must be positive");
  if (!(opt.test_fraction >= 0.0 && opt.test_fraction <= 1.0))
    throw std::invalid_argument("load_emoji: test_fraction must be in [0, 1]");
  if (opt.top_keywords < 0) throw std::invalid_argument("load_emoji: top_keywords must be >= 0");
  if (opt.load_audio && opt.sample_rate < 1) throw std::invalid_argument("load_emoji: sample_rate must be positive");
  const fs::path manifest = data_dir / "manifest.tsv";
  if (!fs::exists(manifest)) throw data_missing(manifest, "the emoji data set");
  std::ifstream in(manifest, std::ios::binary);
  if (!in) throw std::runtime_error(manifest.string() + ": cannot open");

  emoji_dataset ds;
  ds.categories.assign(emoji_categories.begin(), emoji_categories.end());
  std::string line;
  std::size_t line_no = 0;
  auto bad = [&](const std::string& why) {
    return std::runtime_error(manifest.string() + ":" + std::to_string(line_no) + ": " + why);
  };
  if (!std::getline(in, line)) throw std::runtime_error(manifest.string() + ": empty file");
  ++line_no;
  if (line != "unicode\tname\tcategory\tkeywords\tpng\twav\tvoices")
    throw bad("unexpected header (rerun scripts/fetch_data.sh): " + line);
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const auto f = detail::split_on(line, '\t');
    if (f.size() != 7) throw bad(std::to_string(f.size()) + " tab-separated fields, 7 expected");
    const auto cat = std::find(emoji_categories.begin(), emoji_categories.end(), f[2]);
    if (cat == emoji_categories.end()) {
      ++ds.dropped;
      continue;
    }
    emoji_item it;
    it.unicode = f[0];
    it.name = f[1];
    it.category = static_cast<std::int32_t>(cat - emoji_categories.begin());
    it.keywords = detail::split_on(f[3], '|');
    it.png = data_dir / f[4];
    for (const auto& w : detail::split_on(f[5], '|')) it.speech.push_back(data_dir / w);
    it.voices = detail::split_on(f[6], '|');
    if (it.unicode.empty() || it.name.empty()) throw bad("empty unicode or name");
    if (it.voices.size() != it.speech.size()) throw bad("as many voices as WAV files expected");
    ds.items.push_back(std::move(it));
  }
  if (ds.items.empty()) throw std::runtime_error(manifest.string() + ": no emoji of the 8 main categories");
  const auto N = static_cast<index_t>(ds.items.size());
  ds.labels.resize(ds.items.size());
  for (std::size_t i = 0; i < ds.items.size(); ++i) ds.labels[i] = ds.items[i].category;

  // Keyword vocabulary: the K most frequent (each keyword counted once per item), ties alphabetical.
  std::map<std::string, index_t> freq;
  for (const auto& it : ds.items) {
    std::vector<std::string> uniq = it.keywords;
    std::sort(uniq.begin(), uniq.end());
    uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
    for (const auto& k : uniq) ++freq[k];
  }
  std::vector<std::pair<std::string, index_t>> by_freq(freq.begin(), freq.end());
  std::stable_sort(by_freq.begin(), by_freq.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  const auto K = std::min<std::size_t>(static_cast<std::size_t>(opt.top_keywords), by_freq.size());
  for (std::size_t k = 0; k < K; ++k) ds.keywords.push_back(by_freq[k].first);
  ds.keyword_targets = tensor<float>::zeros(shape{N, static_cast<index_t>(K)});
  for (index_t i = 0; i < N; ++i)
    for (const auto& kw : ds.items[static_cast<std::size_t>(i)].keywords)
      if (const auto p = std::find(ds.keywords.begin(), ds.keywords.end(), kw); p != ds.keywords.end())
        ds.keyword_targets(i, static_cast<index_t>(p - ds.keywords.begin())) = 1.0f;

  // Images, in parallel; each item owns its slot, so the result does not depend on the schedule.
  const index_t S = opt.image_size, C = opt.alpha == io::alpha_mode::channel ? 4 : 3;
  ds.images = tensor<float>(shape{N, C, S, S});
  exec::default_policy::for_each(N, [&](index_t i) {
    const auto& it = ds.items[static_cast<std::size_t>(i)];
    const io::image8 img = io::read_png(it.png, io::pixel_format::rgba);
    const tensor<float> t = io::resize_image(io::to_chw(img, opt.alpha), S, S, opt.filter);
    std::copy(t.begin(), t.end(), ds.images.data() + i * C * S * S);
  });
  for (index_t i = 0; i < N; ++i) {
    auto& it = ds.items[static_cast<std::size_t>(i)];
    it.image = ds.images.slice(i, 1).reshaped(shape{C, S, S});
    it.keyword_target = ds.keyword_targets.slice(i, 1).reshaped(shape{static_cast<index_t>(K)});
  }

  if (opt.load_audio) {
    ds.sample_rate = opt.sample_rate;
    exec::default_policy::for_each(N, [&](index_t i) {
      auto& it = ds.items[static_cast<std::size_t>(i)];
      for (const auto& w : it.speech) it.audio.push_back(load_emoji_speech(w, opt.sample_rate, opt.trim_silence));
    });
  }

  // Stratified split.
  for (std::size_t c = 0; c < emoji_categories.size(); ++c) {
    std::vector<index_t> members;
    for (index_t i = 0; i < N; ++i)
      if (ds.labels[static_cast<std::size_t>(i)] == static_cast<std::int32_t>(c)) members.push_back(i);
    detail::splitmix64 rng{opt.seed * 0x100000001B3ull + c};
    for (std::size_t k = members.size(); k > 1; --k)
      std::swap(members[k - 1], members[static_cast<std::size_t>(rng.below(k))]);
    const auto n_test = static_cast<std::size_t>(std::llround(static_cast<double>(members.size()) * opt.test_fraction));
    ds.test.insert(ds.test.end(), members.begin(), members.begin() + static_cast<std::ptrdiff_t>(n_test));
    ds.train.insert(ds.train.end(), members.begin() + static_cast<std::ptrdiff_t>(n_test), members.end());
  }
  std::sort(ds.train.begin(), ds.train.end());
  std::sort(ds.test.begin(), ds.test.end());
  return ds;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::data
