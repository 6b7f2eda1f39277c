// Convolution layers: conv2d and conv1d as modules holding their weight and bias (PyTorch's Conv2d / Conv1d
// layout and default initialisation) around the im2col + GEMM ops of ops/conv.hpp.
#pragma once
#include <cmath>
#include <random>
#include <string>

#include "hybrid/layers/module.hpp"
#include "hybrid/ops/conv.hpp"

namespace hybrid::layers {

// Spatial rank 2: x [B, in, H, W] -> [B, out, Ho, Wo], weight [out, in, k, k]. Rank 1: x [B, in, L] -> [B, out, Lo],
// weight [out, in, k]. Parameters: weight, bias.
template <int SpatialRank, class T = float>
class conv {
  static_assert(SpatialRank == 1 || SpatialRank == 2, "layers::conv: 1 (conv1d) or 2 (conv2d) spatial axes");
  static hybrid::shape weight_shape(index_t in, index_t out, index_t k) {
    return SpatialRank == 2 ? hybrid::shape{out, in, k, k} : hybrid::shape{out, in, k};
  }

 public:
  using value_type = T;
  conv() = default;
  conv(index_t in_channels, index_t out_channels, index_t kernel, conv_options o = {})
      : weight_("weight", weight_shape(in_channels, out_channels, kernel)), bias_("bias", {out_channels}), opt_(o) {}

  index_t in_channels() const { return weight_.shape()[1]; }
  index_t out_channels() const { return weight_.shape()[0]; }
  parameter<T>& weight() { return weight_; }
  parameter<T>& bias() { return bias_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "weight"), weight_);
    f(join_name(prefix, "bias"), bias_);
  }
  // PyTorch's default: kaiming-uniform weights and bias, bound 1/sqrt(fan_in), fan_in = in * kernel volume.
  void init(std::mt19937& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight_.numel() / out_channels()));
    init_uniform(weight_, rng, bound);
    init_uniform(bias_, rng, bound);
  }

  var<T> operator()(const var<T>& x) const {
    if constexpr (SpatialRank == 2) return conv2d(x, weight_.use(), bias_.use(), opt_);
    else return conv1d(x, weight_.use(), bias_.use(), opt_);
  }

 private:
  parameter<T> weight_, bias_;
  conv_options opt_;
};

template <class T = float>
using conv2d_layer = conv<2, T>;
template <class T = float>
using conv1d_layer = conv<1, T>;

}  // namespace hybrid::layers
