// A small CNN image encoder: [conv3x3 -> ReLU -> conv3x3 -> ReLU -> maxpool 2] x blocks, global average
// pooling, then a linear projection (no activation) to the output width. Pooled output only.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/core/compiled.hpp"
#include "hybrid/enc/encoder.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/conv.hpp"
#include "hybrid/ops/pool.hpp"

namespace hybrid::enc {

struct conv_image_config {
  index_t size = 32;      // H = W of the input images
  index_t channels = 3;   // input channels
  index_t width = 256;    // output features
  index_t base = 32;      // channels of the first block; block i has base * 2^i
  index_t blocks = 2;     // each halves H and W
  double dropout = 0.0;   // on the pooled features, before the projection
};

// Throws unless s is a batch of images [B, channels, size, size].
inline void check_images(const char* op, const hybrid::shape& s, index_t channels, index_t size) {
  if (s.rank() != 4 || s[1] != channels || s[2] != size || s[3] != size)
    throw shape_error(op, "images", s, "expected [B, C, H, W]", hybrid::shape{s.rank() > 0 ? s[0] : 0, channels, size, size},
                      "images must be a batch [B, channels, size, size]");
}

// The images of a dense_input as a constant [B, channels, size, size] on the tape (copied, and converted
// to T: backward of the first convolution reads it after the caller's tensor may be gone).
template <class T>
var<T> image_batch(const char* op, const dense_input& in, index_t channels, index_t size) {
  const hybrid::shape& s = in.values.shape();
  check_images(op, s, channels, size);
  var<T> x = make_result<T>(s, false);
  std::copy(in.values.begin(), in.values.end(), x.data());
  return x;
}

template <class T = float>
class conv_image_model {
 public:
  using value_type = T;
  using input_type = dense_input;

  conv_image_model() : conv_image_model(conv_image_config{}) {}
  explicit conv_image_model(const conv_image_config& c);

  const conv_image_config& config() const { return cfg_; }
  index_t width() const { return cfg_.width; }

  // blocks.{i}.conv1.{weight, bias}, blocks.{i}.conv2.{weight, bias}, proj.{weight, bias}
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    for (std::size_t i = 0; i < convs_.size(); ++i) {
      const std::string name = join_name(prefix, "blocks." + std::to_string(i / 2) + (i % 2 ? ".conv2" : ".conv1"));
      f(join_name(name, "weight"), convs_[i].weight);
      f(join_name(name, "bias"), convs_[i].bias);
    }
    proj_.visit(join_name(prefix, "proj"), f);
  }
  // torchvision's recipe for ReLU CNNs: He-normal conv weights, std sqrt(2 / fan_out) with
  // fan_out = out_channels * 9, zero conv biases; the projection keeps nn.Linear's default. (nn.Conv2d's
  // own default, uniform(+-1/sqrt(fan_in)), shrinks the signal ~3x per layer: plain SGD then stalls.)
  void init(std::mt19937& rng) {
    for (auto& c : convs_) {
      init_normal(c.weight, rng, std::sqrt(2.0 / static_cast<double>(c.weight.shape()[0] * 9)));
      init_constant(c.bias, 0.0);
    }
    proj_.init(rng);
  }

  encoded<T> operator()(const dense_input& in, dropout_rng& rng, bool training = false) const;
  // The images as a var [B, channels, size, size]: a parameter or any computed value, so that gradients reach
  // the pixels (saliency maps, adversarial examples, images produced by another network).
  encoded<T> operator()(const var<T>& images, dropout_rng& rng, bool training = false) const;

 private:
  struct conv {
    parameter<T> weight, bias;
  };
  conv_image_config cfg_;
  std::vector<conv> convs_;
  layers::linear<T> proj_;
};

// Outside the class: prebuilt for float with HYBRID_COMPILED (core/compiled.hpp).
template <class T>
conv_image_model<T>::conv_image_model(const conv_image_config& c) : cfg_(c) {
  if (c.size < 1 || c.channels < 1 || c.width < 1 || c.base < 1 || c.blocks < 1 || (c.size >> c.blocks) < 1)
    throw std::invalid_argument("conv_image: size " + std::to_string(c.size) + " cannot be halved " +
                                std::to_string(c.blocks) + " times, or a size is not positive");
  index_t in = c.channels;
  for (index_t b = 0; b < c.blocks; ++b) {
    const index_t out = c.base << b;
    convs_.push_back({parameter<T>("weight", {out, in, 3, 3}), parameter<T>("bias", {out})});
    convs_.push_back({parameter<T>("weight", {out, out, 3, 3}), parameter<T>("bias", {out})});
    in = out;
  }
  proj_ = layers::linear<T>(in, c.width);
  std::mt19937 rng(42);
  init(rng);
  assign_names(*this);
}

template <class T>
encoded<T> conv_image_model<T>::operator()(const dense_input& in, dropout_rng& rng, bool training) const {
  return (*this)(image_batch<T>("conv_image", in, cfg_.channels, cfg_.size), rng, training);
}
template <class T>
encoded<T> conv_image_model<T>::operator()(const var<T>& images, dropout_rng& rng, bool training) const {
  check_images("conv_image", images.shape(), cfg_.channels, cfg_.size);
  var<T> x = images;
  for (std::size_t i = 0; i < convs_.size(); ++i) {
    x = conv2d(x, convs_[i].weight.use(), convs_[i].bias.use(), {.padding = 1, .relu = true});
    if (i % 2) x = max_pool2d(x, 2);
  }
  const var<T> pooled = dropout(global_avg_pool(x), cfg_.dropout, rng, training);
  return {var<T>{}, proj_(pooled)};
}

HYBRID_EXTERN_FLOAT(class conv_image_model<float>)

// The compile-time form: enc::conv_image<enc::conv_image_config{.size = 32, .width = 256}> (GCC also takes
// conv_image<{...}>; clang 14 needs the type named).
template <conv_image_config Config, class T = float>
class conv_image : public conv_image_model<T> {
 public:
  static constexpr index_t width = Config.width;
  static constexpr bool sequence_output = false;
  static constexpr conv_image_config config_value = Config;
  conv_image() : conv_image_model<T>(Config) {}
};

}  // namespace hybrid::enc
