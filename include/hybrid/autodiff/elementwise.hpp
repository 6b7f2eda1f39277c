// Elementwise math on vars: operators and functions build expression trees; assigning one to a
// var evaluates it in ONE SIMD loop and records ONE tape entry whose backward is ONE fused loop.
#pragma once
#include <cmath>
#include <numbers>
#include <utility>

#include "hybrid/autodiff/expr.hpp"
#include "hybrid/autodiff/parameter.hpp"
#include "hybrid/backend/parallel.hpp"

namespace hybrid {

// ---- operands: var, parameter, expression, or a plain number --------------------------------------
namespace detail {
template <class X>
struct operand_type {
  using type = void;
};
template <class T>
struct operand_type<var<T>> {
  using type = T;
};
template <class T>
struct operand_type<parameter<T>> {
  using type = T;
};
template <expression E>
struct operand_type<E> {
  using type = typename E::value_type;
};
}  // namespace detail
template <class X>
using operand_value_t = typename detail::operand_type<std::remove_cvref_t<X>>::type;

template <class X>
concept tensor_operand = !std::is_void_v<operand_value_t<X>>;
template <class X>
concept operand = tensor_operand<X> || std::is_arithmetic_v<std::remove_cvref_t<X>>;

template <class T, class X>
auto as_expr(const X& x) {
  using D = std::remove_cvref_t<X>;
  if constexpr (expression<D>) return x;
  else if constexpr (std::is_arithmetic_v<D>) return expr_scalar<T>(static_cast<T>(x));
  else if constexpr (std::same_as<D, parameter<T>>) return expr_leaf<T>(x.use().get());
  else return expr_leaf<T>(x.get());
}

template <class A, class B>
using common_operand_t = std::conditional_t<tensor_operand<A>, operand_value_t<A>, operand_value_t<B>>;

// ---- the op catalogue ------------------------------------------------------------------------------
namespace ops {
template <class P>
using scalar_of = typename simd::pack_traits<P>::value_type;

struct add {
  template <class P> P f(P a, P b) const { return a + b; }
  template <class P> P da(P, P, P) const { return P(1); }
  template <class P> P db(P, P, P) const { return P(1); }
};
struct sub {
  template <class P> P f(P a, P b) const { return a - b; }
  template <class P> P da(P, P, P) const { return P(1); }
  template <class P> P db(P, P, P) const { return P(-1); }
};
struct mul {
  template <class P> P f(P a, P b) const { return a * b; }
  template <class P> P da(P, P b, P) const { return b; }
  template <class P> P db(P a, P, P) const { return a; }
};
struct div {
  template <class P> P f(P a, P b) const { return a / b; }
  template <class P> P da(P, P b, P) const { return P(1) / b; }
  template <class P> P db(P, P b, P y) const { return -y / b; }
};
struct pow {
  template <class P> P f(P a, P b) const { using std::pow; return pow(a, b); }
  template <class P> P da(P a, P b, P) const { using std::pow; return b * pow(a, b - P(1)); }
  template <class P> P db(P a, P, P y) const { using std::log; return y * log(a); }
};
struct maximum {
  template <class P> P f(P a, P b) const { using std::max; return max(a, b); }
  template <class P> P da(P a, P b, P) const { using simd::select; return select(a >= b, P(1), P(0)); }
  template <class P> P db(P a, P b, P) const { using simd::select; return select(a >= b, P(0), P(1)); }
};
struct minimum {
  template <class P> P f(P a, P b) const { using std::min; return min(a, b); }
  template <class P> P da(P a, P b, P) const { using simd::select; return select(a <= b, P(1), P(0)); }
  template <class P> P db(P a, P b, P) const { using simd::select; return select(a <= b, P(0), P(1)); }
};

struct neg {
  template <class P> P f(P x) const { return -x; }
  template <class P> P df(P, P) const { return P(-1); }
};
struct exp {
  template <class P> P f(P x) const { using std::exp; return exp(x); }
  template <class P> P df(P, P y) const { return y; }
};
struct log {
  template <class P> P f(P x) const { using std::log; return log(x); }
  template <class P> P df(P x, P) const { return P(1) / x; }
};
struct sqrt {
  template <class P> P f(P x) const { using std::sqrt; return sqrt(x); }
  template <class P> P df(P, P y) const { return P(0.5) / y; }
};
struct rsqrt {
  template <class P> P f(P x) const { using std::sqrt; return P(1) / sqrt(x); }
  template <class P> P df(P, P y) const { return P(-0.5) * y * y * y; }
};
struct abs {
  template <class P> P f(P x) const { using std::abs; return abs(x); }
  template <class P> P df(P x, P) const {
    using simd::select;
    return select(x > P(0), P(1), select(x < P(0), P(-1), P(0)));
  }
};
struct tanh {
  template <class P> P f(P x) const { using std::tanh; return tanh(x); }
  template <class P> P df(P, P y) const { return P(1) - y * y; }
};
struct sigmoid {
  template <class P> P f(P x) const { using std::exp; return P(1) / (P(1) + exp(-x)); }
  template <class P> P df(P, P y) const { return y * (P(1) - y); }
};
struct relu {
  template <class P> P f(P x) const { using std::max; return max(x, P(0)); }
  template <class P> P df(P x, P) const { using simd::select; return select(x > P(0), P(1), P(0)); }
};
// GELU with the exact erf, as BERT uses.
struct gelu {
  template <class P> P f(P x) const {
    using std::erf;
    return P(0.5) * x * (P(1) + erf(x * P(std::numbers::sqrt2 / 2)));
  }
  template <class P> P df(P x, P) const {
    using std::erf;
    using std::exp;
    const P cdf = P(0.5) * (P(1) + erf(x * P(std::numbers::sqrt2 / 2)));
    const P pdf = exp(P(-0.5) * x * x) * P(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
    return cdf + x * pdf;
  }
  template <class P> std::pair<P, P> fdf(P x) const {
    using std::erf;
    using std::exp;
    const P cdf = P(0.5) * (P(1) + erf(x * P(std::numbers::sqrt2 / 2)));
    const P pdf = exp(P(-0.5) * x * x) * P(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
    return {x * cdf, cdf + x * pdf};
  }
};
// GELU's tanh approximation (GPT-2's "gelu_new").
struct gelu_tanh {
  static constexpr double k = 0.7978845608028654;  // sqrt(2/pi)
  template <class P> P f(P x) const {
    using std::tanh;
    return P(0.5) * x * (P(1) + tanh(P(k) * (x + P(0.044715) * x * x * x)));
  }
  template <class P> P df(P x, P) const {
    using std::tanh;
    const P t = tanh(P(k) * (x + P(0.044715) * x * x * x));
    return P(0.5) * (P(1) + t) + P(0.5) * x * (P(1) - t * t) * P(k) * (P(1) + P(3 * 0.044715) * x * x);
  }
};
// log(1 + e^x) without overflow; PyTorch's default softplus (beta 1, no threshold cut).
struct softplus {
  template <class P> P f(P x) const {
    using std::abs;
    using std::exp;
    using std::log1p;
    using std::max;
    return max(x, P(0)) + log1p(exp(-abs(x)));
  }
  template <class P> P df(P x, P) const { using std::exp; return P(1) / (P(1) + exp(-x)); }
};
template <class T>
struct pow_scalar {
  T p;
  template <class P> P f(P x) const { using std::pow; return pow(x, P(p)); }
  template <class P> P df(P x, P) const { using std::pow; return P(p) * pow(x, P(p - T(1))); }
};
template <class T>
struct clamp {
  T lo, hi;
  template <class P> P f(P x) const { using std::max; using std::min; return min(max(x, P(lo)), P(hi)); }
  template <class P> P df(P x, P) const {
    using simd::select;
    return select(x < P(lo), P(0), select(x > P(hi), P(0), P(1)));
  }
};
}  // namespace ops

// ---- building expressions --------------------------------------------------------------------------
template <class Op, class X>
  requires tensor_operand<X>
auto make_unary(Op op, const X& x) {
  using T = operand_value_t<X>;
  auto e = as_expr<T>(x);
  return expr_unary<Op, decltype(e)>(op, e);
}
template <class Op, class A, class B>
  requires(operand<A> && operand<B> && (tensor_operand<A> || tensor_operand<B>))
auto make_binary(Op op, const A& a, const B& b) {
  using T = common_operand_t<A, B>;
  static_assert(!(tensor_operand<A> && tensor_operand<B>) || std::is_same_v<operand_value_t<A>, operand_value_t<B>>,
                "hybrid: cannot mix float and double tensors in one expression");
  auto ea = as_expr<T>(a);
  auto eb = as_expr<T>(b);
  return expr_binary<Op, decltype(ea), decltype(eb)>(op, ea, eb);
}

#define HYBRID_BINARY_OPERATOR(sym, op_name)                                  \
  template <class A, class B>                                                 \
    requires(operand<A> && operand<B> && (tensor_operand<A> || tensor_operand<B>)) \
  auto operator sym(const A& a, const B& b) {                                 \
    return make_binary(ops::op_name{}, a, b);                                 \
  }
HYBRID_BINARY_OPERATOR(+, add)
HYBRID_BINARY_OPERATOR(-, sub)
HYBRID_BINARY_OPERATOR(*, mul)
HYBRID_BINARY_OPERATOR(/, div)
#undef HYBRID_BINARY_OPERATOR

template <tensor_operand X>
auto operator-(const X& x) {
  return make_unary(ops::neg{}, x);
}

#define HYBRID_UNARY_FUNCTION(fn)         \
  template <tensor_operand X>             \
  auto fn(const X& x) {                   \
    return make_unary(ops::fn{}, x);      \
  }
HYBRID_UNARY_FUNCTION(exp)
HYBRID_UNARY_FUNCTION(log)
HYBRID_UNARY_FUNCTION(sqrt)
HYBRID_UNARY_FUNCTION(rsqrt)
HYBRID_UNARY_FUNCTION(abs)
HYBRID_UNARY_FUNCTION(tanh)
HYBRID_UNARY_FUNCTION(sigmoid)
HYBRID_UNARY_FUNCTION(relu)
HYBRID_UNARY_FUNCTION(gelu)
HYBRID_UNARY_FUNCTION(gelu_tanh)
HYBRID_UNARY_FUNCTION(softplus)
#undef HYBRID_UNARY_FUNCTION

template <class A, class B>
  requires(operand<A> && operand<B> && (tensor_operand<A> || tensor_operand<B>))
auto pow(const A& a, const B& b) {
  if constexpr (std::is_arithmetic_v<std::remove_cvref_t<B>>)
    return make_unary(ops::pow_scalar<operand_value_t<A>>{static_cast<operand_value_t<A>>(b)}, a);
  else
    return make_binary(ops::pow{}, a, b);
}
template <class A, class B>
  requires(operand<A> && operand<B> && (tensor_operand<A> || tensor_operand<B>))
auto maximum(const A& a, const B& b) {
  return make_binary(ops::maximum{}, a, b);
}
template <class A, class B>
  requires(operand<A> && operand<B> && (tensor_operand<A> || tensor_operand<B>))
auto minimum(const A& a, const B& b) {
  return make_binary(ops::minimum{}, a, b);
}
template <tensor_operand X>
auto clamp(const X& x, double lo, double hi) {
  using T = operand_value_t<X>;
  return make_unary(ops::clamp<T>{static_cast<T>(lo), static_cast<T>(hi)}, x);
}
template <tensor_operand X>
auto square(const X& x) {
  return make_binary(ops::mul{}, x, x);
}
// a where mask != 0, else b; the mask is any operand and gets no gradient.
template <tensor_operand M, operand A, operand B>
auto where(const M& mask, const A& a, const B& b) {
  using T = operand_value_t<M>;
  auto em = as_expr<T>(mask);
  auto ea = as_expr<T>(a);
  auto eb = as_expr<T>(b);
  return expr_select<decltype(em), decltype(ea), decltype(eb)>(em, ea, eb);
}

// ---- evaluation ------------------------------------------------------------------------------------
namespace detail {
// The result's shape is the largest operand's; every other operand must broadcast to it.
template <class E>
hybrid::shape bind_broadcast(E& e) {
  hybrid::shape out;
  bool any = false;
  e.for_each_leaf([&](auto& leaf) {
    if (!any || leaf.n->shape.numel() > out.numel()) out = leaf.n->shape;
    any = true;
  });
  const index_t cols = out.cols();
  e.for_each_leaf([&](auto& leaf) {
    const hybrid::shape& s = leaf.n->shape;
    leaf.cols = cols;
    if (s == out) {
      leaf.kind = broadcast::full;
    } else if (s.numel() == 1) {
      leaf.kind = broadcast::scalar;
    } else if (s.numel() == cols && s.cols() == cols && s.rank() <= out.rank()) {
      leaf.kind = broadcast::row;
    } else if (s == out.with(-1, 1)) {
      leaf.kind = broadcast::column;
    } else {
      throw shape_error("elementwise", "operand", s, "result", out,
                        "operands broadcast as the same shape, a row [cols], a column [..., 1] or a scalar");
    }
  });
  return out;
}

// The expression is taken by value: its row cursors become registers of this loop.
template <class P, class E, class T>
HYBRID_EXPR_INLINE void eval_row(E e, index_t r, index_t cols, T* out) {
  constexpr int W = simd::pack_traits<P>::width;
  e.for_each_leaf([&](auto& leaf) { leaf.bind_row(r, 0); });
  typename E::template cache<P> k;
  typename E::template cache<T> k1;
  index_t c = 0;
  for (; c + W <= cols; c += W) simd::pack_traits<P>::store(out + c, e.template eval<P>(c, k));
  for (; c < cols; ++c) out[c] = e.template eval<T>(c, k1);
}
template <class P, class E, class T>
HYBRID_EXPR_INLINE void backprop_row(E e, index_t r, index_t cols, index_t chunk, const T* g) {
  constexpr int W = simd::pack_traits<P>::width;
  e.for_each_leaf([&](auto& leaf) { leaf.bind_row(r, chunk); });
  typename E::template cache<P> k;
  typename E::template cache<T> k1;
  index_t c = 0;
  for (; c + W <= cols; c += W) {
    e.template eval<P>(c, k);
    e.backprop(c, simd::pack_traits<P>::load(g + c), k);
  }
  for (; c < cols; ++c) {
    e.template eval<T>(c, k1);
    e.backprop(c, g[c], k1);
  }
}

// Whether `leaf` is the only leaf of e that reads its node, directly or through a view.
template <class E, class Leaf>
bool only_reader(const E& e, const Leaf& leaf) {
  const void* mine = leaf.n;
  int readers = 0;
  e.for_each_leaf([&](const auto& other) {
    if (static_cast<const void*>(other.n) == mine || static_cast<const void*>(other.n->base) == mine) ++readers;
  });
  return readers == 1;
}
}  // namespace detail

// Evaluates an expression into a new var (one loop) and records its fused backward (one loop).
template <class Simd = simd::default_policy, class Exec = exec::default_policy, expression E>
auto evaluate(const E& expr) {
  using T = typename E::value_type;
  using P = typename Simd::template pack<T>;
  E e = expr;
  const hybrid::shape out_shape = detail::bind_broadcast(e);
  tape& tp = tape::current();
  const bool needs_grad = tp.recording() && e.needs_grad;
  var<T> out = make_result<T>(out_shape, needs_grad);
  const index_t rows = out_shape.rows(), cols = out_shape.cols();
  const exec::row_chunks chunks(rows, cols);
  T* y = out.data();
  Exec::for_each(chunks.count, [&](index_t k) {
    for (index_t r = chunks.begin(k); r < chunks.end(k); ++r) detail::eval_row<P>(e, r, cols, y + r * cols);
  });
  if (needs_grad) {
    node<T>* result = out.get();
    // Row and scalar leaves sum their adjoints per chunk (chunks x cols partials each): at most 64
    // chunks keeps that traffic small; still fixed by the sizes alone.
    const exec::row_chunks chunks_b(rows, cols, std::max<index_t>(16384, cols * ((rows + 63) / 64)));
    tp.record(result, [e, result, chunks = chunks_b, cols]() mutable {
      tape& t = tape::current();
      e.for_each_leaf([&](auto& leaf) {
        if (!leaf.needs_grad) return;
        // A full-shape leaf whose node no other leaf reads (nor a view of it) writes every element of its
        // adjoint exactly once below: when that adjoint is new, it is stored, not zeroed and then added to.
        if (leaf.kind == broadcast::full && detail::only_reader(e, leaf))
          leaf.adjoint = t.adjoint_to_overwrite(leaf.n, leaf.overwrite);
        else
          leaf.adjoint = t.adjoint(leaf.n);
        if (leaf.kind == broadcast::row) leaf.partial = t.allocate_zeroed<T>(chunks.count * cols);
        if (leaf.kind == broadcast::scalar) leaf.partial = t.allocate_zeroed<T>(chunks.count);
      });
      const T* g = t.adjoint(result);
      Exec::for_each(chunks.count, [&](index_t k) {
        for (index_t r = chunks.begin(k); r < chunks.end(k); ++r) detail::backprop_row<P>(e, r, cols, k, g + r * cols);
      });
      // Partial sums are folded in chunk order: the same result for any thread count.
      e.for_each_leaf([&](auto& leaf) {
        if (!leaf.needs_grad || !leaf.partial) return;
        const index_t width = leaf.kind == broadcast::row ? cols : 1;
        for (index_t k = 0; k < chunks.count; ++k)
          for (index_t c = 0; c < width; ++c) leaf.adjoint[c] += leaf.partial[k * width + c];
      });
    });
  }
  return out;
}

template <class T>
template <class E>
  requires expression<E>
var<T>::var(const E& e) : node_(evaluate(e).get()) {
  static_assert(std::is_same_v<typename E::value_type, T>, "hybrid: expression and var scalar types differ");
}

}  // namespace hybrid
