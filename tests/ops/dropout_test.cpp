// dropout: drop rate and expectation, gradients only through kept elements, determinism, identity cases.
#include <doctest/doctest.h>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/dropout.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("dropout drops about p, scales the rest by 1/(1-p), keeps the expectation") {
  tape::current().reset();
  for (double p : {0.1, 0.3, 0.5, 0.9}) {
    CAPTURE(p);
    dropout_rng rng{123};
    parameter<double> x("x", tensor<double>({200, 500}, 2.0));
    var<double> y = dropout(x.use(), p, rng);
    index_t dropped = 0;
    double sum = 0;
    bool ok = true;
    for (double v : y.values()) {
      dropped += v == 0;
      ok = ok && (v == 0 || v == doctest::Approx(2.0 / (1 - p)));
      sum += v;
    }
    CHECK(ok);
    const double n = double(y.numel());
    CHECK(std::abs(double(dropped) / n - p) < 5 * std::sqrt(p * (1 - p) / n));
    CHECK(sum / n == doctest::Approx(2.0).epsilon(0.02));
    CHECK(rng.counter == 1);
  }
}

TEST_CASE("identity when not training or p == 0; zeros when p == 1") {
  tape::current().reset();
  dropout_rng rng{5};
  parameter<float> x("x", tensor<float>({3, 4}, 1.5f));
  var<float> xv = x.use();
  CHECK(dropout(xv, 0.5, rng, false).get() == xv.get());
  CHECK(dropout(xv, 0.0, rng).get() == xv.get());
  CHECK(rng.counter == 0);  // no mask drawn: evaluation does not shift the training masks
  var<float> z = dropout(xv, 1.0, rng);
  CHECK(std::all_of(z.values().begin(), z.values().end(), [](float v) { return v == 0; }));
  for (index_t i = 0; i < z.numel(); ++i) z.grad_data()[i] = 1;
  tape::current().run_backward();
  CHECK(std::all_of(x.grad().begin(), x.grad().end(), [](float g) { return g == 0; }));
  tape::current().reset();
  CHECK_THROWS_WITH_AS(dropout(x.use(), 1.5, rng), doctest::Contains("p must be in [0, 1]"), std::invalid_argument);
  CHECK_THROWS_AS(dropout(x.use(), -0.1, rng), std::invalid_argument);
}

TEST_CASE("masks are a function of (seed, counter): reproducible, fresh per call, seeds differ") {
  tape::current().reset();
  parameter<float> x("x", tensor<float>({64, 64}, 1.f));
  auto mask = [&](dropout_rng& r) {
    var<float> y = dropout(x.use(), 0.5, r);
    return std::vector<float>(y.values().begin(), y.values().end());
  };
  dropout_rng a{9}, b{9}, c{10};
  const auto a1 = mask(a), a2 = mask(a), b1 = mask(b), c1 = mask(c);
  CHECK(a1 == b1);
  CHECK(a1 != a2);
  CHECK(a1 != c1);
  dropout_rng replay{9, 1};  // the state before a's second call
  CHECK(mask(replay) == a2);
  // Masks of consecutive calls and of nearby seeds look independent: agreement about 1/2.
  index_t same = 0;
  for (std::size_t i = 0; i < a1.size(); ++i) same += (a1[i] == 0) == (a2[i] == 0);
  CHECK(std::abs(double(same) / double(a1.size()) - 0.5) < 0.05);
}

TEST_CASE("gradients flow only through kept elements") {
  std::mt19937 gen(3);
  parameter<double> x("x", {3, 4, 5}), w("w", {5});
  fill_uniform(x.value(), gen);
  fill_uniform(w.value(), gen);
  for (double p : {0.2, 0.5, 0.8}) {
    CAPTURE(p);
    // f replays the same mask on every call by starting from the same rng state.
    auto r = check_gradients([&] {
      dropout_rng rng{77};
      return dropout(x.use(), p, rng);
    }, {&x});
    INFO(r.report());
    CHECK(r.ok);
    auto r2 = check_gradients([&] {
      dropout_rng rng{78};
      var<double> h = dropout(var<double>(tanh(x * w)), p, rng);
      return var<double>(h * h);
    }, {&x, &w});
    INFO(r2.report());
    CHECK(r2.ok);
  }
  // Explicitly: the gradient is 1/(1-p) where kept, 0 where dropped.
  tape::current().reset();
  x.zero_grad();
  dropout_rng rng{1};
  var<double> y = dropout(x.use(), 0.25, rng);
  for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = 1;
  tape::current().run_backward();
  bool ok = true;
  for (index_t i = 0; i < y.numel(); ++i) ok = ok && x.grad()[i] == (y[i] == 0 ? 0.0 : 1.0 / 0.75);
  CHECK(ok);
}

TEST_CASE("serial and tbb identical, forward and backward") {
  std::mt19937 gen(4);
  parameter<float> x("x", {8, 128, 96});
  fill_uniform(x.value(), gen);
  auto run = [&]<class E>(E) {
    tape::current().reset();
    x.zero_grad();
    dropout_rng rng{2024};
    var<float> y = dropout<E>(x.use(), 0.1, rng);
    y = dropout<E>(y, 0.3, rng);
    for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = float(i % 7) - 3;
    tape::current().run_backward();
    std::vector<float> out(y.values().begin(), y.values().end());
    out.insert(out.end(), x.grad().begin(), x.grad().end());
    return out;
  };
  CHECK(run(exec::serial{}) == run(exec::tbb{}));
}

}  // namespace HYBRID_TEST_UNIT
