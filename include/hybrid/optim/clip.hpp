// Gradient clipping by the global L2 norm over all trainable parameters, as
// torch.nn.utils.clip_grad_norm_; the norm is summed in double over fixed slices (deterministic).
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "hybrid/optim/optimizer.hpp"

namespace hybrid::optim {

struct clip_options {
  bool error_if_nonfinite = false;  // throw std::runtime_error instead of returning a non-finite norm
};

// sqrt(sum of squares of every gradient element of the trainable parameters); frozen ones are left out.
template <class Exec = exec::default_policy, class T>
double grad_norm(const std::vector<parameter<T>*>& params) {
  double total = 0;
  std::vector<double> partial;
  for (const parameter<T>* p : params) {
    if (!p->trainable()) continue;
    const index_t n = p->numel();
    partial.assign(static_cast<std::size_t>((n + detail::update_slice - 1) / detail::update_slice), 0.0);
    const T* g = p->grad().data();
    detail::for_each_slice<Exec>(n, [&](index_t b, index_t len) {
      partial[static_cast<std::size_t>(b / detail::update_slice)] =
          detail::array_of(g, b, len).template cast<double>().square().sum();
    });
    for (double s : partial) total += s;
  }
  return std::sqrt(total);
}

// Scales all gradients by max_norm / (norm + 1e-6) when that is below 1, and returns the norm before
// clipping. A non-finite norm (an inf or NaN gradient) is returned as is and the gradients are left
// untouched, so the caller can skip the step (PyTorch would instead scale every gradient to NaN).
template <class Exec = exec::default_policy, class T>
double clip_grad_norm(const std::vector<parameter<T>*>& params, double max_norm, clip_options opt = {}) {
  const double norm = grad_norm<Exec>(params);
  if (!std::isfinite(norm)) {
    if (opt.error_if_nonfinite)
      throw std::runtime_error("clip_grad_norm: the gradient norm is non-finite (" + std::to_string(norm) + ")");
    return norm;
  }
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1) return norm;
  for (parameter<T>* p : params) {
    if (!p->trainable()) continue;
    T* g = p->grad().data();
    detail::for_each_slice<Exec>(p->numel(), [&](index_t b, index_t len) { detail::array_of(g, b, len) *= T(coef); });
  }
  return norm;
}

template <class Exec = exec::default_policy, class T>
double clip_grad_norm(const optimizer<T>& opt, double max_norm, clip_options o = {}) {
  return clip_grad_norm<Exec>(opt.parameters(), max_norm, o);
}

}  // namespace hybrid::optim
