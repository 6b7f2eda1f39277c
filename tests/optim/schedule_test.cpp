// Learning-rate schedules against hand-computed values of transformers' schedule lambdas.
#include <doctest/doctest.h>

#include <hybrid/optim/schedule.hpp>
#include <hybrid/optim/sgd.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("constant schedules") {
  const auto c = optim::constant_schedule();
  CHECK(c(0) == 1.0);
  CHECK(c(1000000) == 1.0);
  const auto w = optim::constant_schedule_with_warmup(4);
  CHECK(w(0) == 0.0);
  CHECK(w(1) == 0.25);
  CHECK(w(4) == 1.0);
  CHECK(w(100) == 1.0);
}

TEST_CASE("linear schedule with warmup, as get_linear_schedule_with_warmup") {
  const auto s = optim::linear_schedule_with_warmup(10, 110);
  CHECK(s(0) == 0.0);
  CHECK(s(5) == 0.5);
  CHECK(s(10) == 1.0);
  CHECK(s(35) == 0.75);
  CHECK(s(60) == 0.5);
  CHECK(s(109) == doctest::Approx(0.01));
  CHECK(s(110) == 0.0);
  CHECK(s(500) == 0.0);  // clamped at 0 past the end
  // No warmup: starts at 1.
  CHECK(optim::linear_schedule_with_warmup(0, 4)(0) == 1.0);
  CHECK(optim::linear_schedule_with_warmup(0, 4)(1) == 0.75);
}

TEST_CASE("cosine schedule with warmup, as get_cosine_schedule_with_warmup") {
  const auto s = optim::cosine_schedule_with_warmup(10, 110);
  CHECK(s(5) == 0.5);
  CHECK(s(10) == 1.0);
  CHECK(s(60) == doctest::Approx(0.5));
  CHECK(s(35) == doctest::Approx(0.5 * (1 + std::cos(std::numbers::pi * 0.25))));
  CHECK(s(110) == doctest::Approx(0.0));
  CHECK(s(200) >= 0.0);  // clamped; with half a cycle it rises again past the end, as in transformers
  // Two full cycles: back to 1 at the middle.
  const auto two = optim::cosine_schedule_with_warmup(0, 100, 2.0);
  CHECK(two(50) == doctest::Approx(1.0));
  CHECK(two(25) == doctest::Approx(0.0));
}

TEST_CASE("a schedule drives every group's lr from its initial lr") {
  parameter<float> a("a", {1}), b("b", {1});
  optim::sgd<float> opt({{.params = {&a}}, {.params = {&b}, .lr = 1.0}}, {.lr = 0.1});
  const auto s = optim::linear_schedule_with_warmup(2, 10);
  opt.scale_lr(s(1));
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.5));
  opt.scale_lr(s(6));
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.5));
}

}  // namespace HYBRID_TEST_UNIT
