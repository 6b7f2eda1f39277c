// linear: y = x W^T + b with W stored [out, in] as PyTorch does (so checkpoints load unchanged).
// Applies to the last axis of x of any rank; the bias add is fused into one elementwise pass (in inference, into
// the product itself: fused_linear). It may carry a LoRA adapter (layers/lora.hpp), whose term joins that pass.
#pragma once
#include <optional>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/layers/lora.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/fused_linear.hpp"
#include "hybrid/ops/matmul.hpp"

namespace hybrid::layers {

using hybrid::activation;

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
    if (lora_) lora_->visit(prefix, f);
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

  var<T> operator()(const var<T>& x) const { return apply(x, activation::identity); }
  // y = act(x W^T + b): the bias and the activation fuse into one loop.
  template <class Activation>
  var<T> operator()(const var<T>& x, Activation act) const {
    return forward(x, act, nullptr, false);
  }
  // The same with the layer's mode: a LoRA adapter's dropout draws from rng in training mode.
  var<T> operator()(const var<T>& x, dropout_rng& rng, bool training) const {
    return apply(x, activation::identity, &rng, training);
  }
  template <class Activation>
  var<T> operator()(const var<T>& x, Activation act, dropout_rng& rng, bool training) const {
    return forward(x, act, &rng, training);
  }
  // act(x W^T + b) + residual (residual: the output's shape, or null), the activation chosen at run time. When
  // nothing needs a gradient (inference): one product whose bias, activation and residual are applied while its
  // output is in cache (fused_linear); else the elementwise expression on the tape, as above. With `rng`, the
  // layer runs in the given mode.
  var<T> apply(const var<T>& x, activation act, dropout_rng* rng = nullptr, bool training = false,
               const var<T>* residual = nullptr) const {
    check_input(x);
    // A parameter's leaf needs a gradient exactly when the tape records and the parameter is trainable.
    const bool needs_tape = tape::current().recording() &&
                            (x.requires_grad() || weight_.trainable() || (has_bias_ && bias_.trainable()) ||
                             (residual && residual->requires_grad()));
    if (!needs_tape && (!lora_ || lora_->merged())) {
      const var<T> w = weight_.use();
      const var<T> b = has_bias_ ? bias_.use() : var<T>{};
      return fused_linear(x, w, has_bias_ ? &b : nullptr, act, residual);
    }
    const var<T> y = forward_activation(x, act, rng, training);
    return residual ? y + *residual : y;
  }

  // LoRA: y = x W^T + b + scale (dropout(x) A^T) B^T until merge() folds scale B A into W (unmerge() takes it out).
  // The adapter is named after the layer: "<layer>.weight" gives "<layer>.lora_A.weight" and "<layer>.lora_B.weight".
  lora_adapter<T>& add_lora(const lora_options& o, std::mt19937& rng) {
    lora_.emplace(in_, out_, o);
    lora_->init(rng);
    const std::string& w = weight_.name();
    lora_->visit(w.ends_with(".weight") ? w.substr(0, w.size() - 7) : std::string(),
                 [](const std::string& n, parameter<T>& p) { p.set_name(n); });
    return *lora_;
  }
  lora_adapter<T>* lora() { return lora_ ? &*lora_ : nullptr; }
  const lora_adapter<T>* lora() const { return lora_ ? &*lora_ : nullptr; }
  void remove_lora() { lora_.reset(); }
  void merge() { adapter("merge").merge(weight_.value()); }
  void unmerge() { adapter("unmerge").unmerge(weight_.value()); }

 private:
  struct identity {
    template <class E>
    E operator()(const E& e) const {
      return e;
    }
  };
  void check_input(const var<T>& x) const {
    if (x.rank() == 0 || x.dim(-1) != in_)
      throw shape_error("linear", "input", x.shape(), "weight [out, in]", weight_.shape(), "last axis must be in");
  }
  // The expression path, the activation picked at run time.
  var<T> forward_activation(const var<T>& x, activation act, dropout_rng* rng, bool training) const {
    switch (act) {
      case activation::relu: return forward(x, [](const auto& z) { return relu(z); }, rng, training);
      case activation::gelu: return forward(x, [](const auto& z) { return gelu(z); }, rng, training);
      case activation::gelu_tanh: return forward(x, [](const auto& z) { return gelu_tanh(z); }, rng, training);
      case activation::tanh: return forward(x, [](const auto& z) { return tanh(z); }, rng, training);
      case activation::sigmoid: return forward(x, [](const auto& z) { return sigmoid(z); }, rng, training);
      case activation::identity: break;
    }
    return forward(x, identity{}, rng, training);
  }
  template <class Activation>
  var<T> forward(const var<T>& x, Activation act, dropout_rng* rng, bool training) const {
    check_input(x);
    var<T> y = matmul(x, weight_.use(), {.b = true});
    if (lora_ && !lora_->merged()) {
      const var<T> d = lora_->delta(x, rng, training);
      if (has_bias_) return act(y + d * lora_->scale() + bias_);
      return act(y + d * lora_->scale());
    }
    if (has_bias_) return act(y + bias_);
    return act(y);
  }
  lora_adapter<T>& adapter(const char* op) {
    if (!lora_) throw std::logic_error(std::string("linear::") + op + ": the layer has no LoRA adapter");
    return *lora_;
  }

  index_t in_ = 0, out_ = 0;
  parameter<T> weight_;
  parameter<T> bias_;
  bool has_bias_ = true;
  std::optional<lora_adapter<T>> lora_;
};

}  // namespace hybrid::layers
