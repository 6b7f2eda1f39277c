// The tower contract: what sits between the shared representation and the task heads (a model option,
// model<..., heads<...>, Tower>), and hard parameter sharing, the default (every head reads the fused vector).
#pragma once
#include <array>
#include <span>
#include <string_view>

#include "hybrid/layers/module.hpp"
#include "hybrid/ops/dropout.hpp"

namespace hybrid::mtl {

// The tag a tower recipe carries (`using option_kind = tower_option;`).
struct tower_option {};

// A tower recipe R: `template <class T, index_t In, std::size_t Tasks> class op`, constructible from the
// task names (heads<...> order), a module (parameters named "tower.*" in the model) with
//   static constexpr index_t width;                     // what each head receives: op<T, width>
//   std::array<var<T>, Tasks> operator()(const var<T>& shared, dropout_rng&, bool training) const;
//   template <class F> void visit_shared(const std::string& prefix, F&& f);
//     the parameters every task trains (gradient surgery combines the tasks' gradients on them;
//     the others, e.g. a task's gate, are task-specific).
template <class Op, class T, std::size_t Tasks>
concept tower_op = module<Op> && requires(const Op& op, const var<T>& x, dropout_rng& rng) {
  { Op::width } -> std::convertible_to<index_t>;
  { op(x, rng, true) } -> std::same_as<std::array<var<T>, Tasks>>;
};

// Hard parameter sharing (Caruana 1997): shared encoders and fusion, one head per task on the fused vector.
struct hard_sharing {
  using option_kind = tower_option;
  template <class T, index_t In, std::size_t Tasks>
  class op {
   public:
    using value_type = T;
    static constexpr index_t width = In;
    op() = default;
    explicit op(std::span<const std::string_view>) {}
    template <class F>
    void visit(const std::string&, F&&) {}
    template <class F>
    void visit_shared(const std::string&, F&&) {}
    std::array<var<T>, Tasks> operator()(const var<T>& shared, dropout_rng&, bool) const {
      std::array<var<T>, Tasks> out;
      out.fill(shared);
      return out;
    }
  };
};

}  // namespace hybrid::mtl
