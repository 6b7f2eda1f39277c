// tagging: a per-token head over a modality's sequence; gradients, values against a naive loop, and
// the model wiring (the head reads the text sequence, not the fused vector; absent text is masked).
#include <doctest/doctest.h>

#include <hybrid/head/tagging.hpp>

#include "../mtl/tiny_models.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("tagging: gradients and values over a [B, L, W] sequence with padding and masks") {
  head::tagging<"ner", 3>::op<double, 4> h;
  static_assert(head::head_op<decltype(h), double>);
  static_assert(head::tagging<"ner", 3>::sources[0].modality == "text");
  parameter<double> seq("seq", {2, 5, 4});
  std::mt19937 rng(4);
  fill_uniform(seq.value(), rng);
  // Sample 0: 4 tokens + padding; sample 1: weight 0.5.
  const head::task_labels y{{0, 2, 1, 1, head::no_label, 2, 0, head::no_label, 1, 1}, {}, {1, 0.5f}};
  dropout_rng r;
  auto ps = parameters_of(h);
  ps.push_back(&seq);
  auto res = check_gradients([&] { return h.loss(h(seq.use(), r, true), y); }, ps);
  INFO(res.report());
  CHECK(res.ok);

  tape::current().reset();
  var<double> logits = h(seq.use(), r, false);
  CHECK(logits.shape() == shape{2, 5, 3});
  const tensor<double>&w = ps[0]->value(), &b = ps[1]->value();
  double total = 0, wsum = 0;
  for (index_t t = 0; t < 10; ++t) {
    const std::int32_t c = y.classes[static_cast<std::size_t>(t)];
    if (c == head::no_label) continue;
    double z[3], m = -1e300, s = 0;
    for (int k = 0; k < 3; ++k) {
      z[k] = b[k];
      for (int i = 0; i < 4; ++i) z[k] += seq.value()[t * 4 + i] * w(k, i);
      m = std::max(m, z[k]);
    }
    for (double v : z) s += std::exp(v - m);
    const double sw = y.weights[static_cast<std::size_t>(t / 5)];
    total += sw * (m + std::log(s) - z[c]);
    wsum += sw;
  }
  CHECK(h.loss(logits, y).item() == doctest::Approx(total / wsum).epsilon(1e-12));
  CHECK_THROWS_WITH_AS(h.loss(logits, head::task_labels{{0, 1}, {}, {}}), doctest::Contains("one label per token"), shape_error);
  parameter<double> flat("flat", {2, 4});
  CHECK_THROWS_AS(h(flat.use(), r, true), shape_error);
}

namespace {
using net = model<encoders<modality<"text", tiny::sequence_encoder<3, 5>>, modality<"image", tiny::dense_encoder<2, 4>>>,
                  fuse::concat, heads<head::tagging<"ner", 3, "text">, head::classify<"topic", 2>>>;

batch make_batch() {
  batch b;
  b.size = 3;
  b.inputs["text"] = {enc::dense_input{tiny::random_tensor({3, 4, 3}, 5)}, {1, 0, 1}};
  b.inputs["image"] = {enc::dense_input{tiny::random_tensor({3, 2}, 6)}, {}};
  b.labels["ner"] = {{0, 1, 2, head::no_label, 1, 1, 1, 1, 2, 0, head::no_label, head::no_label}, {}, {}};
  b.labels["topic"] = {{1, 0, 1}, {}, {}};
  return b;
}
}  // namespace

TEST_CASE("a tagging head in a model reads its modality's sequence") {
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(std::declval<net&>().head<"ner">())>,
                               head::tagging<"ner", 3, "text">::op<double, 5>>);
  net m;
  batch b = make_batch();
  tape::current().reset();
  auto out = m(b, true);
  CHECK(out["ner"].shape() == shape{3, 4, 3});
  CHECK(out.boundary.size() == 2);  // the fused vector and the text sequence
  CHECK(out.boundary[1].get() == out.modalities[0].sequence.get());

  // Sample 1 has no text: its tags do not count, whatever they are.
  const double l = m.losses(out, b)[0].item();
  b.labels["ner"].classes[5] = 0;
  tape::current().reset();
  auto out2 = m(b, true);
  CHECK(m.losses(out2, b)[0].item() == l);

  // Gradients of the whole model (tagging + classification) against finite differences.
  tiny::randomize(m, 7);
  auto res = check_gradients([&] { return m.loss(m(b, true), b); }, parameters_of(m), {.rtol = 1e-5, .atol = 1e-9});
  INFO(res.report());
  CHECK(res.ok);

  // No text in the batch at all: the tagger has no prediction and no loss; the other head still trains.
  b.inputs.erase("text");
  tape::current().reset();
  auto out3 = m(b, true);
  CHECK_FALSE(out3["ner"].valid());
  const auto ls = m.losses(out3, b);
  CHECK_FALSE(ls[0].valid());
  CHECK(ls[1].valid());
  CHECK(std::isfinite(m.loss(out3, b).item()));
}

}  // namespace HYBRID_TEST_UNIT
