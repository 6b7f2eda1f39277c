// MMoE as the model's tower: names, shared vs task-specific parameters, the mixture against a naive
// computation, gradients of the whole model, and options in any order.
#include <doctest/doctest.h>

#include <hybrid/mtl/mmoe.hpp>

#include "tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
constexpr mtl::mmoe_options opts{.experts = 3, .width = 4, .hidden = 5};
using net = tiny::two_task<mtl::mmoe<opts>>;
}  // namespace

TEST_CASE("an MMoE tower: names, widths and the shared/task-specific split") {
  static_assert(net::task_width == 4);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(std::declval<net&>().head<"topic">())>,
                               head::classify<"topic", 3>::op<double, 4>>);
  // Options in either order.
  static_assert(std::is_same_v<tiny::two_task<mtl::uncertainty_weighting, mtl::mmoe<opts>>::tower_recipe, mtl::mmoe<opts>>);
  static_assert(std::is_same_v<tiny::two_task<mtl::mmoe<opts>, mtl::uncertainty_weighting>::weighting_recipe,
                               mtl::uncertainty_weighting>);
  net m;
  std::vector<std::string> all, shared;
  m.visit("", [&](const std::string& n, parameter<double>&) { all.push_back(n); });
  m.visit_shared("", [&](const std::string& n, parameter<double>&) { shared.push_back(n); });
  CHECK(std::find(all.begin(), all.end(), "tower.experts.2.layers.1.weight") != all.end());
  CHECK(std::find(all.begin(), all.end(), "tower.gates.score.bias") != all.end());
  CHECK(std::find(shared.begin(), shared.end(), "tower.experts.0.layers.0.weight") != shared.end());
  CHECK(std::find(shared.begin(), shared.end(), "tower.gates.topic.weight") == shared.end());
  CHECK(shared.size() == 4 + 3 * 4);
  CHECK(all.back() == "heads.score.bias");
}

TEST_CASE("each task reads its own gate's mixture of the experts") {
  net m;
  tiny::randomize(m, 1);
  const batch b = tiny::two_task_batch(5, 2);
  tape::current().reset();
  no_grad ng;
  auto out = m(b, false);
  REQUIRE(out.task_inputs.size() == 2);
  auto& tower = m.tower();
  std::vector<tensor<double>> experts;
  auto ps = parameters_of(m);
  for (int e = 0; e < 3; ++e) {  // expert e: relu(relu(x W0^T + b0) W1^T + b1), parameters from the model
    const auto find = [&](const std::string& n) {
      return *std::find_if(ps.begin(), ps.end(), [&](auto* p) { return p->name() == n; });
    };
    const std::string base = "tower.experts." + std::to_string(e) + ".layers.";
    const auto &w0 = find(base + "0.weight")->value(), &b0 = find(base + "0.bias")->value();
    const auto &w1 = find(base + "1.weight")->value(), &b1 = find(base + "1.bias")->value();
    tensor<double> h({5, 4});
    for (index_t i = 0; i < 5; ++i) {
      double hid[5];
      for (index_t j = 0; j < 5; ++j) {
        hid[j] = b0[j];
        for (index_t c = 0; c < 8; ++c) hid[j] += out.fused[i * 8 + c] * w0(j, c);
        hid[j] = std::max(hid[j], 0.0);
      }
      for (index_t o = 0; o < 4; ++o) {
        double v = b1[o];
        for (index_t j = 0; j < 5; ++j) v += hid[j] * w1(o, j);
        h(i, o) = std::max(v, 0.0);
      }
    }
    experts.push_back(h);
  }
  for (std::size_t k = 0; k < 2; ++k) {
    var<double> g = tower.gate_weights(out.fused, k);
    for (index_t i = 0; i < 5; ++i) {
      CHECK(g[i * 3] + g[i * 3 + 1] + g[i * 3 + 2] == doctest::Approx(1));
      for (index_t o = 0; o < 4; ++o) {
        double want = 0;
        for (int e = 0; e < 3; ++e) want += g[i * 3 + e] * experts[static_cast<std::size_t>(e)](i, o);
        CHECK(out.task_inputs[k][i * 4 + o] == doctest::Approx(want).epsilon(1e-12));
      }
    }
  }
  CHECK(out.task_inputs[0].get() != out.task_inputs[1].get());
}

TEST_CASE("gradients of a model with an MMoE tower and uncertainty weighting") {
  tiny::two_task<mtl::mmoe<mtl::mmoe_options{.experts = 2, .width = 3}>, mtl::uncertainty_weighting> m;
  tiny::randomize(m, 3);
  const batch b = tiny::two_task_batch(4, 4);
  auto res = check_gradients([&] { return m.loss(m(b, true), b); }, parameters_of(m), {.rtol = 1e-5, .atol = 1e-9});
  INFO(res.report());
  CHECK(res.ok);
}

}  // namespace HYBRID_TEST_UNIT
