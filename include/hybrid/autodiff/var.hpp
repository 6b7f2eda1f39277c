// var<T>: the handle users compute with; a pointer to a node on the current thread's tape.
// Valid until the tape resets (the first allocation after the next backward pass).
#pragma once
#include <concepts>
#include <span>
#include <string>

#include "hybrid/autodiff/tape.hpp"
#include "hybrid/core/tensor.hpp"

namespace hybrid {

struct expression_base;
template <class E>
concept expression = std::derived_from<E, expression_base>;

template <class T>
class var {
 public:
  using value_type = T;

  var() = default;
  explicit var(node<T>* n) : node_(n) {}
  // Evaluates an elementwise expression (defined in elementwise.hpp, where expressions come from).
  template <class E>
    requires expression<E>
  var(const E& e);  // NOLINT: implicit on purpose, `var<float> y = gelu(x * w + b);`

  const hybrid::shape& shape() const { return node_->shape; }
  index_t numel() const { return node_->shape.numel(); }
  index_t dim(int axis) const { return node_->shape.dim(axis); }
  int rank() const { return node_->shape.rank(); }
  bool requires_grad() const { return node_->needs_grad; }
  bool valid() const { return node_ != nullptr; }

  T* data() const { return node_->value; }
  // The adjoint to write into (a seed, an upstream gradient): allocated at the first call; null when no
  // gradient is needed, after the adjoint was released, or on a spent tape.
  T* grad_data() const { return tape::current().adjoint(node_); }
  std::span<const T> values() const { return {node_->value, static_cast<std::size_t>(numel())}; }
  // The gradient as it stands; empty when none arrived. After a backward pass only leaves' (parameters')
  // and retain_grad() values' gradients are kept: the others were released as soon as they were consumed.
  std::span<const T> grads() const {
    const T* g = tape::current().existing_adjoint(node_);
    return {g, g ? static_cast<std::size_t>(numel()) : std::size_t{0}};
  }
  // Keeps this intermediate value's adjoint readable after backward (PyTorch's retain_grad).
  const var& retain_grad() const {
    (node_->base ? node_->base : node_)->retain_grad = true;
    return *this;
  }
  T operator[](index_t i) const { return node_->value[i]; }
  T item() const {
    if (numel() != 1) throw shape_error("var::item: needs one element, shape is " + shape().str());
    return node_->value[0];
  }
  // Copies out of the tape, for results that must outlive the step.
  tensor<T> value() const { return tensor<T>::from(shape(), values()); }
  Eigen::Map<const row_matrix<T>> matrix() const { return {node_->value, shape().rows(), shape().cols()}; }

  node<T>* get() const { return node_; }

  // Reverse pass from this scalar: adds d(this)/dx to the gradient of every leaf x.
  // With `retain`, the graph stays usable for another pass (call tape::zero_adjoints() between).
  void backward(bool retain = false) const {
    if (numel() != 1) throw shape_error("backward: the loss must have one element, shape is " + shape().str());
    if (!requires_grad())
      throw std::logic_error("backward: the loss does not depend on anything that requires a gradient");
    T* seed = tape::current().adjoint(node_);
    if (!seed) throw std::logic_error("backward: the tape was spent by an earlier backward pass (backward(true) retains it)");
    seed[0] += T(1);
    tape::current().run_backward(retain);
  }

 private:
  node<T>* node_ = nullptr;
};

// A constant input copied onto the tape (no gradient).
template <class T>
var<T> constant(const tensor<T>& t) {
  auto* n = tape::current().make_node<T>(t.shape(), false);
  std::copy(t.begin(), t.end(), n->value);
  return var<T>(n);
}
template <class T>
var<T> constant(const hybrid::shape& s, T fill) {
  auto* n = tape::current().make_node<T>(s, false);
  std::fill_n(n->value, s.numel(), fill);
  return var<T>(n);
}

// An uninitialised result of an op; `needs_grad` says whether any input requires a gradient.
template <class T>
var<T> make_result(const hybrid::shape& s, bool needs_grad) {
  return var<T>(tape::current().make_node<T>(s, needs_grad));
}

template <class T, class... V>
bool any_requires_grad(const var<T>& first, const V&... rest) {
  return first.requires_grad() || (rest.requires_grad() || ...);
}

}  // namespace hybrid
