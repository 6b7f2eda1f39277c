// patch_image (ViT) encoder: the encoder contract, Hugging Face names, the embedding stage against naive
// loops, [CLS] pooling, gradients (double, tiny config), errors.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/patch_image.hpp>
#include <map>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

static_assert(enc::encoder<enc::patch_image<enc::patch_image_config{.size = 32, .patch = 4, .width = 64, .heads = 4}>>);
static_assert(enc::patch_image<enc::patch_image_config{.width = 48, .heads = 4}>::width == 48);
static_assert(enc::patch_image<enc::patch_image_config{}>::sequence_output);

namespace {
enc::dense_input random_images(index_t B, index_t C, index_t S, std::mt19937& rng) {
  enc::dense_input in{tensor<float>({B, C, S, S})};
  fill_uniform(in.values, rng);
  return in;
}
std::map<std::string, parameter<double>*> randomize(enc::patch_image_model<double>& m, std::mt19937& rng) {
  std::map<std::string, parameter<double>*> ps;
  m.visit("", [&](const std::string& n, parameter<double>& p) {
    fill_uniform(p.value(), rng, -0.8, 0.8);
    ps[n] = &p;
  });
  return ps;
}
}  // namespace

TEST_CASE("patch_image parameter names follow Hugging Face's ViTModel; shapes") {
  enc::patch_image_model<float> m({.size = 8, .channels = 3, .patch = 4, .width = 8, .layers = 2, .heads = 2, .ffn = 16});
  std::vector<std::string> names;
  m.visit("vit", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  REQUIRE(names.size() == 4 + 2 * 16 + 2);
  CHECK(names[0] == "vit.embeddings.cls_token");
  CHECK(names[1] == "vit.embeddings.position_embeddings");
  CHECK(names[2] == "vit.embeddings.patch_embeddings.projection.weight");
  CHECK(names[3] == "vit.embeddings.patch_embeddings.projection.bias");
  CHECK(names[4] == "vit.encoder.layer.0.norm1.weight");
  CHECK(std::find(names.begin(), names.end(), "vit.encoder.layer.1.attention.self.query.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "vit.encoder.layer.1.mlp.fc2.bias") != names.end());
  CHECK(names.back() == "vit.layernorm.bias");
  CHECK(m.tokens() == 5);
  const index_t block = 4 * 8 + 4 * (8 * 8 + 8) + (16 * 8 + 16) + (8 * 16 + 8);
  CHECK(count_parameters(m) == 8 + 5 * 8 + (8 * 3 * 16 + 8) + 2 * block + 2 * 8);

  tape::current().reset();
  std::mt19937 rng(1);
  dropout_rng drng;
  auto out = m(random_images(3, 3, 8, rng), drng);
  REQUIRE(out.sequence.shape() == hybrid::shape{3, 5, 8});
  REQUIRE(out.pooled.shape() == hybrid::shape{3, 8});
  for (index_t b = 0; b < 3; ++b)  // pooled is the [CLS] token of the sequence
    for (index_t c = 0; c < 8; ++c) CHECK(out.pooled[b * 8 + c] == out.sequence[b * 5 * 8 + c]);
}

TEST_CASE("patch embedding, [CLS] and positions match naive loops (no blocks: final LayerNorm only)") {
  tape::current().reset();
  const index_t S = 6, C = 2, Pt = 3, W = 4, G = S / Pt, L = 1 + G * G;
  enc::patch_image_model<double> m({.size = S, .channels = C, .patch = Pt, .width = W, .layers = 0, .heads = 2, .ffn = 8});
  std::mt19937 rng(2);
  auto ps = randomize(m, rng);
  const auto in = random_images(2, C, S, rng);
  dropout_rng drng;
  auto out = m(in, drng);
  REQUIRE(out.sequence.shape() == hybrid::shape{2, L, W});
  auto P = [&](const char* n) -> const tensor<double>& { return ps.at(n)->value(); };
  const tensor<double>&pw = P("embeddings.patch_embeddings.projection.weight"),
                      &pb = P("embeddings.patch_embeddings.projection.bias"), &cls = P("embeddings.cls_token"),
                      &pos = P("embeddings.position_embeddings"), &g = P("layernorm.weight"), &beta = P("layernorm.bias");
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < L; ++t) {
      std::vector<double> e(static_cast<std::size_t>(W));
      for (index_t o = 0; o < W; ++o) {
        double v = t == 0 ? cls[o] : pb[o];
        if (t > 0) {  // patch t - 1 in row-major order over the G x G grid
          const index_t pi = (t - 1) / G, pj = (t - 1) % G;
          for (index_t c = 0; c < C; ++c)
            for (index_t u = 0; u < Pt; ++u)
              for (index_t w = 0; w < Pt; ++w) v += pw(o, c, u, w) * double(in.values(b, c, pi * Pt + u, pj * Pt + w));
        }
        e[std::size_t(o)] = v + pos(0, t, o);
      }
      double mu = 0, var = 0;
      for (double v : e) mu += v / double(W);
      for (double v : e) var += (v - mu) * (v - mu) / double(W);
      for (index_t o = 0; o < W; ++o) {
        const double want = (e[std::size_t(o)] - mu) / std::sqrt(var + 1e-6) * g[o] + beta[o];
        CHECK(out.sequence[(b * L + t) * W + o] == doctest::Approx(want).epsilon(1e-12));
      }
    }
}

TEST_CASE("patch_image gradients match finite differences (double, tiny config)") {
  enc::patch_image_model<double> m({.size = 4, .channels = 2, .patch = 2, .width = 4, .layers = 1, .heads = 2, .ffn = 6});
  std::mt19937 rng(3);
  std::vector<parameter<double>*> ps;
  for (auto& [n, p] : randomize(m, rng)) ps.push_back(p);
  const auto in = random_images(2, 2, 4, rng);
  dropout_rng drng;
  const gradient_check_options opt{.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8};
  auto r = check_gradients([&] { return m(in, drng).pooled; }, ps, opt);
  INFO(r.report());
  CHECK(r.ok);
  auto r2 = check_gradients([&] { return m(in, drng).sequence; }, ps, opt);
  INFO(r2.report());
  CHECK(r2.ok);
}

TEST_CASE("patch_image: dropout only in training; shape errors") {
  tape::current().reset();
  enc::patch_image_model<float> m({.size = 8, .channels = 1, .patch = 2, .width = 8, .layers = 1, .heads = 2, .ffn = 16,
                                   .dropout = 0.2});
  std::mt19937 rng(4);
  const auto in = random_images(2, 1, 8, rng);
  dropout_rng drng{1};
  auto a = m(in, drng, false), b = m(in, drng, false);
  CHECK(std::equal(a.pooled.values().begin(), a.pooled.values().end(), b.pooled.values().begin()));
  CHECK(drng.counter == 0);
  auto t = m(in, drng, true);
  CHECK(drng.counter == 3);  // embeddings, attention branch, MLP branch
  CHECK_FALSE(std::equal(a.pooled.values().begin(), a.pooled.values().end(), t.pooled.values().begin()));

  CHECK_THROWS_WITH_AS(m(random_images(2, 3, 8, rng), drng), doctest::Contains("[2, 3, 8, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(m(random_images(2, 3, 8, rng), drng), doctest::Contains("[2, 1, 8, 8]"), shape_error);
  CHECK_THROWS_AS(enc::patch_image_model<float>({.size = 10, .patch = 4}), std::invalid_argument);
  CHECK_THROWS_AS(enc::patch_image_model<float>({.width = 10, .heads = 4}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
