// clip_grad_norm: PyTorch fixture, no-op below the limit, frozen parameters, non-finite norms,
// serial vs tbb, float vs double.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/optim/clip.hpp>
#include <hybrid/optim/sgd.hpp>

#include "fixtures/torch_optim.inc"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
struct three {
  parameter<double> a{"a", {2, 2}}, b{"b", {3}}, c{"c", {1, 1}};
  three() {
    const double* g = torch_optim::clip_grads;
    for (auto* p : {&a, &b, &c})
      for (index_t i = 0; i < p->numel(); ++i) p->grad()[i] = *g++;
  }
  std::vector<parameter<double>*> all() { return {&a, &b, &c}; }
};
}  // namespace

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_") {
  three t;
  const double norm = optim::clip_grad_norm(t.all(), 1.5);
  CHECK(norm == doctest::Approx(torch_optim::clip_norm).epsilon(1e-15));
  const double* want = torch_optim::clip_clipped;
  for (auto* p : t.all())
    for (double g : p->grad()) CHECK(g == doctest::Approx(*want++).epsilon(1e-14));
  CHECK(optim::grad_norm(t.all()) == doctest::Approx(1.5).epsilon(1e-6));
}

TEST_CASE("clip_grad_norm below the limit changes nothing; frozen parameters are left out") {
  three t;
  const double norm = optim::clip_grad_norm(t.all(), 100.0);
  CHECK(norm == doctest::Approx(torch_optim::clip_norm));
  CHECK(t.c.grad()[0] == 0.9);
  t.b.set_trainable(false);
  double sq = 0;
  for (auto* p : {&t.a, &t.c})
    for (double g : p->grad()) sq += g * g;
  CHECK(optim::grad_norm(t.all()) == doctest::Approx(std::sqrt(sq)));
  optim::clip_grad_norm(t.all(), 0.1);
  CHECK(t.b.grad()[1] == 1.5);  // untouched
  // Through an optimizer: its parameters.
  optim::sgd<double> opt(t.all(), {});
  CHECK(optim::clip_grad_norm(opt, 1e9) == doctest::Approx(0.1).epsilon(1e-5));
}

TEST_CASE("clip_grad_norm reports a non-finite norm and leaves gradients alone") {
  for (double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    three t;
    t.b.grad()[2] = bad;
    const double norm = optim::clip_grad_norm(t.all(), 1.0);
    CHECK_FALSE(std::isfinite(norm));
    CHECK(t.a.grad()[0] == 0.3);
    CHECK_THROWS_AS(optim::clip_grad_norm(t.all(), 1.0, {.error_if_nonfinite = true}), std::runtime_error);
  }
}

TEST_CASE("clip_grad_norm: serial and tbb identical, float close to double") {
  std::mt19937 rng(2);
  parameter<float> a("a", {400, 300}), b("b", {400, 300});  // several slices
  fill_uniform(a.grad(), rng);
  b.grad() = a.grad().clone();
  parameter<double> d("d", {400, 300});
  std::copy(a.grad().begin(), a.grad().end(), d.grad().begin());
  const double na = optim::clip_grad_norm<exec::tbb>(std::vector{&a}, 1.0);
  const double nb = optim::clip_grad_norm<exec::serial>(std::vector{&b}, 1.0);
  const double nd = optim::clip_grad_norm(std::vector{&d}, 1.0);
  CHECK(na == nb);
  CHECK(na == doctest::Approx(nd).epsilon(1e-12));  // float grads are summed in double
  CHECK(std::equal(a.grad().begin(), a.grad().end(), b.grad().begin()));
  CHECK(optim::grad_norm(std::vector{&a}) == doctest::Approx(1.0).epsilon(1e-5));
}

}  // namespace HYBRID_TEST_UNIT
