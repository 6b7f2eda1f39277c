// contrastive: CLIP-style symmetric InfoNCE; gradients (the projections, the log-scale temperature and
// the inputs), values against a naive loop, masking of absent samples, the clamp, and the model wiring.
#include <doctest/doctest.h>

#include <hybrid/head/contrastive.hpp>

#include "../mtl/tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
using align = head::contrastive<"align", "image", "text", 3>;

// The naive symmetric InfoNCE over rows `kept` of inputs a [B, WA], b [B, WB].
template <class H>
double naive_loss(H& h, const tensor<double>& a, const tensor<double>& b, const std::vector<int>& kept, double max_scale = 100) {
  auto ps = parameters_of(h);
  const tensor<double>&wa = ps[0]->value(), &wb = ps[1]->value();
  const double s = std::exp(std::clamp(ps[2]->value()[0], 0.0, std::log(max_scale)));
  const std::size_t n = kept.size();
  auto embed = [](const tensor<double>& x, const tensor<double>& w, int r) {
    std::vector<double> z(3);
    double norm = 0;
    for (index_t e = 0; e < 3; ++e) {
      for (index_t i = 0; i < x.dim(1); ++i) z[static_cast<std::size_t>(e)] += x(r, i) * w(e, i);
      norm += z[static_cast<std::size_t>(e)] * z[static_cast<std::size_t>(e)];
    }
    for (double& v : z) v /= std::sqrt(norm);
    return z;
  };
  std::vector<std::vector<double>> za, zb;
  for (int r : kept) za.push_back(embed(a, wa, r)), zb.push_back(embed(b, wb, r));
  std::vector<double> L(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      L[i * n + j] = s * (za[i][0] * zb[j][0] + za[i][1] * zb[j][1] + za[i][2] * zb[j][2]);
  double rows = 0, cols = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double sr = 0, sc = 0;
    for (std::size_t j = 0; j < n; ++j) sr += std::exp(L[i * n + j]), sc += std::exp(L[j * n + i]);
    rows += std::log(sr) - L[i * n + i];
    cols += std::log(sc) - L[i * n + i];
  }
  return 0.5 * (rows + cols) / double(n);
}
}  // namespace

TEST_CASE("contrastive: gradients and values, with and without absent samples") {
  align::op<double, 4, 5> h;
  static_assert(align::self_supervised && align::sources.size() == 2);
  parameter<double> a("a", {6, 4}), b("b", {6, 5});
  std::mt19937 rng(8);
  fill_uniform(a.value(), rng);
  fill_uniform(b.value(), rng);
  std::vector<std::string> names;
  h.visit("heads.align", [&](const std::string& n, parameter<double>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"heads.align.image_projection.weight", "heads.align.text_projection.weight",
                                          "heads.align.logit_scale"});
  auto ps = parameters_of(h);
  CHECK(ps[2]->value()[0] == doctest::Approx(std::log(1 / 0.07)));
  ps[2]->value()[0] = 1.3;  // a scale where every term is visible in the differences
  ps.push_back(&a);
  ps.push_back(&b);
  dropout_rng r;
  auto forward = [&] {
    const var<double> xs[2] = {a.use(), b.use()};
    return h(std::span<const var<double>>(xs), r, true);
  };
  for (const head::task_labels& y : {head::task_labels{}, head::task_labels{{}, {}, {1, 0, 1, 1, 0, 1}}}) {
    auto res = check_gradients([&] { return h.loss(forward(), y); }, ps);
    INFO(res.report());
    CHECK(res.ok);
    tape::current().reset();
    var<double> pred = forward();
    CHECK(pred.shape() == shape{6, 6});
    std::vector<int> kept;
    for (int i = 0; i < 6; ++i)
      if (y.weights.empty() || y.weights[static_cast<std::size_t>(i)] != 0) kept.push_back(i);
    CHECK(h.loss(pred, y).item() == doctest::Approx(naive_loss(h, a.value(), b.value(), kept)).epsilon(1e-12));
    for (index_t i = 0; i < 6; ++i) {  // rows are unit vectors
      double na = 0, nb = 0;
      for (index_t e = 0; e < 3; ++e) na += pred[i * 6 + e] * pred[i * 6 + e], nb += pred[i * 6 + 3 + e] * pred[i * 6 + 3 + e];
      CHECK(na == doctest::Approx(1));
      CHECK(nb == doctest::Approx(1));
    }
  }
  SUBCASE("the logit scale is clamped to [0, log 100] and gets no gradient beyond") {
    ps[2]->value()[0] = 7;
    tape::current().reset();
    ps[2]->zero_grad();
    var<double> l = h.loss(forward(), {});
    CHECK(l.item() == doctest::Approx(naive_loss(h, a.value(), b.value(), {0, 1, 2, 3, 4, 5})));
    l.backward();
    CHECK(ps[2]->grad()[0] == 0.0);
  }
  SUBCASE("shape errors name the head") {
    tape::current().reset();
    parameter<double> wrong("p", {6, 5});
    CHECK_THROWS_WITH_AS(h.loss(wrong.use(), {}), doctest::Contains("align"), shape_error);
    CHECK_THROWS_AS(h.loss(forward(), head::task_labels{{}, {}, {1, 1}}), shape_error);
  }
  SUBCASE("no sample kept: zero, no NaN") {
    tape::current().reset();
    var<double> l = h.loss(forward(), head::task_labels{{}, {}, {0, 0, 0, 0, 0, 0}});
    CHECK(l.item() == 0.0);
  }
}

namespace {
using net = model<encoders<modality<"image", tiny::dense_encoder<4, 5>>, modality<"text", tiny::sequence_encoder<3, 4>>>,
                  fuse::concat, heads<head::classify<"topic", 2>, head::contrastive<"align", "image", "text", 3>>>;
}

TEST_CASE("a contrastive head in a model aligns two modalities without labels") {
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(std::declval<net&>().head<"align">())>,
                               head::contrastive<"align", "image", "text", 3>::op<double, 5, 4>>);
  net m;
  batch b;
  b.size = 4;
  b.inputs["image"] = {enc::dense_input{tiny::random_tensor({4, 4}, 9)}, {1, 1, 0, 1}};
  b.inputs["text"] = {enc::dense_input{tiny::random_tensor({4, 2, 3}, 10)}, {}};
  b.labels["topic"] = {{0, 1, 1, 0}, {}, {}};
  tape::current().reset();
  auto out = m(b, true);
  CHECK(out["align"].shape() == shape{4, 6});
  const auto ls = m.losses(out, b);
  REQUIRE(ls[1].valid());  // self-supervised: no labels needed
  // Sample 2 has no image: the loss is the one over samples {0, 1, 3}.
  std::vector<std::int32_t> kept{0, 1, 3};
  const var<double> xs[2] = {take_rows(out.modalities[0].pooled, std::span<const std::int32_t>(kept)),
                             take_rows(out.modalities[1].pooled, std::span<const std::int32_t>(kept))};
  dropout_rng r;
  auto& h = m.head<"align">();
  CHECK(ls[1].item() == doctest::Approx(h.loss(h(std::span<const var<double>>(xs), r, false), {}).item()).epsilon(1e-12));
  CHECK(std::find_if(out.boundary.begin(), out.boundary.end(),
                     [&](const var<double>& v) { return v.get() == out.modalities[1].pooled.get(); }) != out.boundary.end());

  tiny::randomize(m, 11);
  auto res = check_gradients([&] { return m.loss(m(b, true), b); }, parameters_of(m), {.rtol = 1e-5, .atol = 1e-9});
  INFO(res.report());
  CHECK(res.ok);
}

}  // namespace HYBRID_TEST_UNIT
