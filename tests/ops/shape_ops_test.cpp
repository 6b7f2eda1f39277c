// shape ops: reshape/slice views share buffers, concat/slice/permute/take_rows values, gradients,
// serial vs tbb, errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <algorithm>
#include <numeric>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/ops/shape_ops.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;
using test_util::expect_gradients;

namespace {
template <class T = double>
// Row-major strides of s, for naive multi-index references.
std::array<index_t, 4> strides(const hybrid::shape& s) {
  std::array<index_t, 4> st{};
  for (index_t k = s.rank() - 1, acc = 1; k >= 0; acc *= s[int(k)], --k) st[size_t(k)] = acc;
  return st;
}
// Calls f(flat index, multi-index) for every element of s.
template <class F>
void for_each_index(const hybrid::shape& s, F&& f) {
  std::array<index_t, 4> idx{};
  for (index_t n = 0; n < s.numel(); ++n) {
    index_t r = n;
    for (int a = s.rank() - 1; a >= 0; --a) idx[size_t(a)] = r % s[a], r /= s[a];
    f(n, idx);
  }
}
// The message of what f throws as E, or "" (and a failed check) when it throws nothing.
template <class E, class F>
std::string thrown(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL_CHECK("nothing thrown");
  return "";
}
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
template <class T>
bool same_bits(std::span<const T> a, std::span<const T> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}
}  // namespace

TEST_CASE("reshape is a view: shared buffers, no tape entry, gradients flow") {
  tape::current().reset();
  std::mt19937 rng(1);
  auto x = random_param<float>("x", {2, 3, 4}, rng);
  var<float> xv = x.use();
  const auto entries = tape::current().entries();
  var<float> y = reshape(xv, {6, 4});
  CHECK(y.shape() == hybrid::shape{6, 4});
  CHECK(y.data() == xv.data());
  CHECK(y.grad_data() == xv.grad_data());
  CHECK(tape::current().entries() == entries);
  // No gradient in, none out; none under no_grad either.
  var<float> c = constant(x.value());
  CHECK_FALSE(reshape(c, {24}).requires_grad());
  {
    no_grad ng;
    CHECK_FALSE(reshape(x.use(), {24}).requires_grad());
  }
  const std::string e = thrown<shape_error>([&] { reshape(xv, {5, 5}); });
  CHECK((has(e, "[2, 3, 4]") && has(e, "[5, 5]")));

  auto a = random_param("a", {2, 3, 4}, rng);
  auto w = random_param("w", {4, 3}, rng);
  // reshape as the output itself, between elementwise ops, and feeding a matmul; twice on one input.
  expect_gradients([&] { return reshape(a.use(), {4, 6}); }, {&a});
  expect_gradients([&] { return var<double>(tanh(reshape(var<double>(a * 2.0), {6, 4}))); }, {&a});
  expect_gradients([&] { return matmul(reshape(a.use(), {6, 4}), w.use()); }, {&a, &w});
  expect_gradients([&] {
    var<double> av = a.use();
    return var<double>(reshape(av, {24}) * reshape(av, {24}) + reshape(av, {24}));
  }, {&a});
}

TEST_CASE("concat values along every axis with different sizes") {
  tape::current().reset();
  std::mt19937 rng(2);
  for (int axis = 0; axis < 3; ++axis) {
    CAPTURE(axis);
    hybrid::shape base{2, 3, 4};
    auto a = random_param<float>("a", base.with(axis, 1), rng);
    auto b = random_param<float>("b", base.with(axis, 3), rng);
    auto c = random_param<float>("c", base.with(axis, 2), rng);
    var<float> y = concat({a.use(), b.use(), c.use()}, axis - 3);  // negative axis form
    REQUIRE(y.shape() == base.with(axis, 6));
    for_each_index(y.shape(), [&](index_t n, std::array<index_t, 4> i) {
      const index_t k = i[size_t(axis)];
      const parameter<float>& src = k < 1 ? a : k < 4 ? b : c;
      i[size_t(axis)] = k < 1 ? k : k < 4 ? k - 1 : k - 4;
      CHECK(y[n] == src.value()(i[0], i[1], i[2]));
    });
  }
}

TEST_CASE("concat gradients, inputs without gradient, vectors of inputs") {
  std::mt19937 rng(3);
  for (int axis = 0; axis < 3; ++axis) {
    CAPTURE(axis);
    hybrid::shape base{3, 2, 5};
    auto a = random_param("a", base.with(axis, 2), rng);
    auto b = random_param("b", base.with(axis, 1), rng);
    auto c = random_param("c", base.with(axis, 3), rng);
    expect_gradients([&] { return concat({a.use(), b.use(), c.use()}, axis); }, {&a, &b, &c});
    tensor<double> k(base.with(axis, 2), 0.5);
    expect_gradients([&] { return var<double>(tanh(concat({constant(k), a.use(), b.use()}, axis))); }, {&a, &b});
    expect_gradients([&] {
      std::vector<var<double>> xs{a.use(), c.use(), a.use()};  // the same input twice accumulates
      return concat(xs, axis);
    }, {&a, &c});
  }
  auto r1 = random_param("r1", {7}, rng), r2 = random_param("r2", {4}, rng);
  expect_gradients([&] { return concat({r1.use(), r2.use()}, 0); }, {&r1, &r2});
  auto q1 = random_param("q1", {2, 1, 2, 3}, rng), q2 = random_param("q2", {2, 1, 2, 2}, rng);
  expect_gradients([&] { return concat({q1.use(), q2.use()}, -1); }, {&q1, &q2});
}

TEST_CASE("slice values, views and gradients") {
  tape::current().reset();
  std::mt19937 rng(4);
  auto x = random_param<float>("x", {3, 5, 4}, rng);
  var<float> xv = x.use();
  var<float> rows = slice(xv, 0, 1, 2);  // contiguous: a view
  CHECK(rows.data() == xv.data() + 20);
  CHECK(rows.grad_data() == xv.grad_data() + 20);
  var<float> mid = slice(xv, 1, 1, 3);
  REQUIRE(mid.shape() == hybrid::shape{3, 3, 4});
  for_each_index(mid.shape(), [&](index_t n, auto i) { CHECK(mid[n] == x.value()(i[0], i[1] + 1, i[2])); });
  var<float> last = slice(xv, -1, 2, 2);
  for_each_index(last.shape(), [&](index_t n, auto i) { CHECK(last[n] == x.value()(i[0], i[1], i[2] + 2)); });
  CHECK(slice(xv, 2, 4, 0).numel() == 0);
  CHECK_THROWS_WITH_AS(slice(xv, 1, 3, 3), doctest::Contains("[3, 5, 4]"), shape_error);
  CHECK_THROWS_AS(slice(xv, 1, -1, 2), shape_error);
  CHECK_THROWS_WITH_AS(slice(xv, 3, 0, 1), doctest::Contains("axis 3"), shape_error);

  auto a = random_param("a", {3, 5, 4}, rng);
  for (int axis = 0; axis < 3; ++axis) {
    CAPTURE(axis);
    expect_gradients([&] { return slice(a.use(), axis, 1, 2); }, {&a});
    expect_gradients([&] { return var<double>(slice(a.use(), axis, 0, 1) * slice(a.use(), axis, 2, 1)); }, {&a});
  }
  auto u = random_param("u", {1, 6, 3}, rng);
  expect_gradients([&] { return var<double>(exp(slice(u.use(), 1, 2, 3))); }, {&u});  // a view past a size-1 axis

}

TEST_CASE("permute matches a naive reference for every permutation of a rank-4 shape") {
  tape::current().reset();
  std::mt19937 rng(5);
  for (hybrid::shape s : {hybrid::shape{2, 3, 4, 5}, hybrid::shape{1, 3, 1, 37}, hybrid::shape{3, 40, 2, 33}}) {
    auto x = random_param<float>("x", s, rng);
    const auto st = strides(s);
    std::array<int, 4> p{0, 1, 2, 3};
    do {
      var<float> y = permute(x.use(), std::span<const int>(p));
      bool ok = true;
      for_each_index(y.shape(), [&](index_t n, auto i) {
        index_t src = 0;
        for (int k = 0; k < 4; ++k) src += i[size_t(k)] * st[size_t(p[size_t(k)])];
        ok = ok && y[n] == x.value()[src];
      });
      CAPTURE(s.str());
      CAPTURE(p[0] * 1000 + p[1] * 100 + p[2] * 10 + p[3]);
      CHECK(ok);
      for (int k = 0; k < 4; ++k) CHECK(y.shape()[k] == s[p[size_t(k)]]);
    } while (std::next_permutation(p.begin(), p.end()));
  }
  // A large plain transpose takes the tiled path.
  auto m = random_param<float>("m", {70, 130}, rng);
  var<float> mt = transpose(m.use(), 0, 1);
  bool ok = true;
  for (int i = 0; i < 70; ++i)
    for (int j = 0; j < 130; ++j) ok = ok && mt[j * 70 + i] == m.value()(i, j);
  CHECK(ok);
  // Moving only size-1 axes is a view.
  auto v = random_param<float>("v", {1, 5, 1, 3}, rng);
  var<float> vv = v.use();
  var<float> pv = permute(vv, {2, 1, 0, 3});
  CHECK(pv.data() == vv.data());
  CHECK(pv.shape() == hybrid::shape{1, 5, 1, 3});
}

TEST_CASE("permute and transpose gradients") {
  std::mt19937 rng(6);
  auto x = random_param("x", {2, 3, 4}, rng);
  std::array<int, 3> p{0, 1, 2};
  do {
    CAPTURE(p[0] * 100 + p[1] * 10 + p[2]);
    expect_gradients([&] { return permute(x.use(), std::span<const int>(p)); }, {&x});
  } while (std::next_permutation(p.begin(), p.end()));
  auto q = random_param("q", {2, 3, 2, 5}, rng);
  expect_gradients([&] { return permute(q.use(), {0, 2, 1, 3}); }, {&q});  // [B,T,H,D] -> [B,H,T,D]
  expect_gradients([&] { return permute(q.use(), {3, 1, 0, 2}); }, {&q});
  expect_gradients([&] { return var<double>(tanh(transpose(q.use(), -2, -1)) * 2.0); }, {&q});
  auto m = random_param("m", {37, 35}, rng);  // more than one 32-wide tile each way
  expect_gradients([&] { return transpose(m.use(), 0, 1); }, {&m});
  // K^T in attention: scores = Q K^T with K transposed by an explicit op.
  auto k = random_param("k", {2, 4, 3}, rng);
  expect_gradients([&] { return matmul(k.use(), transpose(k.use(), 1, 2)); }, {&k});
}

TEST_CASE("permute errors") {
  tape::current().reset();
  parameter<float> x("x", {2, 3, 4});
  CHECK_THROWS_WITH_AS(permute(x.use(), {0, 0, 1}), doctest::Contains("[2, 3, 4]"), shape_error);
  CHECK_THROWS_WITH_AS(permute(x.use(), {0, 1}), doctest::Contains("{0, 1}"), shape_error);
  CHECK_THROWS_AS(permute(x.use(), {0, 1, 3}), shape_error);
  CHECK_THROWS_AS(transpose(x.use(), 0, 3), shape_error);
  CHECK(permute(x.use(), {-1, 0, 1}).shape() == hybrid::shape{4, 2, 3});
}

TEST_CASE("take_rows gathers rows and scatter-adds gradients") {
  tape::current().reset();
  std::mt19937 rng(7);
  auto x = random_param<float>("x", {6, 2, 3}, rng);
  std::vector<std::int32_t> idx{5, 0, 5, 2};
  var<float> y = take_rows(x.use(), idx);
  REQUIRE(y.shape() == hybrid::shape{4, 2, 3});
  for_each_index(y.shape(), [&](index_t n, auto i) { CHECK(y[n] == x.value()(idx[size_t(i[0])], i[1], i[2])); });

  auto a = random_param("a", {6, 4}, rng);
  expect_gradients([&] { return take_rows(a.use(), idx); }, {&a});
  auto b = random_param("b", {5}, rng);
  expect_gradients([&] { return var<double>(exp(take_rows(b.use(), std::vector<std::int32_t>{1, 1, 4, 1}))); }, {&b});
  const std::string e = thrown<std::out_of_range>([&] { take_rows(x.use(), std::vector<std::int32_t>{0, 6}); });
  CHECK((has(e, "id 6") && has(e, "position 1") && has(e, "6 rows")));
}

TEST_CASE("large inputs: serial and tbb identical, forward and backward") {
  tape::current().reset();
  std::mt19937 rng(8);
  auto x = random_param<float>("x", {3, 70, 7, 24}, rng);  // [B, T, H, D]; 682-row chunks split T
  auto y = random_param<float>("y", {3, 70, 7, 24}, rng);
  auto m = random_param<float>("m", {300, 257}, rng);
  std::vector<std::int32_t> idx(3000);
  for (auto& i : idx) i = std::int32_t(rng() % 300);
  auto run = [&]<class E>(E) {
    tape::current().reset();
    x.zero_grad(), y.zero_grad(), m.zero_grad();
    std::vector<var<float>> outs;
    outs.push_back(permute<E>(x.use(), {0, 2, 1, 3}));
    outs.push_back(permute<E>(x.use(), {0, 3, 2, 1}));
    outs.push_back(transpose<E>(m.use(), 0, 1));
    outs.push_back(concat<E>({x.use(), y.use()}, 2));
    outs.push_back(slice<E>(y.use(), 3, 5, 17));
    outs.push_back(take_rows<E>(m.use(), idx));
    std::vector<float> vals;
    float w = 0.5f;
    for (auto& o : outs) {
      vals.insert(vals.end(), o.values().begin(), o.values().end());
      for (index_t i = 0; i < o.numel(); ++i) o.grad_data()[i] = (w += 0.25f) > 3 ? (w = -2) : w;
    }
    tape::current().run_backward();
    for (auto* p : {&x, &y, &m}) vals.insert(vals.end(), p->grad().begin(), p->grad().end());
    return vals;
  };
  const auto a = run(exec::serial{}), b = run(exec::tbb{});
  CHECK(same_bits<float>(a, b));
  // Chunk boundaries fall inside rows groups here: compare the permutes with a naive reference.
  const auto st = strides(x.shape());
  std::size_t at = 0;
  for (std::array<int, 4> p : {std::array<int, 4>{0, 2, 1, 3}, std::array<int, 4>{0, 3, 2, 1}}) {
    hybrid::shape so = x.shape();
    for (int k = 0; k < 4; ++k) so[k] = x.shape()[p[size_t(k)]];
    bool ok = true;
    for_each_index(so, [&](index_t n, auto i) {
      index_t src = 0;
      for (int k = 0; k < 4; ++k) src += i[size_t(k)] * st[size_t(p[size_t(k)])];
      ok = ok && a[at + size_t(n)] == x.value()[src];
    });
    CHECK(ok);
    at += size_t(so.numel());
  }
}

}  // namespace HYBRID_TEST_UNIT
