// Audio encoder: contract, names, both input forms (waveforms and precomputed features), values against a
// naive conv/pool loop, gradients (double, tiny config), the dataset helper, and a quick tone-classification fit.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/audio.hpp>
#include <hybrid/io/wav.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/optim/adam.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <numbers>
#include <random>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

constexpr enc::audio_config small{.mels = 40, .channels = 16, .layers = 2, .width = 24};
static_assert(enc::encoder<enc::audio<small>>);
static_assert(enc::audio<small>::width == 24);
static_assert(!enc::audio<small>::sequence_output);

namespace {
// Tiny: 4 kHz audio, 64-point FFT, 6 mel bins.
constexpr enc::audio_config tiny{.sample_rate = 4000, .n_fft = 64, .hop = 32, .mels = 6, .channels = 3, .layers = 2,
                                 .kernel = 3, .pool = 2, .width = 4, .dropout = 0};

tensor<float> noisy_tones(index_t B, index_t L, int rate, unsigned seed, std::vector<std::int32_t>* labels = nullptr) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> n(0, 1);
  tensor<float> w({B, L});
  for (index_t b = 0; b < B; ++b) {
    const int cls = static_cast<int>(b % 2);
    if (labels) labels->push_back(cls);
    const double hz = (cls ? 1800.0 : 450.0) * (0.9 + 0.2 * u(rng)), amp = 0.1 + 0.5 * u(rng), ph = 6.28 * u(rng);
    for (index_t i = 0; i < L; ++i)
      w(b, i) = static_cast<float>(amp * std::sin(2 * std::numbers::pi * hz * double(i) / rate + ph) + 0.02 * n(rng));
  }
  return w;
}

// The encoder computed with plain loops in double from features [B, mels, frames].
std::vector<double> naive(enc::audio_model<double>& m, const tensor<float>& f) {
  const auto& c = m.config();
  std::vector<parameter<double>*> ps = parameters_of(m);
  const index_t B = f.dim(0);
  index_t C = f.dim(1), L = f.dim(2);
  std::vector<double> x(f.begin(), f.end());
  for (index_t layer = 0; layer < c.layers; ++layer) {
    const auto& w = ps[std::size_t(2 * layer)]->value();
    const auto& bias = ps[std::size_t(2 * layer + 1)]->value();
    const index_t O = w.dim(0), K = w.dim(2), p = K / 2;
    std::vector<double> y(std::size_t(B * O * L));
    for (index_t b = 0; b < B; ++b)
      for (index_t o = 0; o < O; ++o)
        for (index_t t = 0; t < L; ++t) {
          double s = bias[o];
          for (index_t ci = 0; ci < C; ++ci)
            for (index_t j = 0; j < K; ++j) {
              const index_t src = t + j - p;
              if (src >= 0 && src < L) s += w(o, ci, j) * x[std::size_t((b * C + ci) * L + src)];
            }
          y[std::size_t((b * O + o) * L + t)] = std::max(s, 0.0);
        }
    C = O;
    if (layer + 1 < c.layers) {
      const index_t Lp = L / c.pool;
      std::vector<double> z(std::size_t(B * C * Lp));
      for (index_t r = 0; r < B * C; ++r)
        for (index_t t = 0; t < Lp; ++t) {
          double mx = -1e300;
          for (index_t j = 0; j < c.pool; ++j) mx = std::max(mx, y[std::size_t(r * L + t * c.pool + j)]);
          z[std::size_t(r * Lp + t)] = mx;
        }
      y = std::move(z);
      L = Lp;
    }
    x = std::move(y);
  }
  const auto& pw = ps[ps.size() - 2]->value();
  const auto& pb = ps.back()->value();
  std::vector<double> out;
  for (index_t b = 0; b < B; ++b)
    for (index_t o = 0; o < c.width; ++o) {
      double s = pb[o];
      for (index_t ci = 0; ci < C; ++ci) {
        double mean = 0;
        for (index_t t = 0; t < L; ++t) mean += x[std::size_t((b * C + ci) * L + t)];
        s += pw(o, ci) * mean / double(L);
      }
      out.push_back(s);
    }
  return out;
}
}  // namespace

TEST_CASE("audio: names, shapes, waveform and feature inputs agree") {
  enc::audio<small> m;
  std::vector<std::string> names;
  m.visit("speech", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"speech.conv.0.weight", "speech.conv.0.bias", "speech.conv.1.weight",
                                          "speech.conv.1.bias", "speech.proj.weight", "speech.proj.bias"});
  CHECK(count_parameters(m) == (16 * 40 * 3 + 16) + (16 * 16 * 3 + 16) + (24 * 16 + 24));

  const tensor<float> waves = noisy_tones(3, 4000, 16000, 1);
  tape::current().reset();
  dropout_rng d;
  const auto from_waves = m({waves}, d, false);
  CHECK(!from_waves.sequence.valid());
  REQUIRE(from_waves.pooled.shape() == hybrid::shape{3, 24});
  const tensor<float> feats = m.features(waves);
  REQUIRE(feats.shape() == hybrid::shape{3, 40, 26});
  const auto from_feats = m({feats}, d, false);
  CHECK(std::equal(from_waves.pooled.values().begin(), from_waves.pooled.values().end(), from_feats.pooled.values().begin()));
  // Per-utterance normalization: each utterance has mean 0 and variance 1 over mels x frames.
  for (index_t b = 0; b < 3; ++b) {
    double s = 0, sq = 0;
    for (index_t i = 0; i < 40 * 26; ++i) s += feats[b * 40 * 26 + i];
    for (index_t i = 0; i < 40 * 26; ++i) sq += std::pow(feats[b * 40 * 26 + i] - s / (40 * 26), 2);
    CHECK(std::abs(s / (40 * 26)) < 1e-5);
    CHECK(sq / (40 * 26) == doctest::Approx(1.0).epsilon(1e-3));
  }
  // Front end: serial and tbb bitwise identical, and equal to log_mel plus normalization.
  const auto ser = m.features<exec::serial>(waves);
  CHECK(std::equal(ser.begin(), ser.end(), feats.begin()));
  auto one = audio::log_mel<float>(enc::mel_config_of(small))(std::span<const float>(waves.data() + 4000, 4000));
  enc::normalize_utterance(one.data(), one.numel(), small.norm_eps);
  CHECK(std::equal(one.begin(), one.end(), feats.data() + 40 * 26));
  // Dropout only in training.
  const auto tr = m({feats}, d, true);
  CHECK(!std::equal(tr.pooled.values().begin(), tr.pooled.values().end(), from_feats.pooled.values().begin()));
}

TEST_CASE("audio values match a naive conv / ReLU / max-pool / mean / linear loop") {
  enc::audio_model<double> m({.mels = 5, .channels = 4, .layers = 3, .kernel = 5, .pool = 2, .width = 3, .dropout = 0});
  std::mt19937 rng(2);
  tensor<float> f({2, 5, 13});  // 13 -> 6 -> 3 frames
  fill_uniform(f, rng, -2, 2);
  tape::current().reset();
  dropout_rng d;
  const auto y = m({f}, d, false).pooled;
  const auto want = naive(m, f);
  REQUIRE(y.numel() == static_cast<index_t>(want.size()));
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == doctest::Approx(want[std::size_t(i)]).epsilon(1e-12));
}

TEST_CASE("audio gradients match finite differences (double, tiny config, both input forms)") {
  enc::audio_model<double> m(tiny);
  std::mt19937 rng(3);
  auto ps = parameters_of(m);
  for (auto* p : ps) fill_uniform(p->value(), rng, -0.8, 0.8);
  dropout_rng d;
  const enc::dense_input waves{noisy_tones(2, 300, 4000, 4)};  // 300 samples -> 10 frames -> 5 after one pool
  auto r = check_gradients([&] { return m(waves, d, false).pooled; }, ps, {.rtol = 1e-5});
  INFO(r.report());
  CHECK(r.ok);
  enc::dense_input feats{tensor<float>({3, 6, 7})};
  fill_uniform(feats.values, rng, -1.5, 1.5);
  auto r2 = check_gradients([&] { return m(feats, d, false).pooled; }, ps, {.rtol = 1e-5});
  INFO(r2.report());
  CHECK(r2.ok);
}

TEST_CASE("audio input errors name the shapes") {
  enc::audio<small> m;
  dropout_rng d;
  tape::current().reset();
  try {
    m({tensor<float>({2, 32, 50}, 0.0f)}, d, false);
    FAIL("no shape_error");
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("[2, 32, 50]") != std::string::npos);
    CHECK(std::string(e.what()).find("[16, 40, 3]") != std::string::npos);
  }
  CHECK_THROWS_AS(m({tensor<float>({2, 40, 1}, 0.0f)}, d, false), shape_error);  // fewer frames than one pool needs
  CHECK_THROWS_AS(m({tensor<float>({100}, 0.0f)}, d, false), shape_error);
  CHECK_THROWS_AS(m({tensor<float>({2, 150}, 0.0f)}, d, false), std::invalid_argument);  // shorter than n_fft / 2
  CHECK_THROWS_AS(enc::audio_model<float>({.kernel = 4}), std::invalid_argument);
}

TEST_CASE("precompute_features pads clips once for a whole dataset") {
  const tensor<float> w = noisy_tones(3, 2000, 16000, 5);
  std::vector<std::vector<float>> clips;
  for (index_t b = 0; b < 3; ++b) clips.emplace_back(w.data() + b * 2000, w.data() + b * 2000 + 1000 + 500 * b);
  const auto feats = enc::precompute_features(small, clips);  // padded to the longest: 2000 samples
  REQUIRE(feats.shape() == hybrid::shape{3, 40, 13});
  const auto ser = enc::precompute_features<exec::serial>(small, clips);
  CHECK(std::equal(ser.begin(), ser.end(), feats.begin()));
  // Clip 2 is full length: the same as the batch front end on the original waveform.
  const auto direct = enc::audio_frontend(small)(w);
  CHECK(std::equal(feats.data() + 2 * 40 * 13, feats.data() + 3 * 40 * 13, direct.data() + 2 * 40 * 13));
  // Clip 0 padded with zeros to 2000 samples.
  tensor<float> padded({1, 2000}, 0.0f);
  std::copy(clips[0].begin(), clips[0].end(), padded.data());
  const auto p0 = enc::audio_frontend(small)(padded);
  CHECK(std::equal(p0.begin(), p0.end(), feats.data()));
  CHECK(enc::precompute_features(small, clips, 3000).dim(2) == 19);
  CHECK_THROWS_AS(enc::precompute_features(small, clips, 1500), std::invalid_argument);
}

TEST_CASE("speech from espeak-ng: read, resample to 16 kHz, features") {
  if (!std::filesystem::exists("/usr/bin/espeak-ng")) {
    MESSAGE("skipped: /usr/bin/espeak-ng is not installed (scripts/setup.sh installs it)");
    return;
  }
  std::vector<std::vector<float>> clips;
  for (const char* word : {"seven", "eight"}) {
    const auto path = std::filesystem::temp_directory_path() / ("hybrid_audio_test_" + std::string(word) + ".wav");
    REQUIRE(std::system(("/usr/bin/espeak-ng -w '" + path.string() + "' " + word + " >/dev/null 2>&1").c_str()) == 0);
    const auto w = io::read_wav(path);
    std::filesystem::remove(path);
    clips.push_back(io::resample(w.samples, w.sample_rate, 16000));
  }
  const auto feats = enc::precompute_features(small, clips);
  CHECK(feats.dim(0) == 2);
  for (float v : feats) REQUIRE(std::isfinite(v));
  enc::audio<small> m;
  dropout_rng d;
  tape::current().reset();
  CHECK(m({feats}, d, false).pooled.shape() == hybrid::shape{2, 24});
}

TEST_CASE("audio encoder + linear head learns low vs high tones from fixed features") {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::int32_t> labels;
  const tensor<float> waves = noisy_tones(32, 4000, 16000, 6, &labels);
  enc::audio_model<float> m({.mels = 32, .channels = 8, .layers = 2, .width = 8, .dropout = 0});
  const tensor<float> feats = m.features(waves);
  layers::linear<float> head(8, 2);
  std::mt19937 rng(7);
  head.init(rng);
  auto ps = parameters_of(m);
  ps.push_back(&head.weight());
  ps.push_back(&head.bias());
  optim::adam<float> opt(ps, {.lr = 0.01});
  dropout_rng d;
  tape::current().reset();  // the previous test's forward pass is still on the tape, its model gone
  double accuracy = 0, first = -1;
  int steps = 0;
  for (; steps < 100 && accuracy < 1; ++steps) {
    opt.zero_grad();
    var<float> logits = head(m({feats}, d, true).pooled);
    int correct = 0;
    for (index_t n = 0; n < 32; ++n) correct += (logits[2 * n + 1] > logits[2 * n]) == (labels[std::size_t(n)] == 1);
    accuracy = correct / 32.0;
    if (first < 0) first = accuracy;
    cross_entropy(logits, labels).backward();
    opt.step();
  }
  MESSAGE("train accuracy " << first << " -> " << accuracy << " after " << steps << " steps in "
                            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");
  CHECK(accuracy == 1.0);
}

}  // namespace HYBRID_TEST_UNIT
