// Multi-gate Mixture-of-Experts (Ma et al. 2018) as a tower: E expert MLPs over the fused vector, shared
// by all tasks, and one softmax gate per task, so each head reads its own mixture of the experts.
#pragma once
#include <string>
#include <vector>

#include "hybrid/layers/linear.hpp"
#include "hybrid/layers/mlp.hpp"
#include "hybrid/mtl/tower.hpp"
#include "hybrid/ops/matmul.hpp"
#include "hybrid/ops/shape_ops.hpp"
#include "hybrid/ops/softmax.hpp"

namespace hybrid::mtl {

struct mmoe_options {
  index_t experts = 4;
  index_t width = 32;   // each expert's output, what each head receives
  index_t hidden = 0;   // one hidden layer of this size per expert; 0: an expert is one linear layer
  double dropout = 0;   // after each expert layer (training only)
};

// h_k = sum_e softmax(x G_k^T + c_k)_e * expert_e(x), experts_e = ReLU MLPs. Names: tower.experts.<e>.layers.<i>.*,
// tower.gates.<task>.* (the gate of a task is task-specific; the experts are shared).
template <mmoe_options Options = mmoe_options{}>
struct mmoe {
  using option_kind = tower_option;
  static_assert(Options.experts >= 1 && Options.width >= 1 && Options.hidden >= 0, "mmoe: experts and width must be positive");

  template <class T, index_t In, std::size_t Tasks>
  class op {
   public:
    using value_type = T;
    static constexpr index_t width = Options.width;

    explicit op(std::span<const std::string_view> task_names) {
      if (task_names.size() != Tasks) throw std::invalid_argument("mmoe: one name per task");
      std::mt19937 rng(23);
      const layers::mlp_options mo{.act = layers::activation::relu, .dropout = Options.dropout, .activate_last = true};
      for (index_t e = 0; e < Options.experts; ++e) {
        experts_.push_back(Options.hidden ? layers::mlp<T>({In, Options.hidden, Options.width}, mo)
                                          : layers::mlp<T>({In, Options.width}, mo));
        experts_.back().init(rng);
      }
      for (std::size_t k = 0; k < Tasks; ++k) {
        names_[k] = std::string(task_names[k]);
        gates_[k] = layers::linear<T>(In, Options.experts);
        gates_[k].init(rng);
      }
    }
    op() : op(default_names()) {}

    template <class F>
    void visit(const std::string& prefix, F&& f) {
      visit_shared(prefix, f);
      for (std::size_t k = 0; k < Tasks; ++k) gates_[k].visit(join_name(prefix, "gates." + names_[k]), f);
    }
    template <class F>
    void visit_shared(const std::string& prefix, F&& f) {
      for (std::size_t e = 0; e < experts_.size(); ++e)
        experts_[e].visit(join_name(prefix, "experts." + std::to_string(e)), f);
    }
    layers::linear<T>& gate(std::size_t task) { return gates_.at(task); }

    // The gate weights [B, E] of a task for an input (e.g. to see which experts a task uses).
    var<T> gate_weights(const var<T>& shared, std::size_t task) const { return softmax(gates_.at(task)(shared)); }

    std::array<var<T>, Tasks> operator()(const var<T>& shared, dropout_rng& rng, bool training) const {
      if (shared.rank() != 2 || shared.dim(1) != In)
        throw shape_error("mmoe", "input", shared.shape(), "expected", hybrid::shape{shared.rank() ? shared.dim(0) : 0, In});
      const index_t B = shared.dim(0), E = Options.experts, W = Options.width;
      std::vector<var<T>> outs;
      outs.reserve(experts_.size());
      for (const auto& e : experts_) outs.push_back(e(shared, rng, training));
      // [B, E, W]: each sample's expert outputs as rows, mixed by one batched product per task.
      var<T> stacked = reshape(E == 1 ? outs.front() : concat(outs, -1), {B, E, W});
      std::array<var<T>, Tasks> mixed;
      for (std::size_t k = 0; k < Tasks; ++k)
        mixed[k] = reshape(matmul(reshape(gate_weights(shared, k), {B, 1, E}), stacked), {B, W});
      return mixed;
    }

   private:
    static std::span<const std::string_view> default_names() {
      static const auto names = [] {
        static std::array<std::string, Tasks> s;
        static std::array<std::string_view, Tasks> v;
        for (std::size_t k = 0; k < Tasks; ++k) v[k] = s[k] = std::to_string(k);
        return v;
      }();
      return names;
    }
    std::vector<layers::mlp<T>> experts_;
    std::array<layers::linear<T>, Tasks> gates_;
    std::array<std::string, Tasks> names_;
  };
};

}  // namespace hybrid::mtl
