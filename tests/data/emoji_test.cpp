#include <doctest/doctest.h>

#ifndef HYBRID_WITH_PNG
TEST_CASE("emoji: libpng is missing") {
  FAIL("hybrid::io was configured without libpng: install libpng-dev (scripts/setup.sh) and reconfigure");
}
#else
#include <hybrid/data/emoji.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::index_t;
using hybrid::shape;
using hybrid::tensor;
using namespace hybrid::data;

namespace {

const fs::path emoji_dir = fs::path(HYBRID_DATA_DIR) / "emoji";

void require_data() {
  REQUIRE_MESSAGE(fs::exists(emoji_dir / "manifest.tsv"),
                  (emoji_dir / "manifest.tsv").string() << " is missing: run scripts/fetch_data.sh");
}

// The default data set, loaded once for the whole file.
const emoji_dataset& dataset() {
  static const emoji_dataset ds = [] {
    const auto t0 = std::chrono::steady_clock::now();
    emoji_dataset d = load_emoji();
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    MESSAGE("load_emoji: " << d.size() << " items, images [" << d.images.shape().str() << "] in " << dt.count()
                           << " s");
    return d;
  }();
  return ds;
}

const index_t expected_counts[8] = {570, 273, 257, 179, 161, 145, 118, 85};

}  // namespace

TEST_CASE("emoji: missing data names the fix") {
  try {
    (void)load_emoji(fs::path("/nonexistent/emoji"));
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("run scripts/fetch_data.sh") != std::string::npos);
  }
}

TEST_CASE("emoji: items and counts per category") {
  require_data();
  const auto& ds = dataset();
  CHECK(ds.size() == 1788);
  CHECK(ds.dropped == 6);  // "modifier" (5 skin-tone swatches) and "extras" (1)
  REQUIRE(ds.categories.size() == 8);
  CHECK(ds.categories[0] == "people");
  CHECK(ds.categories[7] == "food");
  std::vector<index_t> all(static_cast<std::size_t>(ds.size()));
  std::iota(all.begin(), all.end(), index_t{0});
  const auto counts = ds.category_counts(all);
  for (std::size_t c = 0; c < 8; ++c) CHECK_MESSAGE(counts[c] == expected_counts[c], ds.categories[c]);

  // Distinct code points in ascending order; every item has a name, a PNG and two voices.
  for (index_t i = 1; i < ds.size(); ++i)
    CHECK(ds.items[static_cast<std::size_t>(i - 1)].unicode < ds.items[static_cast<std::size_t>(i)].unicode);
  std::set<std::string> voices;
  for (const auto& it : ds.items) {
    CHECK(!it.name.empty());
    CHECK(it.speech.size() == 2);
    CHECK(it.voices.size() == 2);
    CHECK(it.audio.empty());  // load_audio is off by default
    for (const auto& v : it.voices) voices.insert(v.substr(0, v.find(' ')));
    if (it.voices.size() == 2) CHECK(it.voices[0].substr(0, it.voices[0].find(' ')) !=
                                     it.voices[1].substr(0, it.voices[1].find(' ')));
  }
  CHECK(voices.size() == 5);
  const auto hundred = std::find_if(ds.items.begin(), ds.items.end(), [](const auto& it) { return it.unicode == "1F4AF"; });
  REQUIRE(hundred != ds.items.end());
  CHECK(hundred->name == "hundred points symbol");
  CHECK(ds.categories[static_cast<std::size_t>(hundred->category)] == "symbols");
  CHECK(std::find(hundred->keywords.begin(), hundred->keywords.end(), "perfect") != hundred->keywords.end());
  CHECK(fs::exists(hundred->png));
  for (const auto& w : hundred->speech) CHECK(fs::exists(w));
}

TEST_CASE("emoji: stratified split, sizes and determinism") {
  require_data();
  const auto& ds = dataset();
  CHECK(ds.train.size() == 1430);
  CHECK(ds.test.size() == 358);
  // Disjoint, ascending, covering every item.
  CHECK(std::is_sorted(ds.train.begin(), ds.train.end()));
  CHECK(std::is_sorted(ds.test.begin(), ds.test.end()));
  std::vector<index_t> both;
  std::set_union(ds.train.begin(), ds.train.end(), ds.test.begin(), ds.test.end(), std::back_inserter(both));
  CHECK(both.size() == static_cast<std::size_t>(ds.size()));
  CHECK(both.front() == 0);
  CHECK(both.back() == ds.size() - 1);
  // Stratified: round(20%) of every category in test.
  const auto test_counts = ds.category_counts(ds.test);
  const auto train_counts = ds.category_counts(ds.train);
  for (std::size_t c = 0; c < 8; ++c) {
    CHECK(test_counts[c] == std::llround(static_cast<double>(expected_counts[c]) * 0.2));
    CHECK(train_counts[c] + test_counts[c] == expected_counts[c]);
  }

  // The same seed gives the same split; another seed another one, with the same sizes per category.
  emoji_options small{.image_size = 4};
  const auto a = load_emoji(small);
  CHECK(a.train == ds.train);
  CHECK(a.test == ds.test);
  small.seed = 12345;
  const auto b = load_emoji(small);
  CHECK(b.test != ds.test);
  CHECK(b.category_counts(b.test) == test_counts);
  std::vector<index_t> common;
  std::set_intersection(b.test.begin(), b.test.end(), ds.test.begin(), ds.test.end(), std::back_inserter(common));
  CHECK(common.size() < ds.test.size() / 2);  // about 20% overlap expected
  small.test_fraction = 0.5;
  const auto c = load_emoji(small);
  std::size_t halves = 0;
  for (index_t n : expected_counts) halves += static_cast<std::size_t>(std::llround(static_cast<double>(n) * 0.5));
  CHECK(halves == 897);  // llround: 136.5 -> 137
  CHECK(c.test.size() == halves);
}

TEST_CASE("emoji: images") {
  require_data();
  const auto& ds = dataset();
  REQUIRE(ds.images.shape() == shape{1788, 3, 32, 32});
  CHECK(*std::min_element(ds.images.begin(), ds.images.end()) >= 0.0f);
  CHECK(*std::max_element(ds.images.begin(), ds.images.end()) <= 1.0f);
  // Mostly white background (transparent corners composited on white), never a blank image.
  index_t white_corners = 0;
  for (index_t i = 0; i < ds.size(); ++i) {
    const tensor<float>& im = ds.items[static_cast<std::size_t>(i)].image;
    REQUIRE(im.shape() == shape{3, 32, 32});
    CHECK(im.data() == ds.images.data() + i * 3 * 32 * 32);  // a view
    white_corners += im(0, 0, 0) == 1.0f && im(1, 0, 0) == 1.0f && im(2, 0, 0) == 1.0f;
    const auto [lo, hi] = std::minmax_element(im.begin(), im.end());
    CHECK(*hi - *lo > 0.1f);
  }
  CHECK(white_corners > ds.size() / 2);
  // Batches gather rows.
  const std::vector<index_t> ids = {5, 0, 1787};
  const tensor<float> batch = ds.batch_images(ids);
  REQUIRE(batch.shape() == shape{3, 3, 32, 32});
  for (std::size_t k = 0; k < ids.size(); ++k)
    CHECK(std::equal(batch.data() + k * 3072, batch.data() + (k + 1) * 3072,
                     ds.items[static_cast<std::size_t>(ids[k])].image.begin()));
  CHECK(ds.batch_labels(ids) == std::vector<std::int32_t>{ds.labels[5], ds.labels[0], ds.labels[1787]});

  // Size and alpha options: 16x16 with the alpha channel last (0 in transparent corners).
  const auto small = load_emoji(emoji_options{.image_size = 16, .alpha = hybrid::io::alpha_mode::channel});
  REQUIRE(small.images.shape() == shape{1788, 4, 16, 16});
  index_t transparent = 0;
  for (const auto& it : small.items) transparent += it.image(3, 0, 0) == 0.0f;
  CHECK(transparent > small.size() / 2);
  // The 16x16 box image is the 2x2 mean of the 32x32 one.
  const auto& big = ds.items[100].image;
  const auto& sm = small.items[100].image;
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < 16; y += 3)
      for (index_t x = 0; x < 16; x += 3)
        CHECK(sm(c, y, x) == doctest::Approx((big(c, 2 * y, 2 * x) + big(c, 2 * y, 2 * x + 1) +
                                              big(c, 2 * y + 1, 2 * x) + big(c, 2 * y + 1, 2 * x + 1)) / 4)
                                 .epsilon(1e-5));
}

TEST_CASE("emoji: keyword multilabel targets") {
  require_data();
  const auto& ds = dataset();
  REQUIRE(ds.keywords.size() == 32);
  REQUIRE(ds.keyword_targets.shape() == shape{1788, 32});
  CHECK(ds.keywords[0] == "symbol");
  CHECK(std::find(ds.keywords.begin(), ds.keywords.end(), "flag") != ds.keywords.end());
  // Each column counts the items holding that keyword; counts never increase along the vocabulary.
  index_t prev = ds.size();
  for (std::size_t k = 0; k < ds.keywords.size(); ++k) {
    index_t holders = 0, ones = 0;
    for (index_t i = 0; i < ds.size(); ++i) {
      const auto& kw = ds.items[static_cast<std::size_t>(i)].keywords;
      holders += std::find(kw.begin(), kw.end(), ds.keywords[k]) != kw.end();
      const float v = ds.keyword_targets(i, static_cast<index_t>(k));
      CHECK((v == 0.0f || v == 1.0f));
      ones += v == 1.0f;
    }
    CHECK_MESSAGE(ones == holders, ds.keywords[k]);
    CHECK(holders <= prev);
    prev = holders;
  }
  // The item's view matches its row; items without any top keyword have an all-zero target.
  const auto& it = ds.items[0];
  CHECK(it.keyword_target.shape() == shape{32});
  CHECK(std::equal(it.keyword_target.begin(), it.keyword_target.end(), ds.keyword_targets.data()));
  const std::vector<index_t> ids = {3, 4};
  const tensor<float> t = ds.batch_keyword_targets(ids);
  CHECK(t.shape() == shape{2, 32});
  CHECK(std::equal(t.begin(), t.end(), ds.keyword_targets.data() + 3 * 32));

  const auto k8 = load_emoji(emoji_options{.image_size = 2, .top_keywords = 8});
  CHECK(k8.keywords == std::vector<std::string>(ds.keywords.begin(), ds.keywords.begin() + 8));
  CHECK(k8.keyword_targets.shape() == shape{1788, 8});
}

TEST_CASE("emoji: speech") {
  require_data();
  const auto& ds = dataset();
  // Every clip exists; one decodes to a plausible 16 kHz waveform.
  for (const auto& it : ds.items)
    for (const auto& w : it.speech) CHECK_MESSAGE(fs::exists(w), w.string());
  const auto& hundred = ds.items[static_cast<std::size_t>(
      std::find_if(ds.items.begin(), ds.items.end(), [](const auto& it) { return it.unicode == "1F4AF"; }) -
      ds.items.begin())];
  const auto raw = hybrid::io::read_wav(hundred.speech[0]);
  CHECK(raw.sample_rate == 22050);
  const std::vector<float> x = load_emoji_speech(hundred.speech[0]);
  const std::vector<float> untrimmed = load_emoji_speech(hundred.speech[0], 16000, false);
  CHECK(untrimmed.size() == (raw.samples.size() * 16000 + 22049) / 22050);
  // The tabulated resampler is io::resample.
  const std::vector<float> reference = hybrid::io::resample(raw.samples, 22050, 16000);
  REQUIRE(reference.size() == untrimmed.size());
  float worst = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::abs(reference[i] - untrimmed[i]));
  CHECK(worst < 1e-6f);
  CHECK(x.size() < untrimmed.size());
  const double seconds = static_cast<double>(x.size()) / 16000;
  CHECK(seconds > 0.5);  // "hundred points symbol"
  CHECK(seconds < 3.0);
  double energy = 0;
  for (float v : x) energy += static_cast<double>(v) * v;
  CHECK(std::sqrt(energy / static_cast<double>(x.size())) > 0.01);
  CHECK(std::abs(x.front()) < 0.05f);  // trimmed with a margin: starts near silence

  // load_audio fills every item (timed: all 3,576 clips decoded and resampled).
  const auto t0 = std::chrono::steady_clock::now();
  const auto with_audio = load_emoji(emoji_options{.image_size = 2, .load_audio = true});
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  double total = 0;
  for (const auto& it : with_audio.items) {
    REQUIRE(it.audio.size() == 2);
    for (const auto& a : it.audio) {
      CHECK(a.size() > 1600);
      total += static_cast<double>(a.size()) / 16000;
    }
  }
  CHECK(with_audio.sample_rate == 16000);
  CHECK(with_audio.items[static_cast<std::size_t>(&hundred - ds.items.data())].audio[0] == x);
  MESSAGE("load_audio: " << total / 3600 << " h of speech in " << dt.count() << " s");
}

}  // namespace HYBRID_TEST_UNIT
#endif
