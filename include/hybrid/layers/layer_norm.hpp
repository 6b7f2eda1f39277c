// layer_norm module: LayerNorm over the last axis with learned scale and shift, named as PyTorch
// (`weight`, `bias`); BERT checkpoints' legacy `gamma`/`beta` are mapped by the loader.
#pragma once
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/layer_norm.hpp"

namespace hybrid::layers {

template <class T = float>
class layer_norm {
 public:
  using value_type = T;
  layer_norm() = default;
  explicit layer_norm(index_t width, double eps = 1e-5) : eps_(eps), weight_("weight", {width}), bias_("bias", {width}) {
    init_constant(weight_, 1.0);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "weight"), weight_);
    f(join_name(prefix, "bias"), bias_);
  }
  void init() {
    init_constant(weight_, 1.0);
    init_constant(bias_, 0.0);
  }
  double eps() const { return eps_; }
  var<T> operator()(const var<T>& x) const { return hybrid::layer_norm(x, weight_.use(), bias_.use(), static_cast<T>(eps_)); }

 private:
  double eps_ = 1e-5;
  parameter<T> weight_, bias_;
};

}  // namespace hybrid::layers
