// The audio encoder: log-mel front end with per-utterance normalization, a conv1d -> ReLU -> max-pool
// stack over time (mel bins as channels), global average pooling and a linear map to the width.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "hybrid/audio/log_mel.hpp"
#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/enc/encoder.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/conv.hpp"
#include "hybrid/ops/pool.hpp"

namespace hybrid::enc {

struct audio_config {
  // Front end (torchaudio MelSpectrogram defaults otherwise; see audio/log_mel.hpp).
  int sample_rate = 16000;
  index_t n_fft = 400;  // 25 ms
  index_t hop = 160;    // 10 ms
  index_t mels = 64;
  bool normalize = true;  // per utterance: (x - mean) / sqrt(var + eps) over all its mels x frames
  double norm_eps = 1e-5;
  // Conv stack: `layers` conv1d layers of `channels` outputs (kernel odd, 'same' zero padding), each
  // followed by ReLU and, all but the last, by a max-pool of `pool` frames (1: none).
  index_t channels = 64;
  index_t layers = 3;
  index_t kernel = 3;
  index_t pool = 2;
  index_t width = 128;
  double dropout = 0.1;  // on the pooled channels, before the projection
};

inline hybrid::audio::mel_config mel_config_of(const audio_config& c) {
  return {.sample_rate = c.sample_rate, .n_fft = c.n_fft, .hop = c.hop, .mels = c.mels};
}

// Normalizes one utterance's features in place: zero mean, unit variance over all n values (double sums).
inline void normalize_utterance(float* f, index_t n, double eps) {
  double mean = 0, var = 0;
  for (index_t i = 0; i < n; ++i) mean += f[i];
  mean /= static_cast<double>(n);
  for (index_t i = 0; i < n; ++i) var += (f[i] - mean) * (f[i] - mean);
  const double inv = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
  for (index_t i = 0; i < n; ++i) f[i] = static_cast<float>((f[i] - mean) * inv);
}

// The front end alone: waveforms -> normalized log-mels [mels, frames] per utterance. Feature
// extraction, no gradient; utterances run in parallel (independent, so bitwise the same for any policy).
class audio_frontend {
 public:
  explicit audio_frontend(const audio_config& c) : cfg_(c), mel_(mel_config_of(c)) {}

  index_t mels() const { return cfg_.mels; }
  index_t frames(index_t samples) const { return mel_.frames(samples); }
  index_t min_samples() const { return mel_.min_samples(); }

  // One utterance into out[mels * frames(wave.size())].
  void compute(std::span<const float> wave, float* out) const {
    mel_.compute(wave, out);
    if (cfg_.normalize) normalize_utterance(out, cfg_.mels * frames(static_cast<index_t>(wave.size())), cfg_.norm_eps);
  }

  // A padded batch [B, samples] -> [B, mels, frames].
  template <class Exec = exec::default_policy>
  tensor<float> operator()(const tensor<float>& waves) const {
    if (waves.rank() != 2)
      throw shape_error("audio_frontend: waveforms must be [batch, samples], got " + waves.shape().str());
    const index_t B = waves.dim(0), L = waves.dim(1);
    return run<Exec>(B, L, [&](index_t b, std::vector<float>&) {
      return std::span<const float>(waves.data() + b * L, static_cast<std::size_t>(L));
    });
  }

  // Clips of any lengths, each zero-padded at the end to `samples` (0: the longest clip) -> [N, mels, frames].
  // Meant to run once over a whole dataset: training then slices batches of fixed features along axis 0.
  template <class Exec = exec::default_policy>
  tensor<float> operator()(const std::vector<std::vector<float>>& clips, index_t samples = 0) const {
    index_t longest = 0;
    for (const auto& c : clips) longest = std::max(longest, static_cast<index_t>(c.size()));
    if (samples == 0) samples = longest;
    if (longest > samples)
      throw std::invalid_argument("audio_frontend: a clip has " + std::to_string(longest) + " samples, more than the " +
                                  std::to_string(samples) + " to pad to");
    const auto L = static_cast<std::size_t>(samples);
    return run<Exec>(static_cast<index_t>(clips.size()), samples, [&](index_t i, std::vector<float>& scratch) {
      const auto& c = clips[static_cast<std::size_t>(i)];
      scratch.assign(L, 0.0f);
      std::copy(c.begin(), c.end(), scratch.begin());
      return std::span<const float>(scratch);
    });
  }

 private:
  // Fills [N, mels, frames(L)] from wave_of(i, scratch), utterances in parallel.
  template <class Exec, class Wave>
  tensor<float> run(index_t N, index_t L, Wave&& wave_of) const {
    if (N > 0 && L < min_samples())
      throw std::invalid_argument("audio_frontend: " + std::to_string(L) + " samples per utterance, at least " +
                                  std::to_string(min_samples()) + " are needed");
    const index_t per = cfg_.mels * frames(L);
    tensor<float> out({N, cfg_.mels, frames(L)});
    Exec::for_each(N, [&](index_t i) {
      std::vector<float> scratch;
      compute(wave_of(i, scratch), out.data() + i * per);
    });
    return out;
  }

  audio_config cfg_;
  hybrid::audio::log_mel<float> mel_;
};

// Features of a whole dataset at once (see audio_frontend); the encoder accepts the result directly.
template <class Exec = exec::default_policy>
tensor<float> precompute_features(const audio_config& c, const std::vector<std::vector<float>>& clips, index_t samples = 0) {
  return audio_frontend(c).template operator()<Exec>(clips, samples);
}

// The runtime-configured model; `audio<cfg>` below fixes the configuration at compile time.
// Input (dense_input.values), by rank:
//   [B, samples]      waveforms at config.sample_rate, all padded to the same length (zeros at the end;
//                     padding is part of the utterance statistics and of the average pool);
//   [B, mels, frames] precomputed features: the output of features() / precompute_features().
// Output: pooled [B, width] only (sequence_output = false).
// Parameters: conv.{i}.weight [channels, in, kernel], conv.{i}.bias, proj.weight [width, channels], proj.bias.
template <class T = float>
class audio_model {
 public:
  using value_type = T;
  using input_type = dense_input;

  audio_model() : audio_model(audio_config{}) {}
  explicit audio_model(const audio_config& c);

  const audio_config& config() const { return cfg_; }
  index_t width() const { return cfg_.width; }
  const audio_frontend& frontend() const { return frontend_; }
  // The fewest frames the conv stack accepts: one left after layers - 1 pools.
  index_t min_frames() const {
    index_t f = 1;
    for (index_t i = 1; i < cfg_.layers; ++i) f *= cfg_.pool;
    return f;
  }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    for (std::size_t i = 0; i < conv_weight_.size(); ++i) {
      const std::string p = join_name(prefix, "conv." + std::to_string(i));
      f(join_name(p, "weight"), conv_weight_[i]);
      f(join_name(p, "bias"), conv_bias_[i]);
    }
    proj_.visit(join_name(prefix, "proj"), f);
  }
  // PyTorch's defaults (nn.Conv1d and nn.Linear): uniform with bound 1 / sqrt(fan_in) for weights and biases.
  void init(std::mt19937& rng) {
    for (std::size_t i = 0; i < conv_weight_.size(); ++i) {
      const auto& s = conv_weight_[i].shape();
      const double bound = 1.0 / std::sqrt(static_cast<double>(s[1] * s[2]));
      init_uniform(conv_weight_[i], rng, bound);
      init_uniform(conv_bias_[i], rng, bound);
    }
    proj_.init(rng);
  }

  // Waveforms [B, samples] -> features [B, mels, frames], as the encoder computes them.
  template <class Exec = exec::default_policy>
  tensor<float> features(const tensor<float>& waves) const {
    return frontend_.template operator()<Exec>(waves);
  }

  encoded<T> operator()(const dense_input& in, dropout_rng& rng, bool training = false) const;

 private:
  encoded<T> encode(const tensor<float>& feats, dropout_rng& rng, bool training) const {
    const hybrid::shape& s = feats.shape();
    if (s[1] != cfg_.mels)
      throw shape_error("audio", "features", s, "conv.0.weight", conv_weight_[0].shape(), "mel bins must equal the input channels");
    if (s[2] < min_frames())
      throw shape_error("audio", "features", s, "conv.0.weight", conv_weight_[0].shape(),
                        std::to_string(s[2]) + " frames, the conv stack's pooling needs at least " + std::to_string(min_frames()));
    var<T> h = make_result<T>(s, false);
    std::copy(feats.begin(), feats.end(), h.data());
    const conv_options same{.stride = 1, .padding = cfg_.kernel / 2};
    for (std::size_t i = 0; i < conv_weight_.size(); ++i) {
      h = relu(conv1d(h, conv_weight_[i].use(), conv_bias_[i].use(), same));
      if (i + 1 < conv_weight_.size() && cfg_.pool > 1) h = max_pool1d(h, cfg_.pool);
    }
    return {var<T>(), proj_(dropout(global_avg_pool(h), cfg_.dropout, rng, training))};
  }

  audio_config cfg_;
  audio_frontend frontend_;
  std::vector<parameter<T>> conv_weight_, conv_bias_;
  layers::linear<T> proj_;
};

// Outside the class: prebuilt for float with HYBRID_COMPILED (core/compiled.hpp).
template <class T>
audio_model<T>::audio_model(const audio_config& c) : cfg_(c), frontend_(c), proj_(c.channels, c.width) {
  if (c.layers < 1 || c.channels < 1 || c.width < 1 || c.pool < 1 || c.kernel < 1 || c.kernel % 2 == 0)
    throw std::invalid_argument("audio: need layers, channels, width, pool >= 1 and an odd kernel");
  if (!(c.dropout >= 0 && c.dropout <= 1)) throw std::invalid_argument("audio: dropout must be in [0, 1]");
  for (index_t i = 0; i < c.layers; ++i) {
    conv_weight_.emplace_back("weight", hybrid::shape{c.channels, i == 0 ? c.mels : c.channels, c.kernel});
    conv_bias_.emplace_back("bias", hybrid::shape{c.channels});
  }
  std::mt19937 rng(42);
  init(rng);
  assign_names(*this);
}

template <class T>
encoded<T> audio_model<T>::operator()(const dense_input& in, dropout_rng& rng, bool training) const {
  const tensor<float>& v = in.values;
  if (v.rank() == 2) return encode(features(v), rng, training);
  if (v.rank() == 3) return encode(v, rng, training);
  throw shape_error("audio: input must be waveforms [batch, samples] or features [batch, mels, frames], got " +
                    v.shape().str());
}

HYBRID_EXTERN_FLOAT(class audio_model<float>)
HYBRID_EXTERN_FLOAT(tensor<float> precompute_features<exec::tbb>(const audio_config&,
                                                                 const std::vector<std::vector<float>>&, index_t))

// The compile-time form, for static composition (`model<encoders<modality<"speech", enc::audio<cfg>>>, ...>`).
template <audio_config Config, class T = float>
class audio : public audio_model<T> {
 public:
  static constexpr index_t width = Config.width;
  static constexpr bool sequence_output = false;
  static constexpr audio_config config_value = Config;
  audio() : audio_model<T>(Config) {}
};

}  // namespace hybrid::enc
