// Missing modalities: modality dropout (rate, at least one kept, replayable), learned placeholders,
// gradients through the wrapper, every subset of modalities with several wrapped fusions, a whole model.
#include <algorithm>
#include <hybrid/fuse/attention_pool.hpp>
#include <hybrid/fuse/bayes.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/fuse/cross_attention.hpp>
#include <hybrid/fuse/gated.hpp>
#include <hybrid/fuse/missing.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

namespace {
constexpr fuse::missing_options drop_half{.dropout = 0.5};
constexpr fuse::missing_options mask_only{.dropout = 0.5, .placeholder = false};
constexpr fuse::cross_attention_config tiny{.heads = 2, .ffn = 6, .dropout = 0, .attention_dropout = 0};
}  // namespace

static_assert(fuse::fusion_op<fuse::with_missing<fuse::gated<4>, drop_half>::op<double, 3, 5>, double>);
static_assert(fuse::with_missing<fuse::concat>::op<float, 3, 5>::width == 8);

TEST_CASE("modality_dropout: keeps at least one modality, never adds one, drops at rate p, replays") {
  const std::size_t M = 3, B = 3000;
  std::vector<std::uint8_t> present(B * M, 1);
  for (std::size_t b = 0; b < B; b += 7) present[b * M + b % M] = 0;  // some absent to begin with
  for (std::size_t b = 0; b < B; b += 11) present[b * M] = present[b * M + 1] = present[b * M + 2] = 0;
  dropout_rng rng{42, 0};
  const auto keep = fuse::modality_dropout(present, M, 0.3, rng);
  CHECK(rng.counter == 1);
  std::size_t had = 0, kept = 0;
  for (std::size_t b = 0; b < B; ++b) {
    std::size_t n_had = 0, n_kept = 0;
    for (std::size_t m = 0; m < M; ++m) {
      CHECK(keep[b * M + m] <= present[b * M + m]);
      n_had += present[b * M + m];
      n_kept += keep[b * M + m];
    }
    CHECK((n_kept >= 1 || n_had == 0));
    had += n_had;
    kept += n_kept;
  }
  // Dropped share: p, less the samples given one modality back (p^2 and p^3 terms): about 0.27-0.29.
  const double dropped = 1.0 - double(kept) / double(had);
  CHECK(dropped > 0.25);
  CHECK(dropped < 0.32);
  dropout_rng again{42, 0};
  CHECK(fuse::modality_dropout(present, M, 0.3, again) == keep);
  CHECK(fuse::modality_dropout(present, M, 0.3, again) != keep);  // the stream moved on
  dropout_rng untouched{42, 0};
  CHECK(fuse::modality_dropout(present, M, 0.0, untouched) == present);
  CHECK(untouched.counter == 0);
  const auto one = fuse::modality_dropout(present, M, 1.0, again);  // p = 1: exactly one each
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t n_had = present[b * M] + present[b * M + 1] + present[b * M + 2];
    CHECK(one[b * M] + one[b * M + 1] + one[b * M + 2] == std::min<std::size_t>(n_had, 1));
  }
  CHECK_THROWS_AS(fuse::modality_dropout(present, M, 1.5, again), std::invalid_argument);
}

TEST_CASE("with_missing: gradients in training (dropout + placeholders) and with masking only") {
  fuse::with_missing<fuse::gated<3>, drop_half>::op<double, 2, 4, 3> g;
  const auto names = names_of(g);
  CHECK(names.back() == "fusion.placeholder.2");
  CHECK(names.front() == "fusion.proj.0.weight");
  inputs<double> in(5, {2, 4, 3}, {0, 2, 0});
  in.present[0] = {1, 0, 1, 1, 0};
  in.present[1] = {1, 1, 0, 1, 0};
  check_fusion_gradients(g, in, true);
  check_fusion_gradients(g, in, false);
  fuse::with_missing<fuse::attention_pool<3>, mask_only>::op<double, 2, 4, 3> a;
  CHECK(names_of(a).back() == "fusion.priority");  // no placeholders to name
  check_fusion_gradients(a, in, true);
  // Placeholders tiled over the tokens of an absent sequence.
  fuse::with_missing<fuse::cross_attention<4, tiny>, drop_half>::op<double, 4, 2, 3> x;
  inputs<double> seq(4, {4, 2, 3}, {2, 3, 0});
  seq.present[0] = {1, 0, 1, 0};
  seq.present[1] = {0, 1, 1, 0};
  check_fusion_gradients(x, seq, true);
}

TEST_CASE("with_missing: an absent modality reads its learned placeholder") {
  fuse::with_missing<fuse::gated<3>>::op<double, 2, 4> wrapped;
  fuse::gated<3>::op<double, 2, 4> plain;  // the same seed: the same parameters as the wrapped one
  inputs<double> in(3, {2, 4});
  in.present[1] = {1, 0, 0};
  in.present[0] = {1, 1, 0};
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(wrapped, in).value();
  auto ps = parameters_of(wrapped);
  // The same inputs with the placeholders written into the absent rows, every modality present.
  for (std::size_t m = 0; m < 2; ++m) {
    const auto& e = ps[ps.size() - 2 + m]->value();
    for (index_t b = 0; b < 3; ++b)
      if (!in.present[m][std::size_t(b)])
        for (index_t c = 0; c < e.numel(); ++c) in.pooled[m].value()(b, c) = e[c];
    in.present[m].clear();
  }
  const tensor<double> want = run(plain, in).value();
  for (index_t i = 0; i < want.numel(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
}

TEST_CASE("with_missing without placeholders hands the wrapped fusion the dropped presence") {
  fuse::with_missing<fuse::concat, mask_only>::op<double, 2, 3> f;
  inputs<double> in(6, {2, 3});
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(f, in, true, 77).value();
  dropout_rng rng{77, 0};
  const auto keep = fuse::modality_dropout(std::vector<std::uint8_t>(12, 1), 2, 0.5, rng);
  for (index_t b = 0; b < 6; ++b) {
    CHECK((keep[std::size_t(b) * 2] || keep[std::size_t(b) * 2 + 1]));
    for (index_t c = 0; c < 5; ++c) {
      const std::size_t m = c < 2 ? 0 : 1;
      const double x = m == 0 ? in.pooled[0].value()(b, c) : in.pooled[1].value()(b, c - 2);
      CHECK(got(b, c) == (keep[std::size_t(b) * 2 + m] ? x : 0.0));
    }
  }
}

TEST_CASE("with_missing: every subset of modalities at inference, for several wrapped fusions") {
  inputs<float> in(8, {4, 2, 4}, {3, 0, 2});
  check_subsets_and_invariance(fuse::with_missing<fuse::concat>::op<float, 4, 2, 4>{}, in);
  check_subsets_and_invariance(fuse::with_missing<fuse::gated<5>>::op<float, 4, 2, 4>{}, in);
  check_subsets_and_invariance(fuse::with_missing<fuse::bayes<3>, mask_only>::op<float, 4, 2, 4>{}, in);
  check_subsets_and_invariance(fuse::with_missing<fuse::attention_pool<3>>::op<float, 4, 2, 4>{}, in);
  check_subsets_and_invariance(fuse::with_missing<fuse::cross_attention<4, tiny>>::op<float, 4, 2, 4>{}, in);
  check_subsets_and_invariance(fuse::with_missing<fuse::cross_attention<4, tiny>, mask_only>::op<float, 4, 2, 4>{}, in);
}

namespace {
template <index_t In, index_t Width>
struct dense_encoder {  // pooled = tanh(x W^T + b)
  using value_type = double;
  using input_type = enc::dense_input;
  static constexpr index_t width = Width;
  static constexpr bool sequence_output = false;
  layers::linear<double> proj{In, Width};
  dense_encoder() {
    std::mt19937 rng(In * 31 + Width);
    proj.init(rng);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    proj.visit(join_name(prefix, "proj"), f);
  }
  enc::encoded<double> operator()(const enc::dense_input& in, dropout_rng&, bool) const {
    tensor<double> x(in.values.shape());
    std::copy(in.values.begin(), in.values.end(), x.begin());
    return {{}, proj(constant(x), [](const auto& z) { return tanh(z); })};
  }
};
}  // namespace

TEST_CASE("with_missing in a model: placeholders are parameters and training gradients are exact") {
  using net = model<encoders<modality<"image", dense_encoder<3, 4>>, modality<"audio", dense_encoder<2, 3>>>,
                    fuse::with_missing<fuse::gated<4>, fuse::missing_options{.dropout = 0.4}>,
                    heads<head::classify<"category", 3>>>;
  net m;
  std::vector<std::string> names;
  m.visit("", [&](const std::string& n, parameter<double>&) { names.push_back(n); });
  // In a model, per-modality fusion parameters are named after the modalities (alone, by index: above).
  CHECK(std::find(names.begin(), names.end(), "fusion.placeholder.audio") != names.end());
  CHECK(std::find(names.begin(), names.end(), "fusion.proj.image.weight") != names.end());
  CHECK(std::none_of(names.begin(), names.end(), [](const std::string& n) { return n.starts_with("fusion.proj.0"); }));
  batch b;
  b.size = 4;
  tensor<float> img({4, 3}), aud({4, 2});
  std::mt19937 rng(1);
  fill_uniform(img, rng);
  fill_uniform(aud, rng);
  b.inputs["image"] = {enc::dense_input{img}, {1, 1, 0, 1}};
  b.inputs["audio"] = {enc::dense_input{aud}, {1, 0, 1, 1}};
  b.labels["category"] = {{0, 2, 1, 1}, {}, {}};
  auto ps = parameters_of(m);
  auto r = check_gradients(
      [&] {
        m.rng() = dropout_rng{9, 0};  // the same modality dropout in every evaluation
        return m.loss(m(b, true), b);
      },
      ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-9});
  INFO(r.report());
  CHECK(r.ok);
}

}  // namespace HYBRID_TEST_UNIT
