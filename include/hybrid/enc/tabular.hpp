// The tabular encoder: an MLP over a feature vector [B, F] -> [B, width], with optional input
// standardization by statistics computed once from the training data.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "hybrid/enc/encoder.hpp"
#include "hybrid/layers/mlp.hpp"

namespace hybrid::enc {

// `layers` linear layers in all: features -> hidden -> ... -> hidden -> width (layers = 1: features -> width).
// Every layer is linear -> activation -> dropout, the last included: the output is a feature vector.
struct tabular_config {
  index_t features = 4;
  index_t hidden = 64;
  index_t layers = 2;
  index_t width = 64;
  double dropout = 0.1;
  layers::activation activation = layers::activation::relu;
};

// Per-feature mean and standard deviation; the encoder applies (x - mean) / std before its first layer.
struct standardization {
  std::vector<float> mean, std;
  bool empty() const { return mean.empty(); }
};

// Statistics of data [N, F] (population std, as scikit-learn's StandardScaler). A constant feature gets
// std 1, so it maps to 0 instead of dividing by zero.
inline standardization compute_standardization(const tensor<float>& data) {
  if (data.rank() != 2 || data.dim(0) == 0)
    throw shape_error("compute_standardization: data must be [samples > 0, features], got " + data.shape().str());
  const index_t N = data.dim(0), F = data.dim(1);
  std::vector<double> sum(static_cast<std::size_t>(F)), sq(static_cast<std::size_t>(F));
  for (index_t n = 0; n < N; ++n)
    for (index_t f = 0; f < F; ++f) sum[static_cast<std::size_t>(f)] += data(n, f);
  standardization s;
  for (index_t f = 0; f < F; ++f) {
    const double m = sum[static_cast<std::size_t>(f)] / static_cast<double>(N);
    for (index_t n = 0; n < N; ++n) sq[static_cast<std::size_t>(f)] += (data(n, f) - m) * (data(n, f) - m);
    const double sd = std::sqrt(sq[static_cast<std::size_t>(f)] / static_cast<double>(N));
    s.mean.push_back(static_cast<float>(m));
    s.std.push_back(sd > 1e-12 ? static_cast<float>(sd) : 1.0f);
  }
  return s;
}

// The runtime-configured model; `tabular<cfg>` below fixes the configuration at compile time.
// Parameters: layers.0.weight, layers.0.bias, ..., layers.{L-1}.bias. The standardization statistics are
// data, not parameters: they are not visited (so no optimizer touches them) and are saved with the data.
template <class T = float>
class tabular_model {
 public:
  using value_type = T;
  using input_type = dense_input;

  tabular_model() : tabular_model(tabular_config{}) {}
  explicit tabular_model(const tabular_config& c) : cfg_(c), mlp_(sizes(c), {.act = c.activation, .dropout = c.dropout, .activate_last = true}) {
    std::mt19937 rng(42);
    init(rng);
    assign_names(*this);
  }

  const tabular_config& config() const { return cfg_; }
  index_t width() const { return cfg_.width; }
  layers::mlp<T>& mlp() { return mlp_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    mlp_.visit(prefix, f);
  }
  // PyTorch's nn.Linear default.
  void init(std::mt19937& rng) { mlp_.init(rng); }

  void set_standardization(standardization s) {
    if (!s.empty() && (static_cast<index_t>(s.mean.size()) != cfg_.features || s.std.size() != s.mean.size()))
      throw shape_error("tabular: standardization for " + std::to_string(s.mean.size()) + " features, the encoder has " +
                        std::to_string(cfg_.features));
    for (float sd : s.std)
      if (!(sd > 0)) throw std::invalid_argument("tabular: standardization std must be positive");
    stats_ = std::move(s);
  }
  const standardization& get_standardization() const { return stats_; }

  // values [B, features] -> pooled [B, width]; no sequence.
  encoded<T> operator()(const dense_input& in, dropout_rng& rng, bool training = false) const {
    const tensor<float>& x = in.values;
    if (x.rank() != 2 || x.dim(1) != cfg_.features)
      throw shape_error("tabular", "input", x.shape(), "features", hybrid::shape{cfg_.features},
                        "input must be [batch, features]");
    var<T> v = make_result<T>(x.shape(), false);
    T* p = v.data();
    const index_t F = cfg_.features;
    for (index_t i = 0; i < x.numel(); ++i)
      p[i] = stats_.empty() ? T(x[i])
                            : (T(x[i]) - T(stats_.mean[static_cast<std::size_t>(i % F)])) / T(stats_.std[static_cast<std::size_t>(i % F)]);
    return {var<T>(), mlp_(v, rng, training)};
  }

 private:
  static std::vector<index_t> sizes(const tabular_config& c) {
    if (c.layers < 1) throw std::invalid_argument("tabular: layers must be >= 1");
    std::vector<index_t> s{c.features};
    for (index_t i = 1; i < c.layers; ++i) s.push_back(c.hidden);
    s.push_back(c.width);
    return s;
  }

  tabular_config cfg_;
  layers::mlp<T> mlp_;
  standardization stats_;
};

// The compile-time form, for static composition (`model<encoders<modality<"table", enc::tabular<cfg>>>, ...>`).
template <tabular_config Config, class T = float>
class tabular : public tabular_model<T> {
 public:
  static constexpr index_t width = Config.width;
  static constexpr bool sequence_output = false;
  static constexpr tabular_config config_value = Config;
  tabular() : tabular_model<T>(Config) {}
};

}  // namespace hybrid::enc
