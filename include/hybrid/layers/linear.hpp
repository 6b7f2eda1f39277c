// linear: y = x W^T + b with W stored [out, in] as PyTorch does (so checkpoints load unchanged).
// Applies to the last axis of x of any rank; the bias add is fused into one elementwise pass.
#pragma once
#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/matmul.hpp"

namespace hybrid::layers {

template <class T = float>
class linear {
 public:
  using value_type = T;

  linear() = default;
  linear(index_t in, index_t out, bool bias = true)
      : in_(in), out_(out), weight_("weight", {out, in}), has_bias_(bias) {
    if (bias) bias_ = parameter<T>("bias", {out});
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  parameter<T>& weight() { return weight_; }
  parameter<T>& bias() { return bias_; }
  bool has_bias() const { return has_bias_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "weight"), weight_);
    if (has_bias_) f(join_name(prefix, "bias"), bias_);
  }
  // PyTorch's default: kaiming-uniform weights (bound 1/sqrt(in)), the same bound for the bias.
  void init(std::mt19937& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<index_t>(in_, 1)));
    init_uniform(weight_, rng, bound);
    if (has_bias_) init_uniform(bias_, rng, bound);
  }
  // BERT's recipe: N(0, 0.02) weights, zero bias.
  void init_bert(std::mt19937& rng, double stddev = 0.02) {
    init_normal(weight_, rng, stddev);
    if (has_bias_) init_constant(bias_, 0.0);
  }

  var<T> operator()(const var<T>& x) const {
    if (x.rank() == 0 || x.dim(-1) != in_)
      throw shape_error("linear", "input", x.shape(), "weight [out, in]", weight_.shape(), "last axis must be in");
    var<T> y = matmul(x, weight_.use(), {.b = true});
    if (!has_bias_) return y;
    return y + bias_;
  }
  // y = act(x W^T + b): the bias and the activation fuse into one loop.
  template <class Activation>
  var<T> operator()(const var<T>& x, Activation act) const {
    if (x.rank() == 0 || x.dim(-1) != in_)
      throw shape_error("linear", "input", x.shape(), "weight [out, in]", weight_.shape(), "last axis must be in");
    var<T> y = matmul(x, weight_.use(), {.b = true});
    if (!has_bias_) return act(y);
    return act(y + bias_);
  }

 private:
  index_t in_ = 0, out_ = 0;
  parameter<T> weight_;
  parameter<T> bias_;
  bool has_bias_ = true;
};

}  // namespace hybrid::layers
