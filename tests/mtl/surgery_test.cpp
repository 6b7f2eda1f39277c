// The surgery driver: what it writes into shared and task-specific gradients (against separate
// forward passes), accumulation, representation level, and short trainings with each method.
#include <doctest/doctest.h>

#include <chrono>
#include <hybrid/mtl/cagrad.hpp>
#include <hybrid/mtl/mgda.hpp>
#include <hybrid/mtl/pcgrad.hpp>
#include <hybrid/mtl/surgery.hpp>
#include <hybrid/optim/adam.hpp>

#include "tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
using net = tiny::two_task<mtl::fixed_weighting<mtl::task_weights{1.0, 2.0}>>;
constexpr std::size_t n_shared = 4;  // a.proj.{weight,bias}, b.proj.{weight,bias}

// Each task's gradients of every parameter from its own forward pass (of its weighted term).
std::vector<std::vector<std::vector<double>>> separate_gradients(net& m, const batch& b) {
  std::vector<std::vector<std::vector<double>>> g;
  for (std::size_t k = 0; k < 2; ++k) {
    zero_grad(m);
    tape::current().reset();
    auto out = m(b, true);
    m.terms(out, m.losses(out, b))[k].backward();
    g.push_back(tiny::gradients_of(m));
  }
  zero_grad(m);
  return g;
}
mtl::gradient_matrix<double> shared_rows(const std::vector<std::vector<std::vector<double>>>& g) {
  std::vector<double> flat[2];
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t p = 0; p < n_shared; ++p) flat[k].insert(flat[k].end(), g[k][p].begin(), g[k][p].end());
  mtl::gradient_matrix<double> rows(2, static_cast<index_t>(flat[0].size()));
  for (std::size_t k = 0; k < 2; ++k) std::copy(flat[k].begin(), flat[k].end(), rows.row(static_cast<index_t>(k)).data());
  return rows;
}
}  // namespace

TEST_CASE("parameter-level PCGrad: shared gradients are the combination, heads get their own task's") {
  net m;
  tiny::randomize(m, 1);
  const batch b = tiny::two_task_batch(8, 2);
  const auto sep = separate_gradients(m, b);
  mtl::pcgrad reference(42);
  const auto expected = mtl::combine(reference, shared_rows(sep));

  mtl::surgery<mtl::pcgrad> s(mtl::pcgrad(42));
  tape::current().reset();
  auto out = m(b, true);
  const double raw_score = m.losses(out, b)[1].item();
  const auto rep = s.backward(m, out, b);
  CHECK(rep.tasks == std::vector<std::size_t>{0, 1});
  const auto got = tiny::gradients_of(m);
  index_t at = 0;
  for (std::size_t p = 0; p < n_shared; ++p)
    for (double v : got[p]) CHECK(v == doctest::Approx(expected[at++]).epsilon(1e-10));
  for (std::size_t p = n_shared; p < got.size(); ++p) {  // heads.topic.* from task 0, heads.score.* from task 1
    const std::size_t task = p < n_shared + 2 ? 0 : 1;
    for (std::size_t i = 0; i < got[p].size(); ++i) CHECK(got[p][i] == doctest::Approx(sep[task][p][i]).epsilon(1e-12));
  }
  REQUIRE(rep.losses.size() == 2);
  CHECK(rep.weights.size() == 2);
  CHECK(rep.losses[1] == doctest::Approx(raw_score));  // raw losses, not the weighted terms
}

TEST_CASE("surgery adds to gradients already there (accumulation), like backward()") {
  net m;
  tiny::randomize(m, 3);
  const batch b = tiny::two_task_batch(6, 4);
  mtl::surgery<mtl::mgda> s;
  tape::current().reset();
  auto out = m(b, true);
  s.backward(m, out, b);
  const auto once = tiny::gradients_of(m);
  tape::current().reset();
  auto out2 = m(b, true);
  s.backward(m, out2, b);
  const auto twice = tiny::gradients_of(m);
  for (std::size_t p = 0; p < once.size(); ++p)
    for (std::size_t i = 0; i < once[p].size(); ++i) CHECK(twice[p][i] == doctest::Approx(2 * once[p][i]));
}

TEST_CASE("representation-level MGDA (MGDA-UB): weights from the fused gradients, one full pass") {
  net m;
  tiny::randomize(m, 5);
  const batch b = tiny::two_task_batch(7, 6);
  const auto sep = separate_gradients(m, b);
  // Reference weights: MGDA on each task's gradient of the fused vector (separate forwards).
  mtl::gradient_matrix<double> z(2, 7 * 8);
  for (std::size_t k = 0; k < 2; ++k) {
    tape::current().reset();
    auto out = m(b, true);
    out.fused.retain_grad();  // an intermediate value: its adjoint is released after backward otherwise
    m.terms(out, m.losses(out, b))[k].backward();
    std::copy(out.fused.grads().begin(), out.fused.grads().end(), z.row(static_cast<index_t>(k)).data());
  }
  zero_grad(m);
  mtl::mgda ref;
  Eigen::VectorXd alpha;
  (void)mtl::combine(ref, z, &alpha);

  mtl::surgery<mtl::mgda> s({}, mtl::gradient_level::representation);
  tape::current().reset();
  auto out = m(b, true);
  const auto rep = s.backward(m, out, b);
  CHECK(rep.weights[0] == doctest::Approx(alpha[0]));
  const auto got = tiny::gradients_of(m);
  for (std::size_t p = 0; p < got.size(); ++p)
    for (std::size_t i = 0; i < got[p].size(); ++i) {
      const double want = p < n_shared ? alpha[0] * sep[0][p][i] + alpha[1] * sep[1][p][i]
                                       : sep[p < n_shared + 2 ? 0 : 1][p][i];
      CHECK(got[p][i] == doctest::Approx(want).epsilon(1e-10));
    }
}

TEST_CASE("a task without labels in the batch is left out, without NaN") {
  net m;
  tiny::randomize(m, 7);
  batch b = tiny::two_task_batch(6, 8);
  b.labels["score"].weights.assign(6, 0.0f);
  mtl::surgery<mtl::cagrad> s;
  tape::current().reset();
  auto out = m(b, true);
  const auto rep = s.backward(m, out, b);
  CHECK(rep.tasks == std::vector<std::size_t>{0});
  for (const auto& g : tiny::gradients_of(m))
    for (double v : g) CHECK(std::isfinite(v));
  b.labels.clear();
  tape::current().reset();
  auto out2 = m(b, true);
  CHECK_THROWS_AS(s.backward(m, out2, b), std::invalid_argument);
}

namespace {
// Trains the two-task model for `steps` full-batch Adam steps with a surgery method; returns the losses
// before and after.
template <class Method>
std::pair<std::array<double, 2>, std::array<double, 2>> train(Method method, mtl::gradient_level level, int steps) {
  tape::current().reset();  // a previous test's forward pass may still be on the tape, its model gone
  tiny::two_task<> m;
  const batch b = tiny::two_task_batch(32, 9);
  optim::adam<double> opt(parameters_of(m), {.lr = 0.01});
  mtl::surgery<Method> s(std::move(method), level);
  std::array<double, 2> first{}, last{};
  for (int step = 0; step < steps; ++step) {
    opt.zero_grad();
    auto out = m(b, true);
    const auto rep = s.backward(m, out, b);
    if (step == 0) first = {rep.losses[0], rep.losses[1]};
    last = {rep.losses[0], rep.losses[1]};
    opt.step();
  }
  return {first, last};
}
}  // namespace

TEST_CASE("a two-task model trained with each surgery method decreases both losses") {
  const auto start = std::chrono::steady_clock::now();
  using level = mtl::gradient_level;
  auto check = [](const char* name, auto result) {
    INFO(name << ": topic " << result.first[0] << " -> " << result.second[0] << ", score " << result.first[1] << " -> "
              << result.second[1]);
    CHECK(result.second[0] < 0.7 * result.first[0]);
    CHECK(result.second[1] < 0.7 * result.first[1]);
  };
  check("pcgrad", train(mtl::pcgrad(1), level::parameters, 300));
  check("mgda", train(mtl::mgda(), level::parameters, 300));
  check("cagrad", train(mtl::cagrad(), level::parameters, 300));
  check("mgda-ub", train(mtl::mgda(), level::representation, 300));
  check("pcgrad (representation)", train(mtl::pcgrad(2), level::representation, 300));
  MESSAGE("training with five methods took "
          << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");
}

}  // namespace HYBRID_TEST_UNIT
