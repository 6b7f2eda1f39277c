// mlp: a stack of linear layers named layers.0, layers.1, ... (torch.nn.Sequential-style indices), each
// but the last followed by an activation and dropout. Shared by the tabular encoder and the heads.
#pragma once
#include <initializer_list>
#include <stdexcept>
#include <vector>

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/dropout.hpp"

namespace hybrid::layers {

// act(x W^T + b) through the layer's fused path for the chosen activation (layers::activation, declared with
// fused_linear). With `rng`, the layer runs in the given mode (a LoRA adapter's dropout draws from rng in
// training mode).
template <class T>
var<T> linear_activation(const linear<T>& layer, const var<T>& x, activation act, dropout_rng* rng = nullptr,
                         bool training = false) {
  return layer.apply(x, act, rng, training);
}

struct mlp_options {
  activation act = activation::relu;
  double dropout = 0;
  // true: the last layer too is linear -> activation -> dropout (a feature extractor);
  // false: the last layer is a plain linear map (logits, regression outputs).
  bool activate_last = false;
};

template <class T = float>
class mlp {
 public:
  using value_type = T;

  mlp() = default;
  // sizes = {in, hidden..., out}: sizes.size() - 1 linear layers.
  explicit mlp(const std::vector<index_t>& sizes, mlp_options opt = {}) : opt_(opt) {
    if (sizes.size() < 2) throw std::invalid_argument("mlp: needs at least {in, out} sizes");
    if (!(opt.dropout >= 0 && opt.dropout <= 1)) throw std::invalid_argument("mlp: dropout must be in [0, 1]");
    for (index_t s : sizes)
      if (s < 1) throw std::invalid_argument("mlp: every size must be positive");
    layers_.reserve(sizes.size() - 1);
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) layers_.emplace_back(sizes[i], sizes[i + 1]);
  }
  mlp(std::initializer_list<index_t> sizes, mlp_options opt = {}) : mlp(std::vector<index_t>(sizes), opt) {}

  index_t in_features() const { return layers_.empty() ? 0 : layers_.front().in_features(); }
  index_t out_features() const { return layers_.empty() ? 0 : layers_.back().out_features(); }
  std::size_t depth() const { return layers_.size(); }
  const mlp_options& options() const { return opt_; }
  linear<T>& layer(std::size_t i) { return layers_.at(i); }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    for (std::size_t i = 0; i < layers_.size(); ++i) layers_[i].visit(join_name(prefix, "layers." + std::to_string(i)), f);
  }
  // PyTorch's nn.Linear default for every layer.
  void init(std::mt19937& rng) {
    for (auto& l : layers_) l.init(rng);
  }

  // x [..., in] -> [..., out]; dropout is active only when training.
  var<T> operator()(const var<T>& x, dropout_rng& rng, bool training) const {
    if (layers_.empty()) throw std::logic_error("mlp: default-constructed (no layers)");
    var<T> h = x;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const bool last = i + 1 == layers_.size();
      if (last && !opt_.activate_last) return layers_[i](h);
      h = dropout(linear_activation(layers_[i], h, opt_.act), opt_.dropout, rng, training);
    }
    return h;
  }
  // Inference: no dropout.
  var<T> operator()(const var<T>& x) const {
    dropout_rng unused;
    return (*this)(x, unused, false);
  }

 private:
  mlp_options opt_;
  std::vector<linear<T>> layers_;
};

}  // namespace hybrid::layers
