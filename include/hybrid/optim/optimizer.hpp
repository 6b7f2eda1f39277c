// The common base of every optimizer: parameter groups (each with its own lr and weight decay),
// zero_grad/step/set_lr, named optimizer state for checkpoints, and the BERT "no decay" grouping.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "hybrid/autodiff/parameter.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/backend/prepacked_weights.hpp"
#include "hybrid/core/compiled.hpp"

namespace hybrid::optim {

// What a user passes: some parameters and, optionally, options that override the optimizer's defaults.
template <class T>
struct param_group {
  std::vector<parameter<T>*> params;
  std::optional<double> lr{};
  std::optional<double> weight_decay{};
};

// A named state tensor ("<parameter name>.exp_avg"); it shares storage with the optimizer.
template <class T>
struct named_tensor {
  std::string name;
  tensor<T> value;
};

// Everything an optimizer needs to resume: the number of steps taken and its per-parameter tensors.
template <class T>
struct optimizer_state {
  index_t step = 0;
  std::vector<named_tensor<T>> tensors;
};

// The usual BERT recipe: biases and LayerNorm weights get no weight decay.
inline bool no_decay_name(std::string_view name) {
  return name.ends_with("bias") || name.find("LayerNorm") != std::string_view::npos ||
         name.find("layer_norm") != std::string_view::npos;
}

// Splits parameters into a "decay" group (the optimizer's weight_decay) and a "no decay" group
// (weight_decay 0) by name; empty groups are left out.
template <class T, class Pred = bool (*)(std::string_view)>
std::vector<param_group<T>> weight_decay_groups(const std::vector<parameter<T>*>& params,
                                                Pred no_decay = &no_decay_name) {
  param_group<T> decay, plain{.params = {}, .lr = std::nullopt, .weight_decay = 0.0};
  for (parameter<T>* p : params) (no_decay(std::string_view(p->name())) ? plain : decay).params.push_back(p);
  std::vector<param_group<T>> groups;
  for (auto* g : {&decay, &plain})
    if (!g->params.empty()) groups.push_back(std::move(*g));
  return groups;
}

namespace detail {
// Optimizer updates run over fixed slices of each tensor: elementwise, so any thread count gives the
// same bits, and a 23M-element embedding is spread over all cores.
inline constexpr index_t update_slice = index_t{1} << 15;

template <class Exec, class F>
void for_each_slice(index_t n, F&& f) {
  Exec::for_each((n + update_slice - 1) / update_slice, [&](index_t k) {
    const index_t begin = k * update_slice;
    f(begin, std::min(update_slice, n - begin));
  });
}

// A slice of a tensor as an Eigen array, for vectorized update expressions.
template <class T>
auto array_of(T* p, index_t begin, index_t n) {
  using A = Eigen::Array<std::remove_const_t<T>, Eigen::Dynamic, 1>;
  return Eigen::Map<std::conditional_t<std::is_const_v<T>, const A, A>>(p + begin, n);
}
}  // namespace detail

template <class T>
class optimizer {
 public:
  struct group {
    std::vector<parameter<T>*> params;
    double lr = 0, initial_lr = 0, weight_decay = 0;
  };

  virtual ~optimizer() = default;
  optimizer(const optimizer&) = delete;
  optimizer& operator=(const optimizer&) = delete;

  // One update of every trainable parameter from its gradient; frozen parameters are skipped.
  virtual void step() = 0;

  void zero_grad() {
    for (auto& g : groups_)
      for (parameter<T>* p : g.params) p->zero_grad();
  }
  // Sets the learning rate of every group (and makes it the base that scale_lr multiplies).
  void set_lr(double lr) {
    for (auto& g : groups_) g.lr = g.initial_lr = lr;
  }
  // lr = factor * each group's initial lr: what a schedule sets before each step.
  void scale_lr(double factor) {
    for (auto& g : groups_) g.lr = g.initial_lr * factor;
  }
  double lr(std::size_t group = 0) const { return groups_.at(group).lr; }
  std::vector<group>& groups() { return groups_; }
  const std::vector<group>& groups() const { return groups_; }
  // Every parameter, in group order (for gradient clipping and checkpoints).
  std::vector<parameter<T>*> parameters() const {
    std::vector<parameter<T>*> all;
    for (auto& g : groups_) all.insert(all.end(), g.params.begin(), g.params.end());
    return all;
  }
  index_t step_count() const { return step_; }

  // The optimizer's state; the tensors share storage, so writing into them restores state too.
  optimizer_state<T> state();
  // Restores a state saved by state() (by name; every tensor must be present with its shape).
  void load_state(const optimizer_state<T>& s);

 protected:
  // `slot_names`: the state tensors each parameter gets (zeros, shaped like it), e.g. {"exp_avg"}.
  optimizer(std::vector<param_group<T>> groups, double lr, double weight_decay, std::vector<std::string> slot_names);

  // f(group, parameter, state tensors of that parameter) for every trainable parameter.
  template <class F>
  void for_each_trainable(F&& f) {
    // Every step updates through here: refused where products reuse packed copies of the weights.
    if (gemm::prepacked_weights::active())
      throw std::logic_error("optimizer step inside a gemm::prepacked_weights scope: products there reuse weights "
                             "packed before the step; end the scope first");
    std::size_t i = 0;
    for (auto& g : groups_)
      for (parameter<T>* p : g.params) {
        std::vector<tensor<T>>& slots = slots_[i++];
        if (p->trainable()) f(g, *p, slots);
      }
  }

  index_t step_ = 0;

 private:
  std::string state_name(std::size_t i, std::size_t k) const { return names_[i] + "." + slot_names_[k]; }

  std::vector<group> groups_;
  std::vector<std::string> slot_names_;
  std::vector<std::vector<tensor<T>>> slots_;  // per parameter (in group order), per slot
  std::vector<std::string> names_;              // the parameter's name, or its index when not unique
};

// Outside the class: prebuilt for float with HYBRID_COMPILED (core/compiled.hpp).
template <class T>
optimizer_state<T> optimizer<T>::state() {
  optimizer_state<T> s{step_, {}};
  for (std::size_t i = 0; i < slots_.size(); ++i)
    for (std::size_t k = 0; k < slot_names_.size(); ++k)
      s.tensors.push_back({state_name(i, k), slots_[i][k]});
  return s;
}

template <class T>
void optimizer<T>::load_state(const optimizer_state<T>& s) {
  for (std::size_t i = 0; i < slots_.size(); ++i)
    for (std::size_t k = 0; k < slot_names_.size(); ++k) {
      const std::string name = state_name(i, k);
      auto it = std::find_if(s.tensors.begin(), s.tensors.end(), [&](auto& t) { return t.name == name; });
      if (it == s.tensors.end()) throw std::invalid_argument("optimizer::load_state: no tensor named " + name);
      if (it->value.shape() != slots_[i][k].shape())
        throw shape_error("optimizer::load_state", name + " saved", it->value.shape(), "expected",
                          slots_[i][k].shape());
      std::copy(it->value.begin(), it->value.end(), slots_[i][k].begin());
    }
  step_ = s.step;
}

template <class T>
optimizer<T>::optimizer(std::vector<param_group<T>> groups, double lr, double weight_decay,
                        std::vector<std::string> slot_names)
    : slot_names_(std::move(slot_names)) {
  std::unordered_set<const parameter<T>*> seen;
  for (auto& spec : groups) {
    group g{std::move(spec.params), spec.lr.value_or(lr), spec.lr.value_or(lr),
            spec.weight_decay.value_or(weight_decay)};
    for (parameter<T>* p : g.params) {
      if (!p) throw std::invalid_argument("optimizer: null parameter");
      if (!seen.insert(p).second)
        throw std::invalid_argument("optimizer: parameter '" + p->name() + "' appears in more than one group");
      slots_.emplace_back();
      for (std::size_t k = 0; k < slot_names_.size(); ++k) slots_.back().push_back(tensor<T>::zeros(p->shape()));
    }
    groups_.push_back(std::move(g));
  }
  std::unordered_map<std::string, int> uses;
  for (parameter<T>* p : parameters()) ++uses[p->name()];
  for (parameter<T>* p : parameters())
    names_.push_back(p->name().empty() || uses[p->name()] > 1 ? std::to_string(names_.size()) : p->name());
}

HYBRID_EXTERN_FLOAT(class optimizer<float>)

}  // namespace hybrid::optim
