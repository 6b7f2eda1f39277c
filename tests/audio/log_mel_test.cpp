// log_mel: against torch.stft + torchaudio's HTK filter bank (fixture), a pure tone lands in its mel bin,
// batches equal single utterances for any execution policy, and bad inputs are rejected.
#include <doctest/doctest.h>

#include <hybrid/audio/log_mel.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "fixtures/log_mel_reference.inc"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
audio::mel_config config_of(const log_mel_reference::case_info& c) {
  return {.sample_rate = c.sample_rate, .n_fft = c.n_fft, .hop = c.hop, .mels = c.mels, .f_min = c.f_min,
          .f_max = c.f_max, .center = c.center};
}

template <class T>
double max_log_error(const log_mel_reference::case_info& c) {
  std::vector<float> x(c.input, c.input + c.samples);
  const audio::log_mel<T> lm(config_of(c));
  const tensor<T> y = lm(x);
  REQUIRE(y.shape() == hybrid::shape{c.mels, c.frames});
  double worst = 0;
  for (index_t i = 0; i < y.numel(); ++i) worst = std::max(worst, std::abs(double(y[i]) - c.output[i]));
  return worst;
}

std::vector<float> tone(double hz, int rate, index_t n, double amplitude = 0.5) {
  std::vector<float> x(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    x[static_cast<std::size_t>(i)] = static_cast<float>(amplitude * std::sin(2 * std::numbers::pi * hz * double(i) / rate));
  return x;
}
}  // namespace

TEST_CASE("log-mel matches the PyTorch reference (torch.stft + torchaudio HTK filters, log(mel + 1e-6))") {
  for (const auto& c : log_mel_reference::cases) {
    const std::string name = c.name;
    CAPTURE(name);
    CHECK(audio::frame_count(c.samples, config_of(c)) == c.frames);
    // Natural log of power: an absolute log error of 1e-4 is a relative power error of 0.01%.
    const double ed = max_log_error<double>(c), ef = max_log_error<float>(c);
    MESSAGE(name << ": max |log error| double " << ed << ", float " << ef);
    CHECK(ed < 1e-10);
    CHECK(ef < 2e-4);
  }
}

TEST_CASE("the filter bank is torchaudio's melscale_fbanks(norm=None, mel_scale='htk')") {
  const auto& c = log_mel_reference::cases[2];
  const tensor<double> fb = audio::mel_filterbank(config_of(c));
  REQUIRE(fb.shape() == hybrid::shape{c.n_fft / 2 + 1, c.mels});
  double worst = 0;
  for (index_t i = 0; i < fb.numel(); ++i) worst = std::max(worst, std::abs(fb[i] - log_mel_reference::nocenter8k_filterbank[i]));
  CHECK(worst < 1e-12);
  // Triangles peak at 1 only where a bin hits a centre; every filter here catches some bin.
  for (index_t m = 0; m < c.mels; ++m) {
    double peak = 0;
    for (index_t k = 0; k < fb.dim(0); ++k) peak = std::max(peak, fb(k, m));
    CHECK(peak > 0.3);
    CHECK(peak <= 1.0);
  }
  CHECK(audio::hz_to_mel(audio::mel_to_hz(1234.5)) == doctest::Approx(1234.5));
  CHECK(audio::hz_to_mel(700) == doctest::Approx(2595 * std::log10(2.0)));
  const auto w = audio::hann_window(4);  // periodic: 0, 0.5, 1, 0.5
  CHECK(w[0] == 0);
  CHECK(w[1] == doctest::Approx(0.5));
  CHECK(w[2] == doctest::Approx(1.0));
  CHECK(w[3] == doctest::Approx(0.5));
}

TEST_CASE("a pure tone lands in the mel bin whose centre is nearest") {
  const audio::mel_config cfg{.sample_rate = 16000, .n_fft = 400, .hop = 160, .mels = 40};
  const audio::log_mel<float> lm(cfg);
  const double top = audio::hz_to_mel(8000);
  for (int m : {3, 12, 20, 33}) {
    // The centre of filter m is mel point m + 1 (HTK formula, computed independently here).
    const double centre = audio::mel_to_hz(top * (m + 1) / 41.0);
    CAPTURE(m);
    CAPTURE(centre);
    const auto y = lm(tone(centre, 16000, 8000));
    const index_t F = y.dim(1);
    for (index_t t : {F / 4, F / 2, 3 * F / 4}) {
      index_t best = 0;
      for (index_t k = 1; k < 40; ++k)
        if (y(k, t) > y(best, t)) best = k;
      CHECK(best == m);
    }
  }
  // Silence is log(1e-6) everywhere.
  const auto z = lm(std::vector<float>(1600, 0.0f));
  for (float v : z) CHECK(v == doctest::Approx(std::log(1e-6)).epsilon(1e-5));
}

TEST_CASE("batches equal single utterances; serial and tbb are bitwise identical") {
  const audio::log_mel<float> lm({.mels = 32});
  const index_t B = 5, L = 5000;
  tensor<float> waves({B, L});
  for (index_t b = 0; b < B; ++b) {
    const auto x = tone(300.0 * double(b + 1), 16000, L, 0.1 * double(b + 1));
    std::copy(x.begin(), x.end(), waves.data() + b * L);
  }
  const auto par = lm.batch<exec::tbb>(waves);
  const auto ser = lm.batch<exec::serial>(waves);
  REQUIRE(par.shape() == hybrid::shape{B, 32, lm.frames(L)});
  CHECK(std::equal(par.begin(), par.end(), ser.begin()));
  const auto one = lm(std::span<const float>(waves.data() + 3 * L, static_cast<std::size_t>(L)));
  CHECK(std::equal(one.begin(), one.end(), par.data() + 3 * one.numel()));
}

TEST_CASE("lengths and configurations are validated") {
  const audio::log_mel<float> lm(audio::mel_config{});
  CHECK(lm.frames(16000) == 101);
  CHECK(lm.min_samples() == 201);
  CHECK_NOTHROW(lm(std::vector<float>(201, 0.1f)));
  CHECK_THROWS_WITH_AS(lm(std::vector<float>(200, 0.1f)), doctest::Contains("200 samples, at least 201"),
                       std::invalid_argument);
  CHECK_THROWS_AS(lm.batch(tensor<float>({2, 100}, 0.0f)), std::invalid_argument);
  CHECK_THROWS_AS(lm.batch(tensor<float>({100}, 0.0f)), std::invalid_argument);
  CHECK(audio::frame_count(399, {.center = false}) == 0);
  CHECK(audio::frame_count(400, {.center = false}) == 1);
  CHECK(audio::frame_count(720, {.center = false}) == 3);
  CHECK_THROWS_AS(audio::log_mel<float>({.hop = 0}), std::invalid_argument);
  CHECK_THROWS_AS(audio::log_mel<float>({.f_min = 9000}), std::invalid_argument);
  CHECK_THROWS_AS(audio::log_mel<float>({.n_fft = 1}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
