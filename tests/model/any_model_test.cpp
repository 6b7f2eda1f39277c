// any_model: the type-erased boundary gives the same results as the static model it wraps.
#include <doctest/doctest.h>

#include <hybrid/any_model.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/mtl/mgda.hpp>
#include <hybrid/mtl/surgery.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
constexpr enc::bert_config small{.vocab = 13, .hidden = 8, .layers = 1, .heads = 2, .ffn = 12, .max_positions = 8};
constexpr enc::bert_config wide{.vocab = 13, .hidden = 12, .layers = 2, .heads = 3, .ffn = 12, .max_positions = 8};
using small_net = model<encoders<modality<"text", enc::bert<small>>>, fuse::concat, heads<head::classify<"label", 2>>>;
using wide_net = model<encoders<modality<"text", enc::bert<wide>>>, fuse::concat,
                       heads<head::classify<"label", 2>, head::regress<"score", 1>>>;
batch text_batch() {
  batch b;
  b.size = 2;
  b.inputs["text"] = {enc::text_input{tensor<std::int32_t>({2, 3}, {1, 4, 2, 3, 3, 5}), {}, {}}, {}};
  b.labels["label"] = {{1, 0}, {}, {}};
  return b;
}
}  // namespace

TEST_CASE("a registry builds models by name and any_model forwards to them") {
  model_registry<float> reg;
  reg.add<small_net>("small").add<wide_net>("wide");
  CHECK(reg.names() == std::vector<std::string>{"small", "wide"});
  auto a = reg.make("wide");
  CHECK(a.fused_width() == 12);
  CHECK(a.head_names().size() == 2);
  CHECK(a.head_names()[1] == "score");
  CHECK(a.get_if<small_net>() == nullptr);
  REQUIRE(a.get_if<wide_net>() != nullptr);
  CHECK_THROWS_WITH_AS(reg.make("huge"), doctest::Contains("known: small, wide"), std::invalid_argument);

  const batch b = text_batch();
  tape::current().reset();
  auto out = a(b);
  auto direct = (*a.get_if<wide_net>())(b);
  for (index_t i = 0; i < out["label"].numel(); ++i) CHECK(out["label"][i] == direct["label"][i]);
  auto l = a.loss(out, b);
  l.backward();
  index_t with_grad = 0;
  a.visit("", [&](const std::string&, parameter<float>& p) {
    for (float g : p.grad())
      if (g != 0) {
        ++with_grad;
        break;
      }
  });
  CHECK(with_grad > 10);
  CHECK(count_parameters(a) == count_parameters(*a.get_if<wide_net>()));
}

TEST_CASE("an empty any_model says so") {
  any_model<float> a;
  CHECK_FALSE(a.has_value());
  CHECK_THROWS_AS(a.fused_width(), std::logic_error);
}

TEST_CASE("any_model carries the multi-task interface: terms, weights, shared parameters, surgery") {
  using uw_net = model<encoders<modality<"text", enc::bert<small>>>, fuse::concat,
                       heads<head::classify<"label", 2>, head::regress<"score", 1>>, mtl::uncertainty_weighting>;
  auto a = any_model<float>::make<uw_net>();
  batch b = text_batch();
  b.labels["score"] = {{}, tensor<float>({2, 1}, {0.5f, -1.0f}), {}};
  tape::current().reset();
  auto out = a(b, true);
  const auto l = a.losses(out, b);
  const auto t = a.terms(out, l);
  REQUIRE(t.size() == 2);
  CHECK(t[1].item() == doctest::Approx(l[1].item()));  // log-variances start at 0: exp(0) L + 0
  CHECK(a.task_weights() == std::vector<double>{1, 1});
  CHECK_THROWS_AS(a.terms(out, {l[0]}), std::invalid_argument);
  index_t shared = 0;
  a.visit_shared("", [&](const std::string&, parameter<float>& p) { shared += p.numel(); });
  CHECK(shared == count_parameters(a.get_if<uw_net>()->encoder<"text">()));
  a.end_epoch();

  zero_grad(a);
  mtl::surgery<mtl::mgda> s;
  const auto rep = s.backward(a, out, b);
  CHECK(rep.tasks.size() == 2);
  CHECK(rep.weights.sum() == doctest::Approx(1));
  index_t nonzero = 0;
  a.visit("", [&](const std::string&, parameter<float>& p) {
    for (float g : p.grad()) {
      CHECK(std::isfinite(g));
      nonzero += g != 0;
    }
  });
  CHECK(nonzero > 100);
}

}  // namespace HYBRID_TEST_UNIT
