// layers::attention_pool: weights are a softmax over real tokens, padding gets zero weight, the output is the
// weighted mean; gradients (finite differences, NaN-poisoned) with and without padding; errors.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/layers/attention_pool.hpp>

#include <random>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("attention_pool: softmax weights over the real tokens, weighted mean of the tokens") {
  tape::current().reset();
  layers::attention_pool<double> pool(4, 3);
  std::mt19937 rng(1);
  pool.init(rng);
  assign_names(pool);
  std::vector<std::string> names;
  pool.visit("pool", [&](const std::string& n, parameter<double>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"pool.proj.weight", "pool.proj.bias", "pool.query"});

  tensor<double> x({2, 3, 4});
  for (index_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.7 * double(i));
  const std::vector<float> keep{1, 1, 0, 1, 1, 1};
  no_grad ng;
  const var<double> y = pool(constant(x), keep);
  REQUIRE(y.shape() == hybrid::shape{2, 4});
  const tensor<double>& w = pool.weights();
  REQUIRE(w.shape() == hybrid::shape{2, 3});
  CHECK(w(0, 2) == 0.0);  // padding: exactly zero weight
  CHECK(w(0, 0) + w(0, 1) == doctest::Approx(1.0));
  CHECK(w(1, 0) + w(1, 1) + w(1, 2) == doctest::Approx(1.0));
  for (index_t b = 0; b < 2; ++b)
    for (index_t c = 0; c < 4; ++c) {
      double want = 0;
      for (index_t t = 0; t < 3; ++t) want += w(b, t) * x(b, t, c);
      CHECK(y.value()(b, c) == doctest::Approx(want).epsilon(1e-12));
    }
  // The padded token's content cannot change the output.
  tensor<double> x2 = x.clone();
  for (index_t c = 0; c < 4; ++c) x2(0, 2, c) = 100.0;
  const var<double> y2 = pool(constant(x2), keep);
  for (index_t c = 0; c < 4; ++c) CHECK(y2.value()(0, c) == y.value()(0, c));
  // A sample without any real token pools to zeros, not NaN.
  const std::vector<float> none{0, 0, 0, 1, 1, 1};
  const var<double> y3 = pool(constant(x), none);
  for (index_t c = 0; c < 4; ++c) CHECK(y3.value()(0, c) == 0.0);
}

TEST_CASE("attention_pool gradients match finite differences (with and without padding)") {
  std::mt19937 rng(2);
  layers::attention_pool<double> pool(4, 5);
  pool.init(rng);
  assign_names(pool);
  parameter<double> x("x", {2, 3, 4});
  fill_uniform(x.value(), rng, -1.5, 1.5);
  std::vector<parameter<double>*> ps{&x};
  pool.visit("", [&](const std::string&, parameter<double>& p) { ps.push_back(&p); });
  for (const std::vector<float>& keep : {std::vector<float>{}, std::vector<float>{1, 0, 1, 1, 1, 0}}) {
    CAPTURE(keep.size());
    auto r = check_gradients([&] { return pool(x.use(), keep); }, ps, {.eps = 1e-6, .rtol = 1e-6, .atol = 1e-9});
    INFO(r.report());
    CHECK(r.ok);
  }
}

TEST_CASE("attention_pool: shape errors name the shapes") {
  tape::current().reset();
  layers::attention_pool<float> pool(4);
  const tensor<float> x({2, 3, 5});
  CHECK_THROWS_WITH_AS(pool(constant(x)), doctest::Contains("[2, 3, 5]"), shape_error);
  const tensor<float> ok({2, 3, 4});
  const std::vector<float> keep{1, 1, 1};
  CHECK_THROWS_WITH_AS(pool(constant(ok), keep), doctest::Contains("[2, 3, 4]"), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
