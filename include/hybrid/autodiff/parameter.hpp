// parameter<T>: a named trainable tensor with its gradient, the leaves of every model.
// Names follow Hugging Face's dotted convention so checkpoints load by name.
#pragma once
#include <string>

#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/parallel.hpp"

namespace hybrid {

template <class T>
class parameter {
 public:
  parameter() = default;
  parameter(std::string name, const hybrid::shape& s)
      : name_(std::move(name)), value_(tensor<T>::zeros(s)), grad_(tensor<T>::zeros(s)) {}
  parameter(std::string name, tensor<T> value)
      : name_(std::move(name)), value_(std::move(value)), grad_(tensor<T>::zeros(value_.shape())) {}

  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  const hybrid::shape& shape() const { return value_.shape(); }
  index_t numel() const { return value_.numel(); }
  tensor<T>& value() { return value_; }
  const tensor<T>& value() const { return value_; }
  tensor<T>& grad() { return grad_; }
  const tensor<T>& grad() const { return grad_; }

  // Frozen parameters take part in the forward pass but get no gradient.
  bool trainable() const { return trainable_; }
  void set_trainable(bool on) { trainable_ = on; }

  // The parameter as a leaf of the current step; gradients accumulate into grad().
  var<T> use() const {
    auto& self = const_cast<parameter&>(*this);
    node<T>* n = tape::current().make_leaf<T>(self.value_.data(), trainable_ ? self.grad_.data() : nullptr,
                                              value_.shape());
    n->weight = true;
    return var<T>(n);
  }
  operator var<T>() const { return use(); }  // NOLINT: parameters read as values in expressions

  // In slices on all threads: the multimodal step's 38 MB of gradients took about 3 ms on one thread (4% of its
  // 2-thread step).
  void zero_grad() {
    T* g = grad_.data();
    const exec::row_chunks slices(grad_.numel(), 1, index_t{1} << 15);
    exec::default_policy::for_each(slices.count, [g, slices](index_t k) {
      std::fill(g + slices.begin(k), g + slices.end(k), T(0));
    });
  }

 private:
  std::string name_;
  tensor<T> value_;
  tensor<T> grad_;
  bool trainable_ = true;
};

}  // namespace hybrid
