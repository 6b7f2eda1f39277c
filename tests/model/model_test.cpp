// Static composition: names, compile-time lookup, missing modalities, end-to-end gradients and training.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
// A tiny dense encoder for tests: pooled = tanh(x W^T + b).
template <index_t In, index_t Width, class T = double>
struct dense_encoder {
  using value_type = T;
  using input_type = enc::dense_input;
  static constexpr index_t width = Width;
  static constexpr bool sequence_output = false;
  layers::linear<T> proj{In, Width};
  dense_encoder() {
    std::mt19937 rng(In * 31 + Width);
    proj.init(rng);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    proj.visit(join_name(prefix, "proj"), f);
  }
  enc::encoded<T> operator()(const enc::dense_input& in, dropout_rng&, bool) const {
    tensor<T> x(in.values.shape());
    std::copy(in.values.begin(), in.values.end(), x.begin());
    return {{}, proj(constant(x), [](const auto& z) { return tanh(z); })};
  }
};

constexpr enc::bert_config tiny_bert{.vocab = 11, .hidden = 6, .layers = 1, .heads = 2, .ffn = 8, .max_positions = 8,
                                     .dropout = 0, .attention_dropout = 0};

using text_image = model<encoders<modality<"text", enc::bert<tiny_bert, double>>, modality<"image", dense_encoder<5, 4>>>,
                         fuse::concat, heads<head::classify<"topic", 3>, head::regress<"score", 1>>>;

batch make_batch() {
  batch b;
  b.size = 3;
  b.inputs["text"] = {enc::text_input{tensor<std::int32_t>({3, 4}, {2, 5, 7, 1, 3, 4, 0, 0, 9, 9, 9, 2}), {},
                                      tensor<float>({3, 4}, {1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1})},
                      {1, 1, 0}};
  tensor<float> img({3, 5});
  std::mt19937 rng(4);
  fill_uniform(img, rng);
  b.inputs["image"] = {enc::dense_input{img}, {}};
  b.labels["topic"] = {{0, 2, head::no_label}, {}, {}};
  b.labels["score"] = {{}, tensor<float>({3, 1}, {0.5f, -0.2f, 0.1f}), {1, 0, 1}};
  return b;
}
}  // namespace

TEST_CASE("a composed model has static widths, dotted names and compile-time lookup") {
  static_assert(text_image::fused_width == 6 + 4);
  static_assert(text_image::modality_index<"image"> == 1);
  static_assert(text_image::head_index<"score"> == 1);
  text_image m;
  std::vector<std::string> names;
  m.visit("", [&](const std::string& n, parameter<double>& p) {
    names.push_back(n);
    CHECK(p.name() == n);
  });
  CHECK(names.front() == "text.embeddings.word_embeddings.weight");
  CHECK(std::find(names.begin(), names.end(), "image.proj.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "heads.topic.weight") != names.end());
  CHECK(names.back() == "heads.score.bias");
  CHECK(&m.encoder<"text">() == &m.encoder<"text">());
}

TEST_CASE("forward, per-head outputs and masked multi-task loss") {
  text_image m;
  const batch b = make_batch();
  tape::current().reset();
  auto out = m(b, true);
  CHECK(out.fused.shape() == hybrid::shape{3, 10});
  CHECK(out["topic"].shape() == hybrid::shape{3, 3});
  CHECK(out["score"].shape() == hybrid::shape{3, 1});
  auto l = m.loss(out, b);
  CHECK(std::isfinite(l.item()));
  CHECK_THROWS_AS((void)out["missing"], std::out_of_range);
}

TEST_CASE("gradients of the whole model match finite differences") {
  text_image m;
  const batch b = make_batch();
  auto ps = parameters_of(m);
  std::mt19937 rng(5);
  for (auto* p : ps) fill_uniform(p->value(), rng, -0.5, 0.5);
  auto r = check_gradients([&] { return m.loss(m(b, true), b); }, ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-9});
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("an absent modality does not influence the samples that lack it") {
  text_image m;
  batch b = make_batch();
  tape::current().reset();
  no_grad ng;
  auto fused_a = m(b).fused.value();
  // Sample 2 has no text: changing its tokens must not change anything.
  auto& text = std::get<enc::text_input>(b.inputs["text"].input);
  text.ids(2, 0) = 4;
  auto fused_b = m(b).fused.value();
  for (index_t i = 0; i < fused_a.numel(); ++i) CHECK(fused_a[i] == fused_b[i]);
  for (index_t c = 0; c < 6; ++c) CHECK(fused_a(2, c) == 0.0);
  // A batch without any image input still runs: the image part is all zeros.
  b.inputs.erase("image");
  auto fused_c = m(b).fused.value();
  for (index_t r = 0; r < 3; ++r)
    for (index_t c = 6; c < 10; ++c) CHECK(fused_c(r, c) == 0.0);
}

TEST_CASE("wrong input kinds and sizes are clear errors") {
  text_image m;
  batch b = make_batch();
  tape::current().reset();
  b.inputs["image"].input = enc::text_input{};
  CHECK_THROWS_WITH_AS(m(b), doctest::Contains("image"), std::invalid_argument);
  b = make_batch();
  b.inputs["text"].present = {1, 0};
  CHECK_THROWS_WITH_AS(m(b), doctest::Contains("presence"), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
