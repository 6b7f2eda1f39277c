// The tape: arena reuse (no allocation in the steady state), reset after backward, scopes, and
// several backward passes over one forward (per-task gradients).
#include <doctest/doctest.h>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/ops/reduce.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("a training step reuses one arena block after warm-up") {
  tape& t = tape::current();
  t.reset();
  parameter<float> w("w", {64, 64}), x("x", {32, 64});
  std::mt19937 rng(1);
  fill_uniform(w.value(), rng);
  fill_uniform(x.value(), rng);
  std::size_t capacity = 0;
  for (int step = 0; step < 6; ++step) {
    var<float> h = tanh(matmul(x.use(), w.use(), {.b = true}));
    var<float> loss = sum(var<float>(h * h));
    loss.backward();
    if (step == 2) capacity = t.memory().capacity();
    if (step > 2) {
      CHECK(t.memory().capacity() == capacity);  // nothing new was allocated
      CHECK(t.memory().block_count() == 1);
    }
  }
}

TEST_CASE("values stay readable after backward until the next step starts") {
  tape& t = tape::current();
  t.reset();
  parameter<double> a("a", tensor<double>({2}, {1.0, 2.0}));
  var<double> y = a * 3.0;
  var<double> l = sum(y);
  l.backward();
  CHECK(y[1] == 6.0);
  CHECK(a.grad()[0] == 3.0);
  var<double> z = a * 2.0;  // a new step: the tape was reset, fresh values
  CHECK(t.entries() == 1);
  CHECK(z[0] == 2.0);
}

TEST_CASE("tape_scope releases everything made inside it") {
  tape& t = tape::current();
  t.reset();
  parameter<float> a("a", {100});
  const auto before = t.memory().bytes_in_use();
  {
    no_grad ng;
    tape_scope scope;
    var<float> y = exp(a);
    CHECK(y.numel() == 100);
    CHECK(t.memory().bytes_in_use() > before);
    CHECK(t.entries() == 0);
  }
  CHECK(t.memory().bytes_in_use() == before);
}

TEST_CASE("several backward passes over one forward give per-task gradients") {
  tape& t = tape::current();
  std::mt19937 rng(3);
  parameter<double> w("w", {4, 3}), x("x", {5, 4});
  fill_uniform(w.value(), rng);
  fill_uniform(x.value(), rng);
  // Reference: each task's gradient from its own forward pass.
  std::vector<std::vector<double>> separate;
  for (int k = 0; k < 2; ++k) {
    t.reset();
    w.zero_grad();
    var<double> z = tanh(matmul(x.use(), w.use()));
    var<double> l = k == 0 ? sum(var<double>(z * z)) : sum(var<double>(exp(z)));
    l.backward();
    separate.emplace_back(w.grad().begin(), w.grad().end());
  }
  // One forward, two retained backward passes.
  t.reset();
  w.zero_grad();
  var<double> z = tanh(matmul(x.use(), w.use()));
  var<double> l0 = sum(var<double>(z * z));
  var<double> l1 = sum(var<double>(exp(z)));
  l0.backward(true);
  std::vector<double> g0(w.grad().begin(), w.grad().end());
  w.zero_grad();
  t.zero_adjoints();
  l1.backward(true);
  std::vector<double> g1(w.grad().begin(), w.grad().end());
  for (std::size_t i = 0; i < g0.size(); ++i) {
    CHECK(g0[i] == doctest::Approx(separate[0][i]).epsilon(1e-12));
    CHECK(g1[i] == doctest::Approx(separate[1][i]).epsilon(1e-12));
  }
}

TEST_CASE("run_backward_until stops at a mark (heads above a shared representation)") {
  tape& t = tape::current();
  t.reset();
  parameter<double> w("w", tensor<double>({1}, {2.0})), v("v", tensor<double>({1}, {3.0}));
  var<double> shared = w * 5.0;  // below the mark
  const auto m = t.position();
  var<double> head = shared * v;  // above the mark
  head.grad_data()[0] = 1.0;
  t.run_backward_until(m, true);
  CHECK(v.grad()[0] == 10.0);            // d head / d v = shared
  CHECK(shared.grads()[0] == 3.0);       // the adjoint arrived at the shared value ...
  CHECK(w.grad()[0] == 0.0);             // ... but did not go below the mark
}

}  // namespace HYBRID_TEST_UNIT
