// Per-task gradients from one forward and K retained backward passes equal those of K separate
// forward passes, for the shared parameters and for the shared representation.
#include <doctest/doctest.h>

#include <hybrid/mtl/task_gradients.hpp>

#include "tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
using net = tiny::two_task<>;

std::vector<parameter<double>*> shared_of(net& m) {
  std::vector<parameter<double>*> ps;
  m.visit_shared("", [&](const std::string&, parameter<double>& p) { ps.push_back(&p); });
  return ps;
}
std::vector<double> flat_grads(const std::vector<parameter<double>*>& ps) {
  std::vector<double> g;
  for (auto* p : ps) g.insert(g.end(), p->grad().begin(), p->grad().end());
  return g;
}
}  // namespace

TEST_CASE("shared-parameter gradients: K retained passes equal K forward passes") {
  net m;
  tiny::randomize(m, 1);
  const batch b = tiny::two_task_batch(6, 2);
  const auto shared = shared_of(m);
  CHECK(shared.size() == 4);  // a.proj, b.proj: weight and bias each; concat has none
  auto& topic_w = *parameters_of(m)[4];
  REQUIRE(topic_w.name() == "heads.topic.weight");

  // Reference: one forward and one backward per task.
  std::vector<std::vector<double>> separate, head_grad;
  for (int k = 0; k < 2; ++k) {
    zero_grad(m);
    tape::current().reset();
    auto out = m(b, true);
    m.losses(out, b)[static_cast<std::size_t>(k)].backward();
    separate.push_back(flat_grads(shared));
    head_grad.emplace_back(topic_w.grad().begin(), topic_w.grad().end());
  }

  zero_grad(m);
  tape::current().reset();
  auto out = m(b, true);
  const auto losses = m.losses(out, b);
  const std::vector<var<double>> seeds(losses.begin(), losses.end());
  const auto g = mtl::parameter_gradients<double>(shared, seeds);
  mtl::finish_backward();
  REQUIRE(g.rows() == 2);
  REQUIRE(g.cols() == static_cast<index_t>(separate[0].size()));
  for (int k = 0; k < 2; ++k)
    for (index_t i = 0; i < g.cols(); ++i) CHECK(g(k, i) == doctest::Approx(separate[static_cast<std::size_t>(k)][static_cast<std::size_t>(i)]).epsilon(1e-12));
  for (double v : flat_grads(shared)) CHECK(v == 0.0);  // left for the caller to write
  // The topic head got exactly its own task's gradient.
  for (index_t i = 0; i < topic_w.numel(); ++i) CHECK(topic_w.grad()[i] == doctest::Approx(head_grad[0][static_cast<std::size_t>(i)]));
  // The tape is spent like after backward(): the next step starts from an empty tape.
  (void)m(b, true);
  CHECK(tape::current().entries() > 0);
}

TEST_CASE("representation gradients: K passes through the heads only equal K forward passes") {
  net m;
  tiny::randomize(m, 3);
  const batch b = tiny::two_task_batch(5, 4);
  std::vector<std::vector<double>> separate;
  for (int k = 0; k < 2; ++k) {
    tape::current().reset();
    auto out = m(b, true);
    out.fused.retain_grad();  // an intermediate value: its adjoint is released after backward otherwise
    m.losses(out, b)[static_cast<std::size_t>(k)].backward();
    separate.emplace_back(out.fused.grads().begin(), out.fused.grads().end());
  }
  zero_grad(m);
  const auto before = tiny::gradients_of(m);
  tape::current().reset();
  auto out = m(b, true);
  REQUIRE(out.boundary.size() == 1);
  const auto losses = m.losses(out, b);
  const std::vector<var<double>> seeds(losses.begin(), losses.end());
  const auto g = mtl::representation_gradients<double>(out.shared_end, out.boundary, seeds);
  REQUIRE(g.cols() == 5 * 8);
  for (int k = 0; k < 2; ++k)
    for (index_t i = 0; i < g.cols(); ++i) CHECK(g(k, i) == doctest::Approx(separate[static_cast<std::size_t>(k)][static_cast<std::size_t>(i)]).epsilon(1e-12));
  // The encoders were not traversed: their gradients are untouched.
  const auto after = tiny::gradients_of(m);
  for (std::size_t p = 0; p < 4; ++p) CHECK(after[p] == before[p]);

  // Backpropagating the sum of the rows from the representation equals the backward of the summed loss.
  mtl::backward_from_boundary<double>(out.boundary, mtl::gradient_vector<double>(g.colwise().sum().transpose()));
  const auto combined = tiny::gradients_of(m);
  zero_grad(m);
  tape::current().reset();
  auto out2 = m(b, true);
  m.loss(out2, b).backward();
  const auto full = tiny::gradients_of(m);
  for (std::size_t p = 0; p < 4; ++p)
    for (std::size_t i = 0; i < full[p].size(); ++i) CHECK(combined[p][i] == doctest::Approx(full[p][i]).epsilon(1e-12));
}

TEST_CASE("a gradient snapshot puts gradients back") {
  parameter<double> p("p", tensor<double>({2}, {1.0, 2.0}));
  p.grad()[0] = 3;
  mtl::gradient_snapshot<double> s({&p});
  p.grad()[0] = 7;
  p.grad()[1] = 1;
  s.restore();
  CHECK(p.grad()[0] == 3.0);
  CHECK(p.grad()[1] == 0.0);
}

}  // namespace HYBRID_TEST_UNIT
