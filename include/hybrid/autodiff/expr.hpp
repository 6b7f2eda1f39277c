// Expression-template nodes for elementwise chains: `gelu(x * w + b)` is one type whose eval()
// gives a pack of results and whose backprop() pushes a pack of adjoints to every leaf.
// Nodes own no memory; leaves point at tape nodes (FastAD's design).
#pragma once
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/simd.hpp"

namespace hybrid {

struct expression_base {};

// How a leaf's tensor lines up with the result, seen as a rows x cols matrix (PyTorch broadcasting
// restricted to what models need): same shape, a [cols] row vector, a [..., 1] column, or one value.
enum class broadcast : std::uint8_t { full, row, column, scalar };

// Kernels are inlined whole: an out-of-line eval/backprop per pack costs more than the math.
#define HYBRID_EXPR_INLINE [[gnu::always_inline]] inline

// Each node has a per-pack `cache<P>` of its inputs' values: the backward loop evaluates the tree
// once into it and then pushes adjoints down using it (no re-evaluation of subtrees after stores).
struct no_cache {};

template <class T>
struct expr_leaf : expression_base {
  using value_type = T;
  template <class P>
  using cache = no_cache;
  node<T>* n = nullptr;
  broadcast kind = broadcast::full;
  index_t cols = 0;
  T* adjoint = nullptr;  // n's adjoint, taken from the tape before the backward loop (which is parallel)
  T* partial = nullptr;  // per-chunk sums for row/scalar leaves during backward
  bool needs_grad = false;
  bool overwrite = false;  // the adjoint is fresh and this leaf its only writer: store, do not accumulate
  // Row cursor set by bind_row(): the loops over columns see no broadcast kind, only "load or splat".
  const T* v = nullptr;  // this row's values (full, row) or the one value to splat (column, scalar)
  T* g = nullptr;        // where this row's adjoint goes: a grad row, a partial row, or one number
  bool splat = false;

  explicit expr_leaf(node<T>* node_) : n(node_), needs_grad(node_->needs_grad) {}

  template <class F>
  void for_each_leaf(F&& f) {
    f(*this);
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    f(*this);
  }
  void bind_row(index_t r, index_t chunk) {
    splat = kind == broadcast::column || kind == broadcast::scalar;
    switch (kind) {
      case broadcast::full: v = n->value + r * cols; g = adjoint ? adjoint + r * cols : nullptr; break;
      case broadcast::row: v = n->value; g = partial ? partial + chunk * cols : nullptr; break;
      case broadcast::column: v = n->value + r; g = adjoint ? adjoint + r : nullptr; break;
      default: v = n->value; g = partial ? partial + chunk : nullptr; break;
    }
  }

  template <class P>
  HYBRID_EXPR_INLINE P eval(index_t c, no_cache&) const {
    using tr = simd::pack_traits<P>;
    return splat ? tr::splat(*v) : tr::load(v + c);
  }
  template <class P>
  HYBRID_EXPR_INLINE void backprop(index_t c, const P& a, const no_cache&) const {
    using tr = simd::pack_traits<P>;
    if (!needs_grad) return;
    if (splat) *g += tr::sum(a);
    else if (overwrite) tr::store(g + c, a);
    else tr::store(g + c, tr::load(g + c) + a);
  }
};

template <class T>
struct expr_scalar : expression_base {
  using value_type = T;
  template <class P>
  using cache = no_cache;
  T value;
  static constexpr bool needs_grad = false;
  explicit expr_scalar(T v) : value(v) {}
  template <class F>
  void for_each_leaf(F&&) {}
  template <class F>
  void for_each_leaf(F&&) const {}
  template <class P>
  HYBRID_EXPR_INLINE P eval(index_t, no_cache&) const {
    return simd::pack_traits<P>::splat(value);
  }
  template <class P>
  HYBRID_EXPR_INLINE void backprop(index_t, const P&, const no_cache&) const {}
};

// Op: f(x) and df(x, y) with y = f(x) (the compiler drops y when df does not use it).
template <class Op, class E>
struct expr_unary : expression_base {
  using value_type = typename E::value_type;
  template <class P>
  struct cache {
    P y, d;  // f(x) and f'(x)
    [[no_unique_address]] typename E::template cache<P> e;
  };
  Op op;
  E e;
  bool needs_grad;
  expr_unary(Op o, E x) : op(o), e(x), needs_grad(x.needs_grad) {}
  template <class F>
  void for_each_leaf(F&& f) {
    e.for_each_leaf(f);
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    e.for_each_leaf(f);
  }
  // Ops whose value and derivative share work (gelu's erf) provide fdf(x) -> {f, f'}; the forward
  // loop drops the unused derivative.
  template <class P>
  HYBRID_EXPR_INLINE P eval(index_t c, cache<P>& k) const {
    const P x = e.template eval<P>(c, k.e);
    if constexpr (requires { op.fdf(x); }) {
      const auto [y, d] = op.fdf(x);
      k.y = y;
      k.d = d;
    } else {
      k.y = op.f(x);
      k.d = op.df(x, k.y);
    }
    return k.y;
  }
  template <class P>
  HYBRID_EXPR_INLINE void backprop(index_t c, const P& g, const cache<P>& k) const {
    if (!needs_grad) return;
    e.backprop(c, P(g * k.d), k.e);
  }
};

// Op: f(a, b), da(a, b, y), db(a, b, y).
template <class Op, class L, class R>
struct expr_binary : expression_base {
  using value_type = typename L::value_type;
  static_assert(std::is_same_v<typename L::value_type, typename R::value_type>,
                "hybrid: both operands of an elementwise op must have the same scalar type");
  template <class P>
  struct cache {
    P a, b, y;
    [[no_unique_address]] typename L::template cache<P> l;
    [[no_unique_address]] typename R::template cache<P> r;
  };
  Op op;
  L l;
  R r;
  bool needs_grad;
  expr_binary(Op o, L a, R b) : op(o), l(a), r(b), needs_grad(a.needs_grad || b.needs_grad) {}
  template <class F>
  void for_each_leaf(F&& f) {
    l.for_each_leaf(f);
    r.for_each_leaf(f);
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    l.for_each_leaf(f);
    r.for_each_leaf(f);
  }
  template <class P>
  HYBRID_EXPR_INLINE P eval(index_t c, cache<P>& k) const {
    k.a = l.template eval<P>(c, k.l);
    k.b = r.template eval<P>(c, k.r);
    k.y = op.f(k.a, k.b);
    return k.y;
  }
  template <class P>
  HYBRID_EXPR_INLINE void backprop(index_t c, const P& g, const cache<P>& k) const {
    if (!needs_grad) return;
    if (l.needs_grad) l.backprop(c, P(g * op.da(k.a, k.b, k.y)), k.l);
    if (r.needs_grad) r.backprop(c, P(g * op.db(k.a, k.b, k.y)), k.r);
  }
};

// where(mask, a, b): a where mask != 0, else b. The mask gets no gradient.
template <class M, class A, class B>
struct expr_select : expression_base {
  using value_type = typename A::value_type;
  template <class P>
  struct cache {
    P m;
    [[no_unique_address]] typename M::template cache<P> km;
    [[no_unique_address]] typename A::template cache<P> ka;
    [[no_unique_address]] typename B::template cache<P> kb;
  };
  M m;
  A a;
  B b;
  bool needs_grad;
  expr_select(M mask, A x, B y) : m(mask), a(x), b(y), needs_grad(x.needs_grad || y.needs_grad) {}
  template <class F>
  void for_each_leaf(F&& f) {
    m.for_each_leaf(f);
    a.for_each_leaf(f);
    b.for_each_leaf(f);
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    m.for_each_leaf(f);
    a.for_each_leaf(f);
    b.for_each_leaf(f);
  }
  template <class P>
  HYBRID_EXPR_INLINE P eval(index_t c, cache<P>& k) const {
    using simd::select;
    k.m = m.template eval<P>(c, k.km);
    return select(k.m != P(0), a.template eval<P>(c, k.ka), b.template eval<P>(c, k.kb));
  }
  template <class P>
  HYBRID_EXPR_INLINE void backprop(index_t c, const P& g, const cache<P>& k) const {
    using simd::select;
    if (!needs_grad) return;
    const auto keep = k.m != P(0);
    if (a.needs_grad) a.backprop(c, P(select(keep, g, P(0))), k.ka);
    if (b.needs_grad) b.backprop(c, P(select(keep, P(0), g)), k.kb);
  }
};

}  // namespace hybrid
