// The tape: arena reuse (no allocation in the steady state), reset after backward, scopes, several
// backward passes over one forward (per-task gradients), and lazy adjoints (allocated in backward,
// entries nothing reached are skipped, consumed adjoints released).
#include <doctest/doctest.h>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/ops/reduce.hpp>
#include <hybrid/ops/shape_ops.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

// y = x, with a backward that counts its runs: shows which tape entries a backward pass visits.
var<double> counted(const var<double>& x, int* runs) {
  var<double> y = make_result<double>(x.shape(), tape::current().recording() && x.requires_grad());
  std::copy_n(x.data(), x.numel(), y.data());
  if (!y.requires_grad()) return y;
  node<double>*nx = x.get(), *ny = y.get();
  const index_t n = x.numel();
  tape::current().record(ny, [=] {
    ++*runs;
    tape& t = tape::current();
    const double* gy = t.adjoint(ny);
    double* gx = t.adjoint(nx);
    for (index_t i = 0; i < n; ++i) gx[i] += gy[i];
  });
  return y;
}

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

TEST_CASE("the forward pass allocates no adjoint") {
  tape& t = tape::current();
  std::mt19937 rng(4);
  parameter<float> w("w", {128, 128}), b("b", {128}), x("x", {128, 128});
  fill_uniform(w.value(), rng);
  fill_uniform(x.value(), rng);
  auto forward = [&] {
    var<float> h = x.use();
    for (int l = 0; l < 3; ++l) h = gelu(matmul(h, w.use()) + b);
    return h;
  };
  auto forward_bytes = [&](bool grad) {
    t.reset();
    const std::size_t before = t.memory().bytes_in_use();
    var<float> h;
    if (grad) {
      h = forward();
    } else {
      no_grad ng;
      h = forward();
    }
    CHECK(h.requires_grad() == grad);
    if (grad) CHECK(h.grads().empty());  // nothing allocated yet
    return t.memory().bytes_in_use() - before;
  };
  const std::size_t inference = forward_bytes(false), training = forward_bytes(true);
  // Recording adds the six entries (and nothing backward-only: matmul and gelu keep no extra state),
  // far less than one 64 KiB adjoint.
  CHECK(training >= inference);
  CHECK(training - inference < 6 * 512);
  t.reset();
}

TEST_CASE("a stale forward pass is skipped by the next backward pass") {
  tape& t = tape::current();
  t.reset();
  int stale_runs = 0, live_runs = 0;
  {
    parameter<double> gone("gone", tensor<double>({3}, {1.0, 2.0, 3.0}));
    var<double> never = counted(var<double>(gone * 2.0), &stale_runs);  // no backward() follows
    (void)never;
  }  // its parameter (its gradient storage) is destroyed
  parameter<double> w("w", tensor<double>({2}, {1.0, -1.0}));
  var<double> l = sum(counted(var<double>(w * 3.0), &live_runs));
  l.backward();
  CHECK(stale_runs == 0);
  CHECK(live_runs == 1);
  CHECK(w.grad()[0] == 3.0);
  CHECK(w.grad()[1] == 3.0);
}

TEST_CASE("a head that got no loss is skipped, the other gets exactly its gradient") {
  tape& t = tape::current();
  parameter<double> w("w", tensor<double>({2}, {0.5, -0.25})), v1("v1", tensor<double>({2}, {2.0, 3.0})),
      v2("v2", tensor<double>({2}, {-1.0, 4.0}));
  auto run = [&](bool with_second_head, int* runs1, int* runs2) {
    t.reset();
    w.zero_grad();
    v1.zero_grad();
    v2.zero_grad();
    var<double> shared = tanh(w * 1.5);
    var<double> head1 = counted(var<double>(shared * v1), runs1);
    if (with_second_head) (void)counted(var<double>(shared * v2), runs2);  // no labels: no loss
    sum(var<double>(head1 * head1)).backward();
    return std::vector<double>(w.grad().begin(), w.grad().end());
  };
  int a1 = 0, a2 = 0, b1 = 0, b2 = 0;
  const auto alone = run(false, &a1, &a2);
  const auto both = run(true, &b1, &b2);
  CHECK(a1 == 1);
  CHECK(b1 == 1);
  CHECK(b2 == 0);
  CHECK(v2.grad()[0] == 0.0);
  for (std::size_t i = 0; i < alone.size(); ++i) CHECK(both[i] == alone[i]);  // bitwise
}

TEST_CASE("retained passes: the other task's head is skipped until zero_adjoints") {
  tape& t = tape::current();
  t.reset();
  parameter<double> w("w", tensor<double>({2}, {0.5, -0.25}));
  int runs0 = 0, runs1 = 0;
  var<double> z = tanh(w * 2.0);
  var<double> l0 = sum(counted(var<double>(z * z), &runs0));
  var<double> l1 = sum(counted(var<double>(exp(z)), &runs1));
  l0.backward(true);
  CHECK(runs0 == 1);
  CHECK(runs1 == 0);  // task 1's loss got no seed
  const double g0 = w.grad()[0];
  w.zero_grad();
  t.zero_adjoints();
  l1.backward(true);
  CHECK(runs1 == 1);
  const double x = std::tanh(1.0);
  CHECK(g0 == doctest::Approx(2 * x * (1 - x * x) * 2));
  CHECK(w.grad()[0] == doctest::Approx(std::exp(x) * (1 - x * x) * 2));
  t.reset();
}

TEST_CASE("intermediate adjoints are released after backward unless retain_grad() keeps them") {
  tape& t = tape::current();
  t.reset();
  parameter<double> w("w", tensor<double>({3}, {0.5, -1.0, 2.0}));
  var<double> h = w * 3.0;
  var<double> z = tanh(h);
  z.retain_grad();
  var<double> l = sum(var<double>(z * z));
  l.backward();
  REQUIRE(z.grads().size() == 3);
  for (index_t i = 0; i < 3; ++i) CHECK(z.grads()[static_cast<std::size_t>(i)] == 2 * z[i]);  // dl/dz
  CHECK(h.grads().empty());  // consumed and given back
  CHECK(l.grads().empty());
  for (index_t i = 0; i < 3; ++i) CHECK(w.grad()[i] == doctest::Approx(2 * z[i] * (1 - z[i] * z[i]) * 3));
}

TEST_CASE("backward over a deep chain holds values plus a few layers of adjoints") {
  tape& t = tape::current();
  std::mt19937 rng(5);
  constexpr int layers = 20;
  constexpr index_t B = 64, W = 64;
  std::vector<parameter<float>> ws, bs;
  for (int l = 0; l < layers; ++l) {
    ws.emplace_back("w", hybrid::shape{W, W});
    bs.emplace_back("b", hybrid::shape{W});
    fill_uniform(ws.back().value(), rng, -0.2, 0.2);
  }
  parameter<float> x("x", {B, W});
  fill_uniform(x.value(), rng);
  t.reset();
  const std::size_t start = t.memory().bytes_in_use();
  var<float> h = x.use();
  for (int l = 0; l < layers; ++l) h = gelu(matmul(h, ws[static_cast<std::size_t>(l)].use()) + bs[static_cast<std::size_t>(l)]);
  var<float> loss = sum(var<float>(h * h));
  const std::size_t forward = t.memory().bytes_in_use() - start;
  loss.backward();
  const std::size_t backward = t.memory().bytes_in_use() - start - forward;
  const std::size_t one = B * W * sizeof(float);  // one activation, one adjoint
  CHECK(forward >= 2 * layers * one);  // the values
  CHECK(forward < (2 * layers + 4) * one);  // ... and no adjoint (eager ones doubled this)
  // Eager adjoints needed 2 * layers of them; released ones are reused: about two layers live at once.
  CHECK(backward < 6 * one);
  CHECK(ws[0].grad()[0] != 0.0f);
}

TEST_CASE("rewinding a scope after a partial backward pass leaves no dangling adjoint") {
  tape& t = tape::current();
  t.reset();
  parameter<double> w("w", tensor<double>({1}, {2.0})), v("v", tensor<double>({1}, {3.0}));
  var<double> shared = w * 5.0;  // made before the scope; its adjoint will be allocated inside it
  const auto m = t.position();
  {
    tape_scope scope;
    var<double> head = shared * v;
    head.grad_data()[0] = 1.0;
    t.run_backward_until(m, true);
    CHECK(shared.grads()[0] == 3.0);
  }
  CHECK(shared.grads().empty());  // the adjoint lay above the mark: forgotten, not dangling
  v.zero_grad();
  var<double> filler = constant(hybrid::shape{64}, 7.0);  // reuses the memory the scope gave back
  CHECK(filler[0] == 7.0);
  var<double> l = sum(var<double>(shared * 1.0));
  l.backward();
  CHECK(w.grad()[0] == 5.0);
  CHECK(v.grad()[0] == 0.0);
}

TEST_CASE("views read and write their base's adjoint") {
  tape& t = tape::current();
  t.reset();
  parameter<double> w("w", tensor<double>({2, 2}, {1.0, 2.0, 3.0, 4.0}));
  var<double> h = w * 2.0;
  var<double> flat = reshape(h, {4});
  var<double> l = sum(var<double>(flat * flat));
  l.backward();
  for (index_t i = 0; i < 4; ++i) CHECK(w.grad()[i] == 2 * (2 * w.value()[i]) * 2);
}

TEST_CASE("backward on a tape an earlier backward pass spent throws") {
  tape& t = tape::current();
  t.reset();
  parameter<double> w("w", tensor<double>({1}, {2.0}));
  var<double> a = sum(var<double>(w * 2.0));
  var<double> b = sum(var<double>(w * 3.0));
  a.backward();
  CHECK_THROWS_AS(b.backward(), std::logic_error);
  t.reset();
}

}  // namespace HYBRID_TEST_UNIT
