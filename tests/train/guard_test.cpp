// step_guard: non-finite losses and gradients are skipped without touching weights or optimizer state,
// counted, and N in a row stop training with a message naming step, loss and parameter.
#include <hybrid/train/guard.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <hybrid/optim/adam.hpp>
#include <hybrid/optim/clip.hpp>
#include <hybrid/optim/sgd.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double qnan = std::numeric_limits<double>::quiet_NaN();

// Two named parameters with a fixed, finite gradient that each test may poison.
struct two_params {
  parameter<float> w{"fc.weight", tensor<float>({2, 3}, {0.5f, -1.f, 2.f, 0.25f, 1.5f, -0.75f})};
  parameter<float> b{"fc.bias", tensor<float>({3}, {0.1f, 0.2f, -0.3f})};
  std::vector<parameter<float>*> params() { return {&w, &b}; }
  void set_grads() {
    for (index_t i = 0; i < 6; ++i) w.grad()[i] = 0.1f * float(i + 1);
    for (index_t i = 0; i < 3; ++i) b.grad()[i] = -0.2f * float(i + 1);
  }
};

// The bytes of every weight and optimizer state tensor, plus the step count: "untouched" means equal bytes.
std::vector<unsigned char> snapshot(two_params& m, optim::optimizer<float>& opt) {
  std::vector<unsigned char> out;
  auto add = [&](const tensor<float>& t) {
    const auto* p = reinterpret_cast<const unsigned char*>(t.data());
    out.insert(out.end(), p, p + t.numel() * index_t(sizeof(float)));
  };
  add(m.w.value());
  add(m.b.value());
  for (const auto& nt : opt.state().tensors) add(nt.value);
  const index_t step = opt.step_count();
  const auto* s = reinterpret_cast<const unsigned char*>(&step);
  out.insert(out.end(), s, s + sizeof step);
  return out;
}

}  // namespace

TEST_CASE("finite steps update as opt.step() does") {
  two_params a, b;
  optim::adamw<float> oa(a.params(), {.lr = 0.1}), ob(b.params(), {.lr = 0.1});
  train::step_guard guard(oa);
  for (int s = 0; s < 3; ++s) {
    a.set_grads();
    b.set_grads();
    CHECK(guard.step(1.5));
    ob.step();
  }
  CHECK(snapshot(a, oa) == snapshot(b, ob));
  CHECK(guard.steps() == 3);
  CHECK(guard.skipped() == 0);
  CHECK(oa.step_count() == 3);
}

TEST_CASE("a NaN loss skips the step: weights and Adam state bit-identical") {
  two_params m;
  optim::adamw<float> opt(m.params(), {.lr = 0.1});
  train::step_guard guard(opt, {.max_consecutive_skips = 3});
  m.set_grads();
  REQUIRE(guard.step(2.0));  // moments non-zero, step 1
  const auto before = snapshot(m, opt);
  m.set_grads();
  CHECK_FALSE(guard.step(qnan));
  CHECK(snapshot(m, opt) == before);
  CHECK(opt.step_count() == 1);
  CHECK(guard.skipped() == 1);
  CHECK(guard.consecutive_skips() == 1);
  CHECK(guard.steps() == 2);
}

TEST_CASE("an Inf gradient in one parameter skips the step and is located") {
  two_params m;
  optim::adamw<float> opt(m.params(), {.lr = 0.1});
  train::step_guard guard(opt);
  m.set_grads();
  REQUIRE(guard.step(2.0));
  const auto before = snapshot(m, opt);
  m.set_grads();
  m.b.grad()[2] = std::numeric_limits<float>::infinity();
  CHECK_FALSE(guard.step(1.0));
  CHECK(snapshot(m, opt) == before);

  const auto g = train::first_non_finite_gradient(m.params());
  REQUIRE(g);
  CHECK(g->parameter == "fc.bias");
  CHECK(g->index == 2);
  CHECK(g->value == inf);
  // Clipping first does not hide it: clip_grad_norm leaves non-finite gradients as they are.
  CHECK_FALSE(std::isfinite(optim::clip_grad_norm(opt, 1.0)));
  CHECK_FALSE(guard.step(1.0));
  CHECK(snapshot(m, opt) == before);
}

TEST_CASE("the first non-finite gradient is found past the first slice, in optimizer order") {
  parameter<double> big("big", shape{100000}), small("", shape{4});
  big.grad()[70001] = qnan;
  big.grad()[99999] = -inf;
  small.grad()[0] = inf;
  const auto g = train::first_non_finite_gradient(std::vector{&small, &big});
  REQUIRE(g);
  CHECK(g->parameter == "#0");  // unnamed: its position
  const auto h = train::first_non_finite_gradient(std::vector{&big, &small});
  REQUIRE(h);
  CHECK(h->parameter == "big");
  CHECK(h->index == 70001);
  CHECK(std::isnan(h->value));
  // Frozen parameters are not checked (they get no gradient and no update).
  big.set_trainable(false);
  CHECK(train::first_non_finite_gradient(std::vector{&big})  == std::nullopt);
  CHECK_FALSE(train::first_non_finite_gradient(std::vector{&big, &small}) == std::nullopt);
}

TEST_CASE("N consecutive skips throw a message naming step, loss and parameter") {
  two_params m;
  optim::sgd<float> opt(m.params(), {.lr = 0.1});
  train::step_guard guard(opt, {.max_consecutive_skips = 3});
  m.set_grads();
  CHECK(guard.step(1.0));  // step 0
  m.w.grad()[4] = -std::numeric_limits<float>::infinity();
  CHECK_FALSE(guard.step(1.0));  // step 1
  CHECK_FALSE(guard.step(qnan));  // step 2
  try {
    guard.step(inf);  // step 3: the third in a row
    FAIL("no exception");
  } catch (const train::non_finite_error& e) {
    const std::string what = e.what();
    CAPTURE(what);
    CHECK(e.step() == 3);
    CHECK(e.loss() == inf);
    REQUIRE(e.gradient());
    CHECK(e.gradient()->parameter == "fc.weight");
    CHECK(e.gradient()->index == 4);
    CHECK(what.find("step 3") != std::string::npos);
    CHECK(what.find("3 consecutive") != std::string::npos);
    CHECK(what.find("steps 1-3") != std::string::npos);
    CHECK(what.find("loss = inf") != std::string::npos);
    CHECK(what.find("'fc.weight' element 4 = -inf") != std::string::npos);
  }
  // A loss that alone is non-finite says so.
  two_params n;
  optim::sgd<float> o2(n.params(), {.lr = 0.1});
  train::step_guard g2(o2, {.max_consecutive_skips = 1});
  n.set_grads();
  try {
    g2.step(qnan);
    FAIL("no exception");
  } catch (const train::non_finite_error& e) {
    CHECK(std::isnan(e.loss()));
    CHECK_FALSE(e.gradient());
    CHECK(std::string(e.what()).find("every gradient finite") != std::string::npos);
  }
}

TEST_CASE("a finite step resets the consecutive count") {
  two_params m;
  optim::adam<float> opt(m.params(), {.lr = 0.01});
  train::step_guard guard(opt, {.max_consecutive_skips = 2});
  for (int round = 0; round < 5; ++round) {
    m.set_grads();
    CHECK_FALSE(guard.step(qnan));
    CHECK(guard.consecutive_skips() == 1);
    CHECK(guard.step(0.5));
    CHECK(guard.consecutive_skips() == 0);
  }
  CHECK(guard.skipped() == 5);
  CHECK(guard.steps() == 10);
  CHECK(opt.step_count() == 5);
  // check() counts the same way without updating.
  m.set_grads();
  CHECK(guard.check(1.0));
  CHECK(opt.step_count() == 5);
  CHECK_FALSE(guard.check(-inf));
  CHECK_THROWS_AS(guard.check(-inf), train::non_finite_error);
}

TEST_CASE("a var loss, and options are checked") {
  two_params m;
  optim::sgd<float> opt(m.params(), {.lr = 0.1});
  CHECK_THROWS_AS(train::step_guard(opt, {.max_consecutive_skips = 0}), std::invalid_argument);
  train::step_guard guard(opt);
  tape_scope scope;
  m.set_grads();
  CHECK(guard.step(constant(shape{}, 0.25f)));
  CHECK_FALSE(guard.step(constant(shape{}, std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace HYBRID_TEST_UNIT
