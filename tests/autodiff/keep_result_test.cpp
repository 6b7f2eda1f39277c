// keep_result: in inference a deep stack frees each layer's intermediates (keeping its output) and computes
// the same values; while recording it changes nothing (gradients flow through every layer).
#include <doctest/doctest.h>

#include <thread>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/autodiff/keep_result.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/ops/reduce.hpp>

#include "../test_util.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

constexpr int depth = 12;

// A layer with several intermediates: tanh(x W) * sigmoid(x W) + x.
var<double> layer(const var<double>& x, const parameter<double>& w) {
  var<double> h = matmul(x, w.use());
  var<double> a = tanh(h), g = sigmoid(h);
  return a * g + x;
}

struct run_result {
  std::vector<double> values;
  std::size_t peak_bytes = 0;
};

// Each run on a thread of its own: a fresh tape, so the arena's high-water mark is this run's.
run_result infer(const std::vector<parameter<double>>& ws, const tensor<double>& input, bool keep) {
  run_result r;
  std::thread([&] {
    no_grad ng;
    var<double> x = constant(input);
    for (const auto& w : ws) x = keep ? keep_result([&] { return layer(x, w); }) : layer(x, w);
    r.values.assign(x.values().begin(), x.values().end());
    r.peak_bytes = tape::current().memory().high_water();
  }).join();
  return r;
}

std::vector<parameter<double>> make_weights(index_t width) {
  std::vector<parameter<double>> ws;
  std::mt19937 rng(7);
  for (int i = 0; i < depth; ++i) {
    ws.emplace_back("w" + std::to_string(i), hybrid::shape{width, width});
    fill_uniform(ws.back().value(), rng, -0.3, 0.3);
  }
  return ws;
}

TEST_CASE("keep_result: inference frees each layer's intermediates, same values") {
  const index_t rows = 64, width = 64;
  const auto ws = make_weights(width);
  tensor<double> input({rows, width});
  std::mt19937 rng(3);
  fill_uniform(input, rng);

  const run_result all = infer(ws, input, false), kept = infer(ws, input, true);
  CHECK(kept.values == all.values);  // bitwise: the same arithmetic, only memory differs
  const std::size_t activation = static_cast<std::size_t>(rows * width) * sizeof(double);
  // Without it every layer's h, tanh h, sigmoid h and output stay; with it, the outputs (one activation per
  // layer) and one layer's intermediates at a time.
  CHECK(all.peak_bytes > static_cast<std::size_t>(depth) * 4 * activation);
  CHECK(kept.peak_bytes < static_cast<std::size_t>(depth + 6) * activation);
}

TEST_CASE("keep_result: while recording it returns f's result and gradients reach every layer") {
  tape::current().reset();
  const index_t width = 5;
  auto ws = make_weights(width);
  parameter<double> x("x", hybrid::shape{3, width});
  std::mt19937 rng(11);
  fill_uniform(x.value(), rng);
  std::vector<parameter<double>*> params{&x};
  for (auto& w : ws) params.push_back(&w);
  test_util::expect_gradients(
      [&] {
        var<double> h = x.use();
        for (const auto& w : ws) h = keep_result([&] { return layer(h, w); });
        return sum(var<double>(h * h));
      },
      params);
}

}  // namespace HYBRID_TEST_UNIT
