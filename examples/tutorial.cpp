// The tutorial (docs/tutorial.md walks through it): compose a text + table model with two task heads, train it,
// save a checkpoint, load it into a fresh model and predict with the table missing. Runs in about a second.
// Usage: tutorial [checkpoint path]; exits 1 unless the loss fell and the reloaded model predicts exactly the same.
#include <hybrid/hybrid.hpp>
#include <hybrid/io/checkpoint.hpp>

#include <algorithm>
#include <cstdio>
#include <random>

using namespace hybrid;

// 1. The model is a type: encoders, fusion, heads (and their widths) are fixed at compile time.
constexpr enc::bert_config text_cfg{.vocab = 16, .hidden = 16, .layers = 1, .heads = 2, .ffn = 32, .max_positions = 8,
                                    .dropout = 0, .attention_dropout = 0};
constexpr enc::tabular_config table_cfg{.features = 3, .hidden = 16, .layers = 2, .width = 16, .dropout = 0};
using net = model<encoders<modality<"text", enc::bert<text_cfg>>, modality<"table", enc::tabular<table_cfg>>>,
                  fuse::with_missing<fuse::gated<16>, fuse::missing_options{.dropout = 0.25}>,
                  heads<head::classify<"sentiment", 2>, head::regress<"score", 1>>>;

// 2. Data: "reviews" [CLS] w w w [SEP] whose words 3-8 are negative and 9-14 positive; the sentiment is the
// majority. Each review also has 3 numeric features; the score is 0.8 x0 - 0.5 x1 +- 0.5 (by sentiment).
batch make_batch(index_t n, std::mt19937& rng) {
  std::uniform_int_distribution<std::int32_t> word(3, 14);
  std::uniform_real_distribution<float> u(-1, 1);
  tensor<std::int32_t> ids({n, 5});
  tensor<float> table({n, 3}), score({n, 1});
  std::vector<std::int32_t> sentiment(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    int positive = 0;
    ids(i, 0) = 1, ids(i, 4) = 2;  // [CLS], [SEP]
    for (index_t t = 1; t <= 3; ++t) positive += (ids(i, t) = word(rng)) >= 9;
    sentiment[static_cast<std::size_t>(i)] = positive >= 2;
    for (index_t f = 0; f < 3; ++f) table(i, f) = u(rng);
    score(i, 0) = 0.8f * table(i, 0) - 0.5f * table(i, 1) + (positive >= 2 ? 0.5f : -0.5f);
  }
  batch b;
  b.size = n;
  b.inputs["text"] = {enc::text_input{ids, {}, {}}, {}};  // {}: every sample has this modality
  b.inputs["table"] = {enc::dense_input{table}, {}};
  b.labels["sentiment"] = {sentiment, {}, {}};
  b.labels["score"] = {{}, score, {}};
  return b;
}

int main(int argc, char** argv) {
  std::mt19937 rng(1);
  batch train = make_batch(64, rng), test = make_batch(64, rng);

  // 3. Train: forward (recorded on the tape), the summed loss of both heads, backward, AdamW step.
  net m;
  optim::adamw<float> opt(parameters_of(m), {.lr = 3e-3});
  double first = 0, last = 0;
  for (int step = 1; step <= 80; ++step) {
    opt.zero_grad();
    var<float> loss = m.loss(m(train, /*training=*/true), train);
    loss.backward();
    opt.step();
    (step == 1 ? first : last) = loss.item();
    if (step == 1 || step % 10 == 0) std::printf("step %2d  loss %.4f\n", step, loss.item());
  }

  // 4. Save every parameter under its dotted name, then load them into a freshly constructed model.
  const char* path = argc > 1 ? argv[1] : "tutorial.safetensors";
  io::save_parameters(m, path);
  net reloaded;
  io::load_parameters(reloaded, path);

  // 5. Inference on held-out reviews, with both modalities and without the table (the fusion then reads a
  // learned placeholder); the reloaded model must predict exactly what the original does.
  batch text_only = test;
  text_only.inputs.erase("table");
  no_grad inference;
  bool same = true;
  for (const batch* in : {&test, &text_only}) {
    const model_output<float> out = m(*in), again = reloaded(*in);
    for (std::size_t h = 0; h < net::head_count; ++h)
      same = same && std::ranges::equal(out.predictions[h].values(), again.predictions[h].values());
    std::printf("%-13s sentiment accuracy %5.1f%%, score MAE %.3f\n", in == &test ? "text + table:" : "text only:",
                100 * mtl::accuracy(mtl::argmax_rows(again["sentiment"].value()), in->labels.at("sentiment").classes),
                mtl::mae<float>(again["score"].values(), in->labels.at("score").values.span()));
  }
  std::printf("reloaded model: predictions %s\n", same ? "identical to the original's" : "DIFFER from the original's");
  return same && last < first ? 0 : 1;
}
