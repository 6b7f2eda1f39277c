// matmul: values against a naive product, gradients for every transpose combination, batching, errors.
#include <doctest/doctest.h>

#include <vector>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/matmul.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("matmul values match a naive product") {
  tape::current().reset();
  std::mt19937 rng(1);
  parameter<double> a("a", {5, 7}), b("b", {7, 3});
  fill_uniform(a.value(), rng);
  fill_uniform(b.value(), rng);
  var<double> c = matmul(a.use(), b.use());
  REQUIRE(c.shape() == hybrid::shape{5, 3});
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int k = 0; k < 7; ++k) s += a.value()(i, k) * b.value()(k, j);
      CHECK(c[i * 3 + j] == doctest::Approx(s));
    }
}

TEST_CASE("matmul gradients for all transposes, shared and batched b, parameters and intermediate operands") {
  // An intermediate operand (not a parameter) gets a fresh adjoint that matmul's backward writes with beta = 0;
  // check_gradients poisons such adjoints with NaN, so an element left unwritten fails.
  std::mt19937 rng(2);
  auto make = [&](const char* n, hybrid::shape s) {
    parameter<double> p(n, s);
    fill_uniform(p.value(), rng);
    return p;
  };
  auto check = [](auto&& f, std::vector<parameter<double>*> params) {
    const auto r = check_gradients(f, params);
    INFO(r.report());
    CHECK(r.ok);
  };
  for (bool intermediate : {false, true})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        CAPTURE(intermediate);
        CAPTURE(ta);
        CAPTURE(tb);
        // The operand as used: the parameter itself, or a value derived from it.
        auto operand = [intermediate](const parameter<double>& p) {
          return intermediate ? var<double>(tanh(p.use())) : p.use();
        };
        auto a = make("a", ta ? hybrid::shape{4, 3} : hybrid::shape{3, 4});
        auto b = make("b", tb ? hybrid::shape{5, 4} : hybrid::shape{4, 5});
        check([&] { return matmul(operand(a), operand(b), {.a = ta, .b = tb}); }, {&a, &b});
        auto ab = make("ab", ta ? hybrid::shape{2, 3, 4, 3} : hybrid::shape{2, 3, 3, 4});
        auto bb = make("bb", tb ? hybrid::shape{2, 3, 5, 4} : hybrid::shape{2, 3, 4, 5});
        check([&] { return matmul(operand(ab), operand(bb), {.a = ta, .b = tb}); }, {&ab, &bb});
      }
  // A linear layer: [B, T, in] x W[out, in]^T.
  auto x = make("x", {2, 3, 4});
  auto w = make("w", {6, 4});
  check([&] { return matmul(x.use(), w.use(), {.b = true}); }, {&x, &w});
  // The same intermediate on both sides (dA written, then dB added to it), batched and not.
  auto h = make("h", {2, 4, 4});
  check(
      [&] {
        const var<double> t = tanh(h.use());
        return matmul(t, t, {.b = true});
      },
      {&h});
  auto g = make("g", {4, 4});
  check(
      [&] {
        const var<double> t = g.use() * 0.5;
        return matmul(t, t);
      },
      {&g});
}

TEST_CASE("large products: serial and tbb identical, close to a double reference") {
  tape::current().reset();
  std::mt19937 rng(3);
  parameter<float> a("a", {300, 70}), b("b", {70, 600});
  fill_uniform(a.value(), rng);
  fill_uniform(b.value(), rng);
  var<float> c1 = matmul<gemm::eigen, exec::tbb>(a.use(), b.use());
  var<float> c2 = matmul<gemm::eigen, exec::serial>(a.use(), b.use());
  CHECK(std::equal(c1.values().begin(), c1.values().end(), c2.values().begin()));
  var<float> c3 = matmul<gemm::default_policy, exec::tbb>(a.use(), b.use());
  var<float> c4 = matmul<gemm::default_policy, exec::serial>(a.use(), b.use());
  CHECK(std::equal(c3.values().begin(), c3.values().end(), c4.values().begin()));
  MESSAGE("default GEMM policy: " << std::string(gemm::default_policy::name) << " (float: " << gemm::fastest::chosen()
                                  << ")");
  double worst = 0;
  for (int i = 0; i < 300; i += 7)
    for (int j = 0; j < 600; j += 11) {
      double s = 0;
      for (int k = 0; k < 70; ++k) s += double(a.value()(i, k)) * b.value()(k, j);
      worst = std::max({worst, std::abs(s - c1[i * 600 + j]), std::abs(s - c3[i * 600 + j])});
    }
  CHECK(worst < 1e-4);
}

TEST_CASE("matmul shape errors name both shapes") {
  tape::current().reset();
  parameter<float> a("a", {3, 4}), b("b", {5, 6});
  CHECK_THROWS_WITH_AS(matmul(a.use(), b.use()), doctest::Contains("[3, 4]"), shape_error);
  CHECK_THROWS_WITH_AS(matmul(a.use(), b.use()), doctest::Contains("[5, 6]"), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
