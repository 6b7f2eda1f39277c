// LoRA (Hu et al. 2021) as PEFT implements it: a linear layer carries y = x W^T + b + scale (dropout(x) A^T) B^T,
// and apply_lora adds adapters to the linears of any module by name and freezes everything else.
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "hybrid/layers/module.hpp"
#include "hybrid/ops/dropout.hpp"
#include "hybrid/ops/matmul.hpp"

namespace hybrid::layers {

// ---- the sub-module walk ----------------------------------------------------------------------------
// A composite module exposes `template <class F> void visit_modules(const std::string& prefix, F&& f)`,
// calling f(dotted_name, child) for each direct child module; leaves (linear, layer_norm, embedding) have none.

namespace detail {
struct module_probe {
  template <class C>
  void operator()(const std::string&, C&) const {}
};
}  // namespace detail

template <class M>
concept composite_module = requires(M& m, const std::string& prefix) {
  m.visit_modules(prefix, detail::module_probe{});
};

// f(name, module) for m itself (named `prefix`) and every module below it, parents before children.
template <class M, class F>
void walk_modules(M& m, const std::string& prefix, F&& f) {
  f(prefix, m);
  if constexpr (composite_module<M>)
    m.visit_modules(prefix, [&](const std::string& name, auto& child) { walk_modules(child, name, f); });
}

// PEFT's target matching: a module matches a key when its dotted name is the key or ends with "." + key.
inline bool module_name_matches(const std::string& name, const std::string& key) {
  return !key.empty() && name.ends_with(key) &&
         (name.size() == key.size() || name[name.size() - key.size() - 1] == '.');
}

// ---- one adapter --------------------------------------------------------------------------------------

// PEFT's LoraConfig r / lora_alpha / lora_dropout for one layer.
struct lora_options {
  index_t rank = 8;
  double alpha = 8;
  double dropout = 0;
};

// lora_A [rank, in], lora_B [out, rank]; the layer adds scale (dropout(x) A^T) B^T with scale = alpha / rank.
template <class T = float>
class lora_adapter {
 public:
  using value_type = T;
  lora_adapter(index_t in, index_t out, const lora_options& o)
      : opt_(o), a_("lora_A.weight", {o.rank, in}), b_("lora_B.weight", {out, o.rank}) {
    if (o.rank <= 0) throw std::invalid_argument("lora: rank must be positive, got " + std::to_string(o.rank));
    if (!(o.dropout >= 0 && o.dropout < 1))
      throw std::invalid_argument("lora: dropout must be in [0, 1), got " + std::to_string(o.dropout));
  }

  const lora_options& options() const { return opt_; }
  T scale() const { return static_cast<T>(opt_.alpha / static_cast<double>(opt_.rank)); }
  parameter<T>& lora_A() { return a_; }
  parameter<T>& lora_B() { return b_; }
  bool merged() const { return merged_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "lora_A.weight"), a_);
    f(join_name(prefix, "lora_B.weight"), b_);
  }
  // PEFT's init: A kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B zero, so an adapted
  // layer starts out computing exactly what the base layer does.
  void init(std::mt19937& rng) {
    init_uniform(a_, rng, 1.0 / std::sqrt(static_cast<double>(std::max<index_t>(a_.shape()[1], 1))));
    init_constant(b_, 0.0);
  }

  // (dropout(x) A^T) B^T, unscaled; dropout only with an rng and in training mode.
  var<T> delta(const var<T>& x, dropout_rng* rng, bool training) const {
    const var<T> h = rng ? dropout(x, opt_.dropout, *rng, training) : x;
    return matmul(matmul(h, a_.use(), {.b = true}), b_.use(), {.b = true});
  }

  // W += scale B A (merge) and W -= scale B A (unmerge); both are no-ops when already in that state.
  // The same product is added and subtracted, so a round trip changes W only by float rounding.
  void merge(tensor<T>& weight) {
    if (!merged_) fold(weight, T(1)), merged_ = true;
  }
  void unmerge(tensor<T>& weight) {
    if (merged_) fold(weight, T(-1)), merged_ = false;
  }

 private:
  void fold(tensor<T>& w, T sign) const {
    const row_matrix<T> ba = b_.value().matrix() * a_.value().matrix();
    w.matrix() += (sign * scale()) * ba;
  }

  lora_options opt_;
  parameter<T> a_, b_;
  bool merged_ = false;
};

// A layer that can carry an adapter (layers::linear).
template <class M>
concept lora_capable = requires(M& m, const lora_options& o, std::mt19937& rng) {
  m.add_lora(o, rng);
  { m.lora() } -> std::convertible_to<const void*>;
  m.remove_lora();
  m.merge();
  m.unmerge();
};

// ---- applying adapters to a module --------------------------------------------------------------------

// PEFT's LoraConfig. target_modules and modules_to_save are dotted name suffixes ("query",
// "attention.self.query", "classifier"). With task_type "SEQ_CLS" PEFT also keeps the head trainable and
// saved: "classifier" and "score" are added to modules_to_save and may be absent from the model.
struct lora_config {
  index_t rank = 8;
  double alpha = 8;
  double dropout = 0;
  std::vector<std::string> target_modules = {"query", "value"};  // PEFT's default for BERT
  std::vector<std::string> modules_to_save = {};
  std::string task_type = "SEQ_CLS";  // PEFT's TaskType, or "" for none

  lora_options adapter() const { return {rank, alpha, dropout}; }
  // modules_to_save plus, for SEQ_CLS, PEFT's head names; `optional` entries need not exist.
  struct saved_module {
    std::string name;
    bool optional;
  };
  std::vector<saved_module> saved_modules() const {
    std::vector<saved_module> out;
    const bool seq_cls = task_type == "SEQ_CLS";
    for (const auto& n : modules_to_save) out.push_back({n, seq_cls && (n == "classifier" || n == "score")});
    if (seq_cls)
      for (const char* n : {"classifier", "score"})
        if (std::find(modules_to_save.begin(), modules_to_save.end(), n) == modules_to_save.end())
          out.push_back({n, true});
    return out;
  }
};

struct lora_report {
  std::vector<std::string> adapted;  // names of the linears that got an adapter, in walk order
  std::vector<std::string> saved;    // names of the modules_to_save found
};

// Adds an adapter to every linear whose name matches a target module, freezes every other parameter
// (set_trainable(false)) except those of modules_to_save; adapter parameters are named after their layer's
// weight ("<layer>.lora_A.weight", "<layer>.lora_B.weight"). Throws std::invalid_argument, leaving m unchanged,
// when a target or required modules_to_save name matches nothing, or a target is not a linear layer.
template <module M>
lora_report apply_lora(M& m, const lora_config& c, std::mt19937& rng) {
  if (c.rank <= 0) throw std::invalid_argument("apply_lora: rank must be positive, got " + std::to_string(c.rank));
  if (c.target_modules.empty()) throw std::invalid_argument("apply_lora: no target_modules");
  const auto saved = c.saved_modules();
  std::vector<bool> target_hit(c.target_modules.size()), saved_hit(saved.size());
  auto any_match = [](const std::string& name, const auto& keys, std::vector<bool>& hit, auto key_of) {
    bool any = false;
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (module_name_matches(name, key_of(keys[i]))) hit[i] = any = true;
    return any;
  };
  auto same = [](const std::string& s) -> const std::string& { return s; };
  auto saved_name = [](const lora_config::saved_module& s) -> const std::string& { return s.name; };

  lora_report rep;
  // First pass: validate without touching m.
  walk_modules(m, "", [&](const std::string& name, auto& sub) {
    using S = std::remove_cvref_t<decltype(sub)>;
    if (name.empty()) return;
    if (any_match(name, c.target_modules, target_hit, same)) {
      if constexpr (lora_capable<S>) {
        if (sub.lora()) throw std::invalid_argument("apply_lora: '" + name + "' already has a LoRA adapter");
        rep.adapted.push_back(name);
      } else {
        throw std::invalid_argument("apply_lora: target module '" + name + "' is not a linear layer");
      }
    }
    if (any_match(name, saved, saved_hit, saved_name)) rep.saved.push_back(name);
  });
  std::string missing;
  for (std::size_t i = 0; i < target_hit.size(); ++i)
    if (!target_hit[i]) missing += (missing.empty() ? "'" : ", '") + c.target_modules[i] + "'";
  for (std::size_t i = 0; i < saved_hit.size(); ++i)
    if (!saved_hit[i] && !saved[i].optional) missing += (missing.empty() ? "'" : ", '") + saved[i].name + "'";
  if (!missing.empty()) throw std::invalid_argument("apply_lora: no module matches " + missing);

  set_trainable(m, false);
  walk_modules(m, "", [&](const std::string& name, auto& sub) {
    using S = std::remove_cvref_t<decltype(sub)>;
    if constexpr (lora_capable<S>)
      if (std::find(rep.adapted.begin(), rep.adapted.end(), name) != rep.adapted.end()) sub.add_lora(c.adapter(), rng);
    if (std::find(rep.saved.begin(), rep.saved.end(), name) != rep.saved.end()) set_trainable(sub, true);
  });
  return rep;
}

template <module M>
lora_report apply_lora(M& m, const lora_config& c) {
  std::mt19937 rng(0);
  return apply_lora(m, c, rng);
}

// f(name, linear) for every layer below m that carries an adapter.
template <module M, class F>
void for_each_lora(M& m, F&& f) {
  walk_modules(m, "", [&](const std::string& name, auto& sub) {
    if constexpr (lora_capable<std::remove_cvref_t<decltype(sub)>>)
      if (sub.lora()) f(name, sub);
  });
}

template <module M>
index_t count_lora(M& m) {
  index_t n = 0;
  for_each_lora(m, [&](const std::string&, auto&) { ++n; });
  return n;
}
template <module M>
void merge_lora(M& m) {
  for_each_lora(m, [](const std::string&, auto& l) { l.merge(); });
}
template <module M>
void unmerge_lora(M& m) {
  for_each_lora(m, [](const std::string&, auto& l) { l.unmerge(); });
}
// PEFT's merge_and_unload (merge = true) or unload: the adapters are removed, folded into the weights first
// if asked, leaving a plain model (e.g. to save in the Hugging Face layout). Trainable flags are unchanged.
template <module M>
void unload_lora(M& m, bool merge = true) {
  for_each_lora(m, [&](const std::string&, auto& l) {
    if (merge)
      l.merge();
    else
      l.unmerge();
    l.remove_lora();
  });
}

// PEFT's adapter state dict: f(name, parameter) for every adapter parameter and every parameter of the
// modules_to_save found in m (each parameter once), named prefix.<dotted name> in walk order.
template <module M, class F>
void visit_lora_state(M& m, const lora_config& c, const std::string& prefix, F&& f) {
  using T = typename M::value_type;
  const auto saved = c.saved_modules();
  std::unordered_set<const parameter<T>*> seen;
  auto once = [&](const std::string& name, parameter<T>& p) {
    if (seen.insert(&p).second) f(name, p);
  };
  walk_modules(m, prefix, [&](const std::string& name, auto& sub) {
    using S = std::remove_cvref_t<decltype(sub)>;
    if constexpr (lora_capable<S>)
      if (auto* a = sub.lora()) a->visit(name, once);
    const std::string rel = prefix.empty() ? name : name.size() > prefix.size() ? name.substr(prefix.size() + 1) : "";
    if (!rel.empty() &&
        std::any_of(saved.begin(), saved.end(), [&](const auto& s) { return module_name_matches(rel, s.name); }))
      sub.visit(name, once);
  });
}

}  // namespace hybrid::layers
