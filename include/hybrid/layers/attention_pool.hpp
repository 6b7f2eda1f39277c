// Attention pooling over a sequence: a learned query scores each token, a softmax over the real (unpadded)
// tokens gives weights, and the output is the weighted mean of the tokens: [B, T, W] -> [B, W].
#pragma once
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/matmul.hpp"
#include "hybrid/ops/shape_ops.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid::layers {

// Yang et al. (2016)'s attention pooling: u_t = tanh(W x_t + b) [hidden], s_t = q . u_t,
// alpha = softmax over the sample's real tokens of s, out = sum_t alpha_t x_t. Unlike [CLS] or mean pooling
// it learns which tokens matter, and the weights of the last call can be read (an explanation per token).
// Padding tokens get exactly zero weight; a sample with no real token gets a zero output.
// Parameters: proj.{weight,bias} [hidden, width], query [hidden].
template <class T = float>
class attention_pool {
 public:
  using value_type = T;
  attention_pool() = default;
  explicit attention_pool(index_t width, index_t hidden = 0)
      : proj_(width, hidden > 0 ? hidden : width), query_("query", {hidden > 0 ? hidden : width}) {}

  index_t width() const { return proj_.in_features(); }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    proj_.visit(join_name(prefix, "proj"), f);
    f(join_name(prefix, "query"), query_);
  }
  void init(std::mt19937& rng) {
    proj_.init(rng);
    init_uniform(query_, rng, 1.0 / std::sqrt(static_cast<double>(query_.numel())));
  }

  // x [B, T, width]; keep: B * T flags (nonzero = a real token) or empty (every token real).
  var<T> operator()(const var<T>& x, std::span<const float> keep = {}) const {
    if (x.rank() != 3 || x.dim(2) != width())
      throw shape_error("attention_pool: input " + x.shape().str() + " is not [B, T, " + std::to_string(width()) + "]");
    const index_t B = x.dim(0), L = x.dim(1);
    if (!keep.empty() && static_cast<index_t>(keep.size()) != B * L)
      throw shape_error("attention_pool", "input", x.shape(), "keep mask",
                        hybrid::shape{static_cast<index_t>(keep.size())}, "one flag per token");
    const index_t H = query_.numel();
    const var<T> u = proj_.apply(x, activation::tanh);                       // [B, T, H]
    const var<T> scores = reshape(matmul(u, reshape(query_.use(), {H, 1})), {B, L});          // [B, T]
    var<T> mask;
    if (!keep.empty()) {
      mask = make_result<T>({B, L}, false);
      for (index_t i = 0; i < B * L; ++i)
        mask.data()[i] = keep[static_cast<std::size_t>(i)] != 0 ? T(0) : -std::numeric_limits<T>::infinity();
    }
    const var<T> alpha = softmax(scores, mask);
    weights_ = alpha.value();
    return reshape(matmul(reshape(alpha, {B, 1, L}), x), {B, width()});
  }

  // The weights of the last call, [B, T] (rows sum to 1 over real tokens). Not thread-safe to read while
  // another thread runs the layer.
  const tensor<T>& weights() const { return weights_; }

 private:
  linear<T> proj_;
  parameter<T> query_;
  mutable tensor<T> weights_;
};

}  // namespace hybrid::layers
