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

template <class T>
struct expr_leaf : expression_base {
  using value_type = T;
  node<T>* n = nullptr;
  broadcast kind = broadcast::full;
  index_t cols = 0;
  T* partial = nullptr;  // per-chunk sums for row/scalar leaves during backward
  bool needs_grad = false;

  explicit expr_leaf(node<T>* node_) : n(node_), needs_grad(node_->grad != nullptr) {}

  template <class F>
  void for_each_leaf(F&& f) {
    f(*this);
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    f(*this);
  }

  template <class P>
  P eval(index_t r, index_t c) const {
    using tr = simd::pack_traits<P>;
    switch (kind) {
      case broadcast::full: return tr::load(n->value + r * cols + c);
      case broadcast::row: return tr::load(n->value + c);
      case broadcast::column: return tr::splat(n->value[r]);
      default: return tr::splat(n->value[0]);
    }
  }
  template <class P>
  void backprop(index_t r, index_t c, index_t chunk, const P& g) const {
    using tr = simd::pack_traits<P>;
    if (!needs_grad) return;
    switch (kind) {
      case broadcast::full: {
        T* p = n->grad + r * cols + c;
        tr::store(p, tr::load(p) + g);
        break;
      }
      case broadcast::row: {
        T* p = partial + chunk * cols + c;
        tr::store(p, tr::load(p) + g);
        break;
      }
      case broadcast::column: n->grad[r] += tr::sum(g); break;
      default: partial[chunk] += tr::sum(g); break;
    }
  }
};

template <class T>
struct expr_scalar : expression_base {
  using value_type = T;
  T value;
  static constexpr bool needs_grad = false;
  explicit expr_scalar(T v) : value(v) {}
  template <class F>
  void for_each_leaf(F&&) {}
  template <class F>
  void for_each_leaf(F&&) const {}
  template <class P>
  P eval(index_t, index_t) const {
    return simd::pack_traits<P>::splat(value);
  }
  template <class P>
  void backprop(index_t, index_t, index_t, const P&) const {}
};

// Op: f(x) and df(x, y) with y = f(x) (the compiler drops y when df does not use it).
template <class Op, class E>
struct expr_unary : expression_base {
  using value_type = typename E::value_type;
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
  template <class P>
  P eval(index_t r, index_t c) const {
    return op.f(e.template eval<P>(r, c));
  }
  template <class P>
  void backprop(index_t r, index_t c, index_t chunk, const P& g) const {
    if (!needs_grad) return;
    const P x = e.template eval<P>(r, c);
    e.backprop(r, c, chunk, P(g * op.df(x, op.f(x))));
  }
};

// Op: f(a, b), da(a, b, y), db(a, b, y).
template <class Op, class L, class R>
struct expr_binary : expression_base {
  using value_type = typename L::value_type;
  static_assert(std::is_same_v<typename L::value_type, typename R::value_type>,
                "hybrid: both operands of an elementwise op must have the same scalar type");
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
  P eval(index_t row, index_t c) const {
    return op.f(l.template eval<P>(row, c), r.template eval<P>(row, c));
  }
  template <class P>
  void backprop(index_t row, index_t c, index_t chunk, const P& g) const {
    if (!needs_grad) return;
    const P a = l.template eval<P>(row, c);
    const P b = r.template eval<P>(row, c);
    const P y = op.f(a, b);
    if (l.needs_grad) l.backprop(row, c, chunk, P(g * op.da(a, b, y)));
    if (r.needs_grad) r.backprop(row, c, chunk, P(g * op.db(a, b, y)));
  }
};

// where(mask, a, b): a where mask != 0, else b. The mask gets no gradient.
template <class M, class A, class B>
struct expr_select : expression_base {
  using value_type = typename A::value_type;
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
  P eval(index_t r, index_t c) const {
    using simd::select;
    return select(m.template eval<P>(r, c) != P(0), a.template eval<P>(r, c), b.template eval<P>(r, c));
  }
  template <class P>
  void backprop(index_t r, index_t c, index_t chunk, const P& g) const {
    using simd::select;
    if (!needs_grad) return;
    const auto keep = m.template eval<P>(r, c) != P(0);
    if (a.needs_grad) a.backprop(r, c, chunk, P(select(keep, g, P(0))));
    if (b.needs_grad) b.backprop(r, c, chunk, P(select(keep, P(0), g)));
  }
};

}  // namespace hybrid
