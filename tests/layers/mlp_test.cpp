// mlp: values against a naive loop, gradients for every activation (double, rank 2 and 3 inputs),
// Sequential-style names, dropout only in training, and errors.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/layers/mlp.hpp>

#include <cmath>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using layers::activation;

namespace {
double act_ref(activation a, double z) {
  switch (a) {
    case activation::relu: return z > 0 ? z : 0;
    case activation::gelu: return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
    case activation::gelu_tanh: return 0.5 * z * (1 + std::tanh(0.7978845608028654 * (z + 0.044715 * z * z * z)));
    case activation::tanh: return std::tanh(z);
    case activation::sigmoid: return 1 / (1 + std::exp(-z));
    case activation::identity: return z;
  }
  return z;
}

// The mlp computed with plain loops: rows of x through each layer in turn.
std::vector<double> naive(layers::mlp<double>& m, const tensor<double>& x) {
  std::vector<double> h(x.begin(), x.end());
  index_t in = x.dim(-1);
  const index_t rows = x.numel() / in;
  for (std::size_t i = 0; i < m.depth(); ++i) {
    auto& l = m.layer(i);
    const index_t out = l.out_features();
    std::vector<double> y(static_cast<std::size_t>(rows * out));
    for (index_t r = 0; r < rows; ++r)
      for (index_t o = 0; o < out; ++o) {
        double s = l.bias().value()[o];
        for (index_t k = 0; k < in; ++k) s += l.weight().value()(o, k) * h[static_cast<std::size_t>(r * in + k)];
        const bool last = i + 1 == m.depth();
        y[static_cast<std::size_t>(r * out + o)] = last && !m.options().activate_last ? s : act_ref(m.options().act, s);
      }
    h = std::move(y);
    in = out;
  }
  return h;
}
}  // namespace

TEST_CASE("mlp values match a naive loop for every activation") {
  std::mt19937 rng(1);
  for (auto a : {activation::relu, activation::gelu, activation::gelu_tanh, activation::tanh, activation::sigmoid,
                 activation::identity})
    for (bool last : {false, true}) {
      CAPTURE(static_cast<int>(a));
      CAPTURE(last);
      layers::mlp<double> m({5, 7, 6, 3}, {.act = a, .activate_last = last});
      m.init(rng);
      tensor<double> x({2, 3, 5});
      fill_uniform(x, rng, -2, 2);
      tape::current().reset();
      var<double> y = m(constant(x));
      REQUIRE(y.shape() == hybrid::shape{2, 3, 3});
      const auto want = naive(m, x);
      for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == doctest::Approx(want[static_cast<std::size_t>(i)]).epsilon(1e-12));
    }
}

TEST_CASE("mlp gradients match finite differences (inputs and parameters, rank 2 and 3)") {
  std::mt19937 rng(2);
  for (auto a : {activation::relu, activation::gelu, activation::tanh, activation::sigmoid})
    for (hybrid::shape s : {hybrid::shape{3, 4}, hybrid::shape{2, 3, 4}}) {
      CAPTURE(static_cast<int>(a));
      CAPTURE(s.str());
      layers::mlp<double> m({4, 5, 3}, {.act = a, .activate_last = a == activation::tanh});
      assign_names(m);
      auto ps = parameters_of(m);
      for (auto* p : ps) fill_uniform(p->value(), rng, -1, 1);
      parameter<double> x("x", s);
      fill_uniform(x.value(), rng, -1.5, 1.5);
      ps.push_back(&x);
      auto r = check_gradients([&] { return m(x.use()); }, ps, {.rtol = 1e-5});
      INFO(r.report());
      CHECK(r.ok);
    }
}

TEST_CASE("mlp names layers.0, layers.1, ... and counts its parameters") {
  layers::mlp<float> m({4, 8, 2});
  std::vector<std::string> names;
  m.visit("head.topic", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"head.topic.layers.0.weight", "head.topic.layers.0.bias",
                                          "head.topic.layers.1.weight", "head.topic.layers.1.bias"});
  CHECK(count_parameters(m) == 4 * 8 + 8 + 8 * 2 + 2);
  CHECK(m.in_features() == 4);
  CHECK(m.out_features() == 2);
  CHECK(m.depth() == 2);
}

TEST_CASE("mlp dropout acts only in training, deterministically") {
  std::mt19937 rng(3);
  layers::mlp<float> m({6, 32, 32, 4}, {.dropout = 0.5, .activate_last = true});
  m.init(rng);
  tensor<float> x({8, 6});
  fill_uniform(x, rng);
  tape::current().reset();
  const auto eval = m(constant(x)).value();
  dropout_rng d1{.seed = 9}, d2{.seed = 9};
  const auto t1 = m(constant(x), d1, true).value();
  const auto t2 = m(constant(x), d2, true).value();
  CHECK(std::equal(t1.begin(), t1.end(), t2.begin()));
  CHECK(!std::equal(t1.begin(), t1.end(), eval.begin()));
  dropout_rng d3{.seed = 9};
  const auto e2 = m(constant(x), d3, false).value();
  CHECK(std::equal(e2.begin(), e2.end(), eval.begin()));
  CHECK(d3.counter == 0);  // eval mode draws no masks
}

TEST_CASE("mlp errors") {
  CHECK_THROWS_AS(layers::mlp<float>({4}), std::invalid_argument);
  CHECK_THROWS_AS(layers::mlp<float>({4, 0, 2}), std::invalid_argument);
  CHECK_THROWS_AS(layers::mlp<float>({4, 2}, {.dropout = 1.5}), std::invalid_argument);
  layers::mlp<float> m({4, 3});
  tape::current().reset();
  try {
    m(constant(hybrid::shape{2, 5}, 1.0f));
    FAIL("no shape_error");
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("[2, 5]") != std::string::npos);
    CHECK(std::string(e.what()).find("[3, 4]") != std::string::npos);
  }
  CHECK_THROWS_AS(layers::mlp<float>()(constant(hybrid::shape{2, 5}, 1.0f)), std::logic_error);
}

}  // namespace HYBRID_TEST_UNIT
