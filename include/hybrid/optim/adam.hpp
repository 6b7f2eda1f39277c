// Adam and AdamW, exactly as torch.optim.Adam / AdamW: bias-corrected moments, eps outside the sqrt,
// optional AMSGrad. Adam's weight decay is L2 (added to the gradient); AdamW's is decoupled (p -= lr wd p).
#pragma once
#include <cmath>
#include <stdexcept>

#include "hybrid/optim/optimizer.hpp"

namespace hybrid::optim {

struct adam_options {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};
// The same fields; only the default weight decay differs (PyTorch's AdamW default).
struct adamw_options {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
};

namespace detail {
template <class T, class Exec, bool Decoupled>
class adam_base : public optimizer<T> {
 public:
  // State per parameter: "exp_avg", "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq".
  void step() override;

  const adam_options& options() const { return opt_; }

 protected:
  template <class Options>
  adam_base(std::vector<param_group<T>> groups, const Options& o)
      : optimizer<T>(std::move(groups), o.lr, o.weight_decay,
                     o.amsgrad ? std::vector<std::string>{"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
                               : std::vector<std::string>{"exp_avg", "exp_avg_sq"}),
        opt_{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad} {
    if (!(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0))
      throw std::invalid_argument("adam: lr, eps and weight_decay must be >= 0");
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
      throw std::invalid_argument("adam: betas must be in [0, 1)");
  }

 private:
  adam_options opt_;
};
template <class T, class Exec, bool Decoupled>
void adam_base<T, Exec, Decoupled>::step() {
  const index_t t = ++this->step_;
  const double bc1 = 1 - std::pow(opt_.beta1, double(t)), bc2_sqrt = std::sqrt(1 - std::pow(opt_.beta2, double(t)));
  const T b1 = T(opt_.beta1), b2 = T(opt_.beta2), eps = T(opt_.eps), bc2s = T(bc2_sqrt);
  this->for_each_trainable([&](auto& g, parameter<T>& p, std::vector<tensor<T>>& state) {
    const T wd = T(g.weight_decay), step_size = T(g.lr / bc1), shrink = T(1 - g.lr * g.weight_decay);
    T* pw = p.value().data();
    const T* pg = p.grad().data();
    T *pm = state[0].data(), *pv = state[1].data(), *pmax = opt_.amsgrad ? state[2].data() : nullptr;
    for_each_slice<Exec>(p.numel(), [&](index_t b, index_t n) {
      auto w = array_of(pw, b, n);
      auto grad = array_of(pg, b, n);
      auto m = array_of(pm, b, n);
      auto v = array_of(pv, b, n);
      if constexpr (Decoupled) {
        if (wd != T(0)) w *= shrink;
        m = b1 * m + (T(1) - b1) * grad;
        v = b2 * v + (T(1) - b2) * grad.square();
      } else {
        m = b1 * m + (T(1) - b1) * (grad + wd * w);
        v = b2 * v + (T(1) - b2) * (grad + wd * w).square();
      }
      if (pmax) {
        auto vmax = array_of(pmax, b, n);
        vmax = vmax.max(v);
        w += -step_size * (m / (vmax.sqrt() / bc2s + eps));
      } else {
        w += -step_size * (m / (v.sqrt() / bc2s + eps));
      }
    });
  });
}

HYBRID_EXTERN_FLOAT(class adam_base<float, exec::tbb, false>)
HYBRID_EXTERN_FLOAT(class adam_base<float, exec::tbb, true>)

}  // namespace detail

template <class T = float, class Exec = exec::default_policy>
class adam : public detail::adam_base<T, Exec, false> {
 public:
  adam(std::vector<parameter<T>*> params, adam_options opt = {})
      : adam(std::vector<param_group<T>>{{.params = std::move(params)}}, opt) {}
  adam(std::vector<param_group<T>> groups, adam_options opt = {})
      : detail::adam_base<T, Exec, false>(std::move(groups), opt) {}
};

template <class T = float, class Exec = exec::default_policy>
class adamw : public detail::adam_base<T, Exec, true> {
 public:
  adamw(std::vector<parameter<T>*> params, adamw_options opt = {})
      : adamw(std::vector<param_group<T>>{{.params = std::move(params)}}, opt) {}
  adamw(std::vector<param_group<T>> groups, adamw_options opt = {})
      : detail::adam_base<T, Exec, true>(std::move(groups), opt) {}
};

}  // namespace hybrid::optim
