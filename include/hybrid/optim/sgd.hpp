// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, exactly as
// torch.optim.SGD (the momentum buffer starts as a copy of the first gradient, undamped).
#pragma once
#include <stdexcept>

#include "hybrid/optim/optimizer.hpp"

namespace hybrid::optim {

struct sgd_options {
  double lr = 1e-2;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // L2: adds weight_decay * p to the gradient
  bool nesterov = false;
};

template <class T = float, class Exec = exec::default_policy>
class sgd : public optimizer<T> {
 public:
  sgd(std::vector<parameter<T>*> params, sgd_options opt = {})
      : sgd(std::vector<param_group<T>>{{.params = std::move(params)}}, opt) {}
  sgd(std::vector<param_group<T>> groups, sgd_options opt = {})
      : optimizer<T>(std::move(groups), opt.lr, opt.weight_decay,
                     opt.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}),
        opt_(opt) {
    if (opt.momentum < 0 || opt.dampening < 0 || opt.weight_decay < 0 || opt.lr < 0)
      throw std::invalid_argument("sgd: lr, momentum, dampening and weight_decay must be >= 0");
    if (opt.nesterov && (opt.momentum <= 0 || opt.dampening != 0))
      throw std::invalid_argument("sgd: Nesterov momentum requires a momentum and zero dampening");
  }

  const sgd_options& options() const { return opt_; }

  void step() override {
    const bool first = this->step_ == 0;
    const T mu = T(opt_.momentum), damp = T(1 - opt_.dampening);
    this->for_each_trainable([&](auto& g, parameter<T>& p, std::vector<tensor<T>>& state) {
      const T lr = T(g.lr), wd = T(g.weight_decay);
      T* pw = p.value().data();
      const T* pg = p.grad().data();
      T* pb = state.empty() ? nullptr : state[0].data();
      detail::for_each_slice<Exec>(p.numel(), [&](index_t b, index_t n) {
        auto w = detail::array_of(pw, b, n);
        auto d = detail::array_of(pg, b, n) + wd * w;  // an expression: d_p = grad + wd * p
        if (!pb) {
          w -= lr * d;
          return;
        }
        auto buf = detail::array_of(pb, b, n);
        if (first) buf = d;
        else buf = mu * buf + damp * d;
        if (opt_.nesterov) w -= lr * (d + mu * buf);
        else w -= lr * buf;
      });
    });
    ++this->step_;
  }

 private:
  sgd_options opt_;
};

}  // namespace hybrid::optim
