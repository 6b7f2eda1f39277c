// fused_linear (inference: bias, activation and residual in the product's epilogue) against the unfused ops, on
// every GEMM path (our kernel with dense and prepacked weights, the fallback policies, double), with poisoned
// outputs; layers::linear and the transformer block taking it in inference; errors.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>
#include <hybrid/backend/prepacked_weights.hpp>
#include <hybrid/layers/transformer_block.hpp>
#include <hybrid/ops/fused_linear.hpp>
#include <random>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {

template <class T>
tensor<T> random_tensor(const hybrid::shape& s, std::mt19937& rng) {
  tensor<T> t(s);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (T& v : t) v = T(u(rng));
  return t;
}
// A constant on the tape (no gradient).
template <class T>
var<T> random_var(const hybrid::shape& s, std::mt19937& rng) {
  return constant(random_tensor<T>(s, rng));
}

// act(x W^T + b) + r through the tape's ops, one at a time (the product on the same policy: the same sums).
template <class Gemm = gemm::default_policy, class Exec = exec::default_policy, class T>
var<T> unfused(const var<T>& x, const var<T>& w, const var<T>* b, activation act, const var<T>* r) {
  var<T> y = matmul<Gemm, Exec>(x, w, {.b = true});
  if (b) y = y + *b;
  switch (act) {
    case activation::relu: y = relu(y); break;
    case activation::gelu: y = gelu(y); break;
    case activation::gelu_tanh: y = gelu_tanh(y); break;
    case activation::tanh: y = tanh(y); break;
    case activation::sigmoid: y = sigmoid(y); break;
    case activation::identity: break;
  }
  return r ? y + *r : y;
}

template <class T>
double max_abs_difference(const var<T>& a, const var<T>& b) {
  REQUIRE(a.shape() == b.shape());
  double d = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    const double e = std::abs(double(a.data()[i]) - double(b.data()[i]));
    d = std::isnan(e) ? INFINITY : std::max(d, e);
  }
  return d;
}

constexpr activation all_activations[] = {activation::identity, activation::relu, activation::gelu,
                                          activation::gelu_tanh, activation::tanh, activation::sigmoid};

// Every activation, with and without bias and residual, fused (policy Gemm, poisoned output) against unfused.
template <class Gemm, class Exec, class T>
void check_against_unfused(const hybrid::shape& xs, index_t out, double tolerance) {
  std::mt19937 rng(7);
  const index_t in = xs.dim(-1);
  const var<T> x = random_var<T>(xs, rng), w = random_var<T>({out, in}, rng), b = random_var<T>({out}, rng);
  const var<T> r = random_var<T>(xs.with(-1, out), rng);
  for (activation act : all_activations)
    for (bool with_bias : {false, true})
      for (bool with_residual : {false, true}) {
        CAPTURE(static_cast<int>(act));
        CAPTURE(with_bias);
        CAPTURE(with_residual);
        tape_scope scope;
        const var<T> expected = unfused<Gemm, Exec>(x, w, with_bias ? &b : nullptr, act, with_residual ? &r : nullptr);
        tape::current().set_poisoning(true);  // an output element the epilogue misses stays NaN
        const var<T> got = fused_linear<Gemm, Exec, simd::default_policy>(x, w, with_bias ? &b : nullptr, act,
                                                                          with_residual ? &r : nullptr);
        tape::current().set_poisoning(false);
        CHECK(max_abs_difference(got, expected) <= tolerance);
      }
}

// Shapes: tiny, ragged (tails of the kernel's 14 x 32 tiles and of the SIMD packs), rank 3, and big enough for
// several tiles, K blocks (K > 384) and column blocks (N > 512) of our kernel.
const hybrid::shape input_shapes[] = {{1, 1}, {37, 19}, {3, 50, 33}, {600, 400}, {130, 64}};
const index_t output_sizes[] = {1, 45, 70, 600, 1000};

}  // namespace

TEST_CASE("fused_linear equals the unfused ops, on the default policy (float and double)") {
  for (std::size_t s = 0; s < std::size(input_shapes); ++s) {
    CAPTURE(input_shapes[s].str());
    check_against_unfused<gemm::default_policy, exec::tbb, float>(input_shapes[s], output_sizes[s], 1e-5);
    check_against_unfused<gemm::default_policy, exec::serial, float>(input_shapes[s], output_sizes[s], 1e-5);
    check_against_unfused<gemm::default_policy, exec::tbb, double>(input_shapes[s], output_sizes[s], 1e-12);
  }
}

TEST_CASE("fused_linear on the fallback policies (product, then the epilogue over rows)") {
  for (std::size_t s = 0; s < std::size(input_shapes); ++s) {
    CAPTURE(input_shapes[s].str());
    check_against_unfused<gemm::eigen, exec::tbb, float>(input_shapes[s], output_sizes[s], 1e-5);
#ifdef HYBRID_WITH_OPENBLAS
    check_against_unfused<gemm::blas, exec::tbb, float>(input_shapes[s], output_sizes[s], 1e-5);
#endif
  }
}

TEST_CASE("fused_linear's GELU is within 2.5e-7 max(1, |v|) of the exact value, like the expression path's") {
  // x W^T with W the identity is x exactly (one nonzero term per sum), so the output is gelu(x) as the epilogue
  // computes it (on AVX-512 CPUs its own 16-wide erf) over [-12, 12] and at the edges.
  const index_t n = 96;
  std::vector<float> values;
  for (double v = -12; v <= 12; v += 0.0007) values.push_back(float(v));
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 30.f, -30.f, 1e4f}) values.push_back(v);
  while (values.size() % n) values.push_back(0.f);
  const index_t rows = index_t(values.size()) / n;
  tensor<float> eye({n, n}, 0.f);
  for (index_t i = 0; i < n; ++i) eye(i, i) = 1.f;
  tape_scope scope;
  const var<float> x = constant(tensor<float>::from({rows, n}, values)), w = constant(eye);
  for (const var<float>& y : {fused_linear(x, w, nullptr, activation::gelu, nullptr), var<float>(gelu(x))}) {
    double worst = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const double v = values[i], exact = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      worst = std::max(worst, std::abs(double(y.data()[i]) - exact) / std::max(1.0, std::abs(v)));
    }
    CHECK(worst <= 2.5e-7);
  }
}

TEST_CASE("fused_linear with a weight under gemm::prepacked_weights") {
  std::mt19937 rng(3);
  parameter<float> w("w", random_tensor<float>({600, 400}, rng)), b("b", random_tensor<float>({600}, rng));
  const var<float> x = random_var<float>({2, 300, 400}, rng), r = random_var<float>({2, 300, 600}, rng);
  no_grad ng;
  tape_scope scope;
  const var<float> wv = w.use(), bv = b.use();
  const var<float> expected = unfused(x, wv, &bv, activation::gelu, &r);
  gemm::prepacked_weights packed;
  tape::current().set_poisoning(true);
  const var<float> got = fused_linear(x, wv, &bv, activation::gelu, &r);
  tape::current().set_poisoning(false);
  CHECK(max_abs_difference(got, expected) <= 1e-5);
  if (gemm::fastest::takes_packed_operands()) CHECK(gemm::prepacked_weights::size() == 1);
}

TEST_CASE("layers::linear takes the fused path exactly when nothing needs a gradient") {
  std::mt19937 rng(5);
  layers::linear<float> fc(24, 40);
  fc.init(rng);
  const var<float> x = random_var<float>({5, 24}, rng), r = random_var<float>({5, 40}, rng);
  for (activation act : all_activations) {
    CAPTURE(static_cast<int>(act));
    tape_scope scope;
    const var<float> recorded = fc.apply(x, act, nullptr, false, &r);  // the weight needs a gradient: the tape
    CHECK(recorded.requires_grad());
    no_grad ng;
    const var<float> inferred = fc.apply(x, act, nullptr, false, &r);
    CHECK_FALSE(inferred.requires_grad());
    CHECK(max_abs_difference(inferred, recorded) <= 1e-6);
  }
  // Frozen weights and a constant input: no gradient anywhere, so the fused path even while recording.
  fc.weight().set_trainable(false);
  fc.bias().set_trainable(false);
  tape_scope scope;
  CHECK_FALSE(fc.apply(x, activation::gelu).requires_grad());
  parameter<float> input("input", random_tensor<float>({5, 24}, rng));
  CHECK(fc.apply(input.use(), activation::gelu).requires_grad());
}

TEST_CASE("transformer block: inference (residuals in the epilogues) equals the recorded forward pass") {
  for (bool pre_norm : {false, true}) {
    CAPTURE(pre_norm);
    std::mt19937 rng(11);
    layers::transformer_block<float> block(
        {.width = 32, .heads = 4, .ffn = 64, .pre_norm = pre_norm, .dropout = 0.1, .attention_dropout = 0.1});
    block.init(rng);
    const var<float> x = random_var<float>({2, 9, 32}, rng);
    dropout_rng drop{1, 0};
    tape_scope scope;
    const var<float> recorded = block(x, drop, false);
    CHECK(recorded.requires_grad());
    no_grad ng;
    const var<float> inferred = block(x, drop, false);
    CHECK(max_abs_difference(inferred, recorded) <= 1e-5);
  }
  CHECK_THROWS_AS(layers::transformer_block<float>({.width = 8, .heads = 2, .ffn = 8, .dropout = 1.5}),
                  std::invalid_argument);
}

TEST_CASE("fused_linear errors name the tensors and their shapes") {
  std::mt19937 rng(1);
  const var<float> x = random_var<float>({4, 6}, rng), w = random_var<float>({5, 6}, rng);
  const var<float> bad_bias = random_var<float>({4}, rng), bad_residual = random_var<float>({4, 6}, rng);
  const var<float> bad_w = random_var<float>({5, 7}, rng);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const shape_error& e) {
      return std::string(e.what());
    }
    return std::string("no shape_error");
  };
  const std::string m1 = message([&] { fused_linear(x, bad_w, nullptr, activation::relu, nullptr); });
  CHECK(m1.find("[4, 6]") != std::string::npos);
  CHECK(m1.find("[5, 7]") != std::string::npos);
  const std::string m2 = message([&] { fused_linear(x, w, &bad_bias, activation::relu, nullptr); });
  CHECK(m2.find("bias") != std::string::npos);
  CHECK(m2.find("[4]") != std::string::npos);
  const std::string m3 = message([&] { fused_linear(x, w, nullptr, activation::relu, &bad_residual); });
  CHECK(m3.find("residual") != std::string::npos);
  CHECK(m3.find("[4, 5]") != std::string::npos);
  // Recording, with an input that needs a gradient: this op keeps no tape, so it refuses.
  tape_scope scope;
  parameter<float> xg("x", random_tensor<float>({4, 6}, rng));
  CHECK_THROWS_AS(fused_linear(xg.use(), w, nullptr, activation::relu, nullptr), std::logic_error);
}

}  // namespace HYBRID_TEST_UNIT
