// any_model: the one type-erased boundary (like LibTorch's AnyModule) for tools, pipelines and CLIs
// that choose among compiled model configurations at run time; model_registry names them.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hybrid/model.hpp"

namespace hybrid {

template <class T = float>
class any_model {
  struct iface {
    virtual ~iface() = default;
    virtual model_output<T> forward(const batch&, bool training) = 0;
    virtual std::vector<var<T>> losses(const model_output<T>&, const batch&) const = 0;
    virtual std::vector<var<T>> terms(const model_output<T>&, const std::vector<var<T>>&) = 0;
    virtual var<T> loss(const model_output<T>&, const batch&) = 0;
    virtual std::vector<double> task_weights() const = 0;
    virtual void end_epoch() = 0;
    virtual void visit(const std::string&, const parameter_visitor<T>&) = 0;
    virtual void visit_shared(const std::string&, const parameter_visitor<T>&) = 0;
    virtual std::span<const std::string_view> modality_names() const = 0;
    virtual std::span<const std::string_view> head_names() const = 0;
    virtual index_t fused_width() const = 0;
    virtual void* address() = 0;
    virtual const std::type_info& type() const = 0;
  };
  template <class M>
  struct holder final : iface {
    template <class... A>
    explicit holder(A&&... a) : m(std::forward<A>(a)...) {}
    model_output<T> forward(const batch& b, bool training) override { return m(b, training); }
    std::vector<var<T>> losses(const model_output<T>& o, const batch& b) const override {
      auto l = m.losses(o, b);
      return {l.begin(), l.end()};
    }
    std::vector<var<T>> terms(const model_output<T>& o, const std::vector<var<T>>& l) override {
      if (l.size() != M::head_count)
        throw std::invalid_argument("any_model::terms: " + std::to_string(l.size()) + " losses for " +
                                    std::to_string(M::head_count) + " heads");
      std::array<var<T>, M::head_count> a;
      std::copy(l.begin(), l.end(), a.begin());
      auto t = m.terms(o, a);
      return {t.begin(), t.end()};
    }
    var<T> loss(const model_output<T>& o, const batch& b) override { return m.loss(o, b); }
    std::vector<double> task_weights() const override {
      const auto w = m.weighting().weights();
      return {w.begin(), w.end()};
    }
    void end_epoch() override { m.end_epoch(); }
    void visit(const std::string& prefix, const parameter_visitor<T>& f) override { m.visit(prefix, f); }
    void visit_shared(const std::string& prefix, const parameter_visitor<T>& f) override { m.visit_shared(prefix, f); }
    std::span<const std::string_view> modality_names() const override { return M::modality_names; }
    std::span<const std::string_view> head_names() const override { return M::head_names; }
    index_t fused_width() const override { return M::fused_width; }
    void* address() override { return &m; }
    const std::type_info& type() const override { return typeid(M); }
    M m;
  };

 public:
  using value_type = T;

  any_model() = default;
  // Builds an M in place (models own large parameter sets and are not copied).
  template <class M, class... A>
  static any_model make(A&&... args) {
    static_assert(std::is_same_v<typename M::value_type, T>, "any_model<T>: the model's scalar type differs");
    any_model a;
    a.impl_ = std::make_unique<holder<M>>(std::forward<A>(args)...);
    return a;
  }
  bool has_value() const { return impl_ != nullptr; }

  model_output<T> operator()(const batch& b, bool training = false) { return checked().forward(b, training); }
  std::vector<var<T>> losses(const model_output<T>& o, const batch& b) const { return checked().losses(o, b); }
  // The weighting's per-task terms for these losses (their sum is the training loss).
  std::vector<var<T>> terms(const model_output<T>& o, const std::vector<var<T>>& l) { return checked().terms(o, l); }
  var<T> loss(const model_output<T>& o, const batch& b) { return checked().loss(o, b); }
  // The loss weighting's current weights, one per head.
  std::vector<double> task_weights() const { return checked().task_weights(); }
  void end_epoch() { checked().end_epoch(); }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    checked().visit(prefix, parameter_visitor<T>(std::forward<F>(f)));
  }
  template <class F>
  void visit_shared(const std::string& prefix, F&& f) {
    checked().visit_shared(prefix, parameter_visitor<T>(std::forward<F>(f)));
  }
  std::span<const std::string_view> modality_names() const { return checked().modality_names(); }
  std::span<const std::string_view> head_names() const { return checked().head_names(); }
  index_t fused_width() const { return checked().fused_width(); }

  // The concrete model, when it is an M (nullptr otherwise).
  template <class M>
  M* get_if() {
    return impl_ && impl_->type() == typeid(M) ? static_cast<M*>(impl_->address()) : nullptr;
  }

 private:
  iface& checked() const {
    if (!impl_) throw std::logic_error("any_model: empty (no model was made)");
    return *impl_;
  }
  std::unique_ptr<iface> impl_;
};

// Compiled configurations by name: a CLI can offer `--model text-image-small` and build it.
template <class T = float>
class model_registry {
 public:
  template <class M>
  model_registry& add(std::string name) {
    makers_[std::move(name)] = [] { return any_model<T>::template make<M>(); };
    return *this;
  }
  any_model<T> make(const std::string& name) const {
    const auto it = makers_.find(name);
    if (it == makers_.end()) {
      std::string known;
      for (const auto& [n, _] : makers_) known += (known.empty() ? "" : ", ") + n;
      throw std::invalid_argument("model_registry: no model named '" + name + "' (known: " + known + ")");
    }
    return it->second();
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& [k, _] : makers_) n.push_back(k);
    return n;
  }

 private:
  std::map<std::string, std::function<any_model<T>()>> makers_;
};

}  // namespace hybrid
