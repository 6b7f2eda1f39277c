// Log-mel spectrogram of a mono waveform, numerically torchaudio.transforms.MelSpectrogram's defaults
// (centred reflect padding, periodic Hann, power 2, HTK mel scale, norm=None) followed by log(mel + 1e-6).
#pragma once
#include <cmath>
#include <complex>
#include <numbers>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <unsupported/Eigen/FFT>

#include "hybrid/backend/parallel.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/core/tensor.hpp"

namespace hybrid::audio {

// Field names follow torchaudio's MelSpectrogram (n_fft, hop_length -> hop, n_mels -> mels). The window
// length is n_fft. The log is natural, of mel power plus `log_offset` (not Whisper's clamp-then-log10).
struct mel_config {
  int sample_rate = 16000;
  index_t n_fft = 400;
  index_t hop = 160;
  index_t mels = 64;
  double f_min = 0;
  double f_max = 0;  // 0: the Nyquist rate, sample_rate / 2 rounded down as torchaudio does
  bool center = true;  // pad n_fft / 2 samples each side by reflection, so frame t is centred on t * hop
  double log_offset = 1e-6;
};

// The HTK mel scale (torchaudio's default; librosa's default is Slaney, which this does not implement).
inline double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
inline double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

inline index_t frequency_bins(const mel_config& c) { return c.n_fft / 2 + 1; }

inline void validate(const mel_config& c) {
  auto bad = [](const std::string& why) { throw std::invalid_argument("mel_config: " + why); };
  if (c.sample_rate <= 0) bad("sample_rate must be positive");
  if (c.n_fft < 2) bad("n_fft must be at least 2");
  if (c.hop < 1) bad("hop must be positive");
  if (c.mels < 1) bad("mels must be positive");
  const double f_max = c.f_max > 0 ? c.f_max : static_cast<double>(c.sample_rate / 2);
  if (!(c.f_min >= 0 && c.f_min < f_max)) bad("need 0 <= f_min < f_max");
  if (!(c.log_offset > 0)) bad("log_offset must be positive");
}

// Frames of a signal of `samples` samples: 1 + samples / hop when centred, else 1 + (samples - n_fft) / hop.
inline index_t frame_count(index_t samples, const mel_config& c) {
  if (c.center) return 1 + samples / c.hop;
  return samples < c.n_fft ? 0 : 1 + (samples - c.n_fft) / c.hop;
}

// The periodic Hann window (torch.hann_window's default): 0.5 - 0.5 cos(2 pi n / N).
inline std::vector<double> hann_window(index_t n) {
  std::vector<double> w(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    w[static_cast<std::size_t>(i)] = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(n));
  return w;
}

// Triangular filters [frequency_bins, mels], torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk"):
// mels + 2 points equally spaced in mel between f_min and f_max; filter m rises from point m to m+1 and
// falls to m+2; FFT bin k sits at k * (sample_rate / 2) / (bins - 1) Hz. With too many mels for n_fft the
// lowest filters catch no bin and stay zero (torchaudio warns; their log is log(log_offset)).
inline tensor<double> mel_filterbank(const mel_config& c) {
  validate(c);
  const index_t bins = frequency_bins(c), M = c.mels;
  const double nyquist = static_cast<double>(c.sample_rate / 2);
  const double f_max = c.f_max > 0 ? c.f_max : nyquist;
  const double m_lo = hz_to_mel(c.f_min), m_hi = hz_to_mel(f_max);
  std::vector<double> f(static_cast<std::size_t>(M + 2));
  for (index_t i = 0; i < M + 2; ++i)
    f[static_cast<std::size_t>(i)] = mel_to_hz(m_lo + (m_hi - m_lo) * static_cast<double>(i) / static_cast<double>(M + 1));
  tensor<double> fb({bins, M});
  for (index_t k = 0; k < bins; ++k) {
    const double hz = nyquist * static_cast<double>(k) / static_cast<double>(bins - 1);
    for (index_t m = 0; m < M; ++m) {
      const auto i = static_cast<std::size_t>(m);
      const double down = (hz - f[i]) / (f[i + 1] - f[i]), up = (f[i + 2] - hz) / (f[i + 2] - f[i + 1]);
      fb(k, m) = std::max(0.0, std::min(down, up));
    }
  }
  return fb;
}

// The extractor: holds the window and filter bank; computes [mels, frames] per utterance. Feature
// extraction only (no gradient). T is the arithmetic type of the FFT and the mel product.
template <class T = float>
class log_mel {
 public:
  log_mel() : log_mel(mel_config{}) {}
  explicit log_mel(const mel_config& c);

  const mel_config& config() const { return cfg_; }
  index_t mels() const { return cfg_.mels; }
  index_t frames(index_t samples) const { return frame_count(samples, cfg_); }
  // The shortest signal accepted: reflection needs more samples than the n_fft / 2 it mirrors.
  index_t min_samples() const { return cfg_.center ? cfg_.n_fft / 2 + 1 : cfg_.n_fft; }

  // One utterance into out[mels * frames] (row-major [mels, frames]).
  void compute(std::span<const float> wave, T* out) const;

  tensor<T> operator()(std::span<const float> wave) const {
    tensor<T> out({cfg_.mels, frames(static_cast<index_t>(wave.size()))});
    compute(wave, out.data());
    return out;
  }

  // A batch of equally long waveforms [B, samples] -> [B, mels, frames]. Utterances run in parallel
  // (each is independent, so any thread count gives the same bits); within one the frames are serial,
  // as a 1 s clip is only ~100 small FFTs.
  template <class Exec = exec::default_policy>
  tensor<T> batch(const tensor<float>& waves) const {
    if (waves.rank() != 2)
      throw std::invalid_argument("log_mel::batch: waveforms must be [batch, samples], got " + waves.shape().str());
    const index_t B = waves.dim(0), L = waves.dim(1), F = frames(L);
    tensor<T> out({B, cfg_.mels, F});
    if (B > 0) check_length(L);
    Exec::for_each(B, [&](index_t b) {
      compute(std::span<const float>(waves.data() + b * L, static_cast<std::size_t>(L)), out.data() + b * cfg_.mels * F);
    });
    return out;
  }

 private:
  void check_length(index_t L) const {
    if (L < min_samples())
      throw std::invalid_argument("log_mel: " + std::to_string(L) + " samples, at least " + std::to_string(min_samples()) +
                                  " are needed for n_fft " + std::to_string(cfg_.n_fft) +
                                  (cfg_.center ? " with reflect padding" : ""));
  }

  mel_config cfg_;
  std::vector<T> window_;
  row_matrix<T> filters_;  // [mels, bins]
};

// Outside the class: prebuilt for float with HYBRID_COMPILED (core/compiled.hpp).
template <class T>
log_mel<T>::log_mel(const mel_config& c) : cfg_(c) {
  validate(c);
  const auto w = hann_window(c.n_fft);
  window_.assign(w.begin(), w.end());
  const tensor<double> fb = mel_filterbank(c);
  filters_ = fb.matrix().transpose().template cast<T>();
}

template <class T>
void log_mel<T>::compute(std::span<const float> wave, T* out) const {
  const auto L = static_cast<index_t>(wave.size());
  check_length(L);
  const index_t N = cfg_.n_fft, bins = frequency_bins(cfg_), F = frames(L), pad = cfg_.center ? N / 2 : 0;
  // The padded signal: x[pad - j] mirrors x[j] on the left, x[L - 1 - j] on the right (no edge repeat).
  std::vector<T> x(static_cast<std::size_t>(L + 2 * pad));
  for (index_t i = 0; i < L + 2 * pad; ++i) {
    index_t j = i - pad;
    if (j < 0) j = -j;
    if (j >= L) j = 2 * (L - 1) - j;
    x[static_cast<std::size_t>(i)] = static_cast<T>(wave[static_cast<std::size_t>(j)]);
  }
  Eigen::FFT<T> fft;
  fft.SetFlag(Eigen::FFT<T>::HalfSpectrum);
  std::vector<T> frame(static_cast<std::size_t>(N));
  std::vector<std::complex<T>> spectrum(static_cast<std::size_t>(bins));
  row_matrix<T> power(F, bins);
  for (index_t t = 0; t < F; ++t) {
    const T* s = x.data() + t * cfg_.hop;
    for (index_t n = 0; n < N; ++n) frame[static_cast<std::size_t>(n)] = s[n] * window_[static_cast<std::size_t>(n)];
    fft.fwd(spectrum.data(), frame.data(), N);
    for (index_t k = 0; k < bins; ++k) power(t, k) = std::norm(spectrum[static_cast<std::size_t>(k)]);
  }
  Eigen::Map<row_matrix<T>> mel(out, cfg_.mels, F);
  mel.noalias() = filters_ * power.transpose();
  const T offset = static_cast<T>(cfg_.log_offset);
  mel = (mel.array() + offset).log();
}

HYBRID_EXTERN_FLOAT(class log_mel<float>)

}  // namespace hybrid::audio
