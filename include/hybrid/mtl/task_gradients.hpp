// Per-task gradients from ONE forward pass and K retained backward passes: of the shared parameters
// (each pass through the whole graph) or of the shared representation (each pass through the heads only).
#pragma once
#include <Eigen/Core>
#include <span>
#include <vector>

#include "hybrid/autodiff/parameter.hpp"

namespace hybrid::mtl {

// Row k: task k's gradient, flattened (K x n, row-major).
template <class T>
using gradient_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using gradient_vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

namespace detail {
// Zeroes every adjoint on the tape and seeds d(seed)/d(seed) = 1.
template <class T>
void seed_alone(const var<T>& seed) {
  tape::current().zero_adjoints();
  seed.grad_data()[0] += T(1);
}
template <class T>
index_t total_size(std::span<const var<T>> vs) {
  index_t n = 0;
  for (const var<T>& v : vs) n += v.requires_grad() ? v.numel() : 0;
  return n;
}
}  // namespace detail

// Ends a sequence of retained passes: the tape is spent (reset at the next allocation), as after backward().
inline void finish_backward() {
  tape& tp = tape::current();
  tp.run_backward_until(tp.position(), false);
}

// Saves some parameters' gradients and puts them back: a probe pass must not change what the
// optimizer will see (gradient accumulation across steps stays correct).
template <class T>
class gradient_snapshot {
 public:
  explicit gradient_snapshot(std::vector<parameter<T>*> params) : params_(std::move(params)) {
    saved_.reserve(params_.size());
    for (auto* p : params_) saved_.push_back(p->grad().clone());  // tensors share storage on copy
  }
  void restore() {
    for (std::size_t i = 0; i < params_.size(); ++i) std::copy(saved_[i].begin(), saved_[i].end(), params_[i]->grad().begin());
  }

 private:
  std::vector<parameter<T>*> params_;
  std::vector<tensor<T>> saved_;
};

// d seeds[k] / d params for every k, one retained full backward pass each. The parameters' gradients
// are zero afterwards (the caller writes the combination); other parameters (heads) accumulate their
// own task's gradient. Seeds that need no gradient give zero rows. The tape stays live.
template <class T>
gradient_matrix<T> parameter_gradients(std::span<parameter<T>* const> params, std::span<const var<T>> seeds) {
  index_t n = 0;
  for (auto* p : params) n += p->numel();
  gradient_matrix<T> g = gradient_matrix<T>::Zero(static_cast<index_t>(seeds.size()), n);
  for (std::size_t k = 0; k < seeds.size(); ++k) {
    for (auto* p : params) p->zero_grad();
    if (!seeds[k].valid() || !seeds[k].requires_grad()) continue;
    detail::seed_alone(seeds[k]);
    tape::current().run_backward(true);
    index_t at = 0;
    for (auto* p : params) {
      std::copy(p->grad().begin(), p->grad().end(), g.row(static_cast<index_t>(k)).data() + at);
      at += p->numel();
    }
  }
  for (auto* p : params) p->zero_grad();
  return g;
}

// d seeds[k] / d boundary for every k (the boundary's values concatenated, those needing a gradient):
// one retained pass each through the part of the tape recorded after `shared_end` (the heads). The
// adjoints are zero afterwards; the parameters recorded after the mark accumulate each task's gradient.
template <class T>
gradient_matrix<T> representation_gradients(const tape::mark& shared_end, std::span<const var<T>> boundary,
                                            std::span<const var<T>> seeds) {
  gradient_matrix<T> g = gradient_matrix<T>::Zero(static_cast<index_t>(seeds.size()), detail::total_size(boundary));
  tape& tp = tape::current();
  for (std::size_t k = 0; k < seeds.size(); ++k) {
    if (!seeds[k].valid() || !seeds[k].requires_grad()) continue;
    detail::seed_alone(seeds[k]);
    tp.run_backward_until(shared_end, true);
    index_t at = 0;
    for (const var<T>& v : boundary) {
      if (!v.requires_grad()) continue;
      std::copy(v.grads().begin(), v.grads().end(), g.row(static_cast<index_t>(k)).data() + at);
      at += v.numel();
    }
  }
  tp.zero_adjoints();
  return g;
}

// Writes a representation-level combined gradient into the boundary's adjoints and runs the whole
// backward pass from there (the heads' part adds nothing: their adjoints are zero). Spends the tape.
template <class T>
void backward_from_boundary(std::span<const var<T>> boundary, const gradient_vector<T>& g) {
  tape& tp = tape::current();
  tp.zero_adjoints();
  index_t at = 0;
  for (const var<T>& v : boundary) {
    if (!v.requires_grad()) continue;
    std::copy_n(g.data() + at, v.numel(), v.grad_data());
    at += v.numel();
  }
  tp.run_backward(false);
}

// Every gradient-conflict method here (PCGrad, MGDA, CAGrad) returns a combination of the task gradients,
// d = sum_k alpha_k g_k, whose coefficients depend only on their inner products: a method is
//   Eigen::VectorXd task_weights(const Eigen::MatrixXd& gram);   // gram = G G^T (K x K), returns alpha
// so it works alike on parameter- and representation-level gradients and costs O(K^2 n) in all.
template <class M>
concept gradient_method = requires(M& m, const Eigen::MatrixXd& gram) {
  { m.task_weights(gram) } -> std::convertible_to<Eigen::VectorXd>;
};

// G G^T in double (the small solves need the precision; the products run in T).
template <class T>
Eigen::MatrixXd gram(const gradient_matrix<T>& g) {
  return (g * g.transpose()).template cast<double>();
}

// The combined gradient sum_k alpha_k g_k of a method; alpha is written to `weights` when given.
template <gradient_method M, class T>
gradient_vector<T> combine(M& method, const gradient_matrix<T>& g, Eigen::VectorXd* weights = nullptr) {
  const Eigen::VectorXd alpha = method.task_weights(gram(g));
  if (weights) *weights = alpha;
  return g.transpose() * alpha.cast<T>();
}

}  // namespace hybrid::mtl
