// layers::conv (conv2d_layer, conv1d_layer): the module equals the op with its parameters, PyTorch's names,
// shapes and init bound; gradients (finite differences, NaN-poisoned) through weight, bias and input.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/layers/conv.hpp>

#include <random>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("conv2d_layer / conv1d_layer: names, shapes, init bound, same as the op") {
  tape::current().reset();
  std::mt19937 rng(1);
  layers::conv2d_layer<double> c2(3, 4, 3, {.stride = 1, .padding = 1});
  c2.init(rng);
  std::vector<std::string> names;
  c2.visit("conv", [&](const std::string& n, parameter<double>& p) {
    names.push_back(n + p.shape().str());
    const double bound = 1.0 / std::sqrt(27.0);
    for (double v : p.value()) CHECK(std::abs(v) <= bound);
  });
  CHECK(names == std::vector<std::string>{"conv.weight[4, 3, 3, 3]", "conv.bias[4]"});
  tensor<double> x({2, 3, 5, 5});
  fill_uniform(x, rng);
  no_grad ng;
  const var<double> y = c2(constant(x));
  const var<double> want = conv2d(constant(x), c2.weight().use(), c2.bias().use(), {.padding = 1});
  REQUIRE(y.shape() == hybrid::shape{2, 4, 5, 5});
  CHECK(std::equal(y.values().begin(), y.values().end(), want.values().begin()));

  layers::conv1d_layer<double> c1(2, 3, 5, {.stride = 2});
  c1.init(rng);
  CHECK(c1.weight().shape() == hybrid::shape{3, 2, 5});
  tensor<double> s({1, 2, 11});
  fill_uniform(s, rng);
  CHECK(c1(constant(s)).shape() == hybrid::shape{1, 3, 4});
}

TEST_CASE("conv layers: gradients match finite differences") {
  std::mt19937 rng(2);
  layers::conv2d_layer<double> c2(2, 3, 3, {.stride = 2, .padding = 1});
  c2.init(rng);
  parameter<double> x("x", {2, 2, 5, 4});
  fill_uniform(x.value(), rng);
  auto r2 = check_gradients([&] { return c2(x.use()); }, {&x, &c2.weight(), &c2.bias()}, {.eps = 1e-6, .rtol = 1e-6, .atol = 1e-9});
  INFO(r2.report());
  CHECK(r2.ok);
  layers::conv1d_layer<double> c1(2, 2, 3, {.padding = 1});
  c1.init(rng);
  parameter<double> s("s", {2, 2, 6});
  fill_uniform(s.value(), rng);
  auto r1 = check_gradients([&] { return c1(s.use()); }, {&s, &c1.weight(), &c1.bias()}, {.eps = 1e-6, .rtol = 1e-6, .atol = 1e-9});
  INFO(r1.report());
  CHECK(r1.ok);
}

}  // namespace HYBRID_TEST_UNIT
