// The module contract every layer, encoder, fusion operator and head fulfils, written once:
// `visit(prefix, f)` calls f(dotted_name, parameter&) for each parameter, in a fixed order.
#pragma once
#include <cmath>
#include <concepts>
#include <functional>
#include <random>
#include <string>

#include "hybrid/autodiff/parameter.hpp"

namespace hybrid {

template <class T>
using parameter_visitor = std::function<void(const std::string&, parameter<T>&)>;

// A module owns parameters and names them with Hugging Face-style dotted paths.
template <class M>
concept module = requires(M& m, const std::string& prefix, const parameter_visitor<typename M::value_type>& f) {
  typename M::value_type;
  m.visit(prefix, f);
};

// Joins dotted names: join("encoder.layer", "0") == "encoder.layer.0"; an empty part vanishes.
inline std::string join_name(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}

// Gives every parameter its full dotted name; models call this once after construction.
template <module M>
void assign_names(M& m, const std::string& prefix = "") {
  m.visit(prefix, [](const std::string& name, parameter<typename M::value_type>& p) { p.set_name(name); });
}

template <module M>
index_t count_parameters(M& m, bool trainable_only = false) {
  index_t n = 0;
  m.visit("", [&](const std::string&, parameter<typename M::value_type>& p) {
    if (!trainable_only || p.trainable()) n += p.numel();
  });
  return n;
}

template <module M>
std::vector<parameter<typename M::value_type>*> parameters_of(M& m) {
  std::vector<parameter<typename M::value_type>*> out;
  m.visit("", [&](const std::string&, parameter<typename M::value_type>& p) { out.push_back(&p); });
  return out;
}

template <module M>
void set_trainable(M& m, bool on) {
  m.visit("", [&](const std::string&, parameter<typename M::value_type>& p) { p.set_trainable(on); });
}

template <module M>
void zero_grad(M& m) {
  m.visit("", [&](const std::string&, parameter<typename M::value_type>& p) { p.zero_grad(); });
}

// Initialisers (the recipes of BERT and PyTorch's defaults).
template <class T>
void init_normal(parameter<T>& p, std::mt19937& rng, double stddev) {
  std::normal_distribution<double> d(0.0, stddev);
  for (T& v : p.value()) v = static_cast<T>(d(rng));
}
template <class T>
void init_uniform(parameter<T>& p, std::mt19937& rng, double bound) {
  std::uniform_real_distribution<double> d(-bound, bound);
  for (T& v : p.value()) v = static_cast<T>(d(rng));
}
template <class T>
void init_constant(parameter<T>& p, double value) {
  p.value().fill(static_cast<T>(value));
}

// Whether a layer runs in training mode (dropout on) is passed explicitly with the input.
struct mode {
  bool training = false;
};

}  // namespace hybrid
