// LoRA adapters on linear layers: values against a naive reference, gradients (double, adapters only
// trainable, with dropout), merge/unmerge, apply_lora on BERT (names, freezing, gradients, parameter counts).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/layers/lora.hpp>
#include <hybrid/model.hpp>
#include <hybrid/ops/reduce.hpp>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using layers::linear;

namespace {

template <class T>
std::vector<T> vals(const var<T>& v) {
  return {v.values().begin(), v.values().end()};
}

template <class T>
void randomize(parameter<T>& p, std::mt19937& rng, double lo = -1, double hi = 1) {
  fill_uniform(p.value(), rng, lo, hi);
}

// y = x W^T + b + scale (x A^T) B^T, in double, row by row.
std::vector<double> naive_lora(const tensor<double>& x, linear<double>& l) {
  auto& a = l.lora()->lora_A().value();
  auto& b = l.lora()->lora_B().value();
  const index_t in = l.in_features(), out = l.out_features(), r = a.dim(0), rows = x.numel() / in;
  const double s = l.lora()->scale();
  std::vector<double> y(static_cast<std::size_t>(rows * out));
  for (index_t i = 0; i < rows; ++i) {
    std::vector<double> h(static_cast<std::size_t>(r));
    for (index_t k = 0; k < r; ++k)
      for (index_t j = 0; j < in; ++j) h[static_cast<std::size_t>(k)] += x[i * in + j] * a[k * in + j];
    for (index_t o = 0; o < out; ++o) {
      double v = l.has_bias() ? l.bias().value()[o] : 0.0;
      for (index_t j = 0; j < in; ++j) v += x[i * in + j] * l.weight().value()[o * in + j];
      for (index_t k = 0; k < r; ++k) v += s * h[static_cast<std::size_t>(k)] * b[o * r + k];
      y[static_cast<std::size_t>(i * out + o)] = v;
    }
  }
  return y;
}

enc::bert_config small_bert() {
  return {.vocab = 1000, .hidden = 128, .layers = 2, .heads = 2, .ffn = 512, .max_positions = 64};
}

std::vector<std::string> names_of(enc::bert_model<float>& m) {
  std::vector<std::string> out;
  m.visit("", [&](const std::string& n, parameter<float>&) { out.push_back(n); });
  return out;
}

}  // namespace

TEST_CASE("lora: a fresh adapter changes nothing; values match the naive formula") {
  std::mt19937 rng(1);
  linear<double> l(5, 3);
  l.init(rng);
  tensor<double> x({2, 4, 5});
  fill_uniform(x, rng);
  tape::current().reset();
  no_grad ng;
  const std::vector<double> before = vals<double>(l(constant(x)));
  auto& a = l.add_lora({.rank = 2, .alpha = 6, .dropout = 0.5}, rng);
  CHECK(a.scale() == 3.0);
  CHECK(a.lora_A().shape() == hybrid::shape{2, 5});
  CHECK(a.lora_B().shape() == hybrid::shape{3, 2});
  CHECK(std::all_of(a.lora_B().value().begin(), a.lora_B().value().end(), [](double v) { return v == 0; }));
  // PEFT's kaiming-uniform(a = sqrt(5)) bound is 1/sqrt(in).
  CHECK(std::all_of(a.lora_A().value().begin(), a.lora_A().value().end(),
                    [](double v) { return std::abs(v) <= 1 / std::sqrt(5.0) && v != 0; }));
  CHECK(vals<double>(l(constant(x))) == before);

  randomize(a.lora_B(), rng);
  const auto want = naive_lora(x, l);
  for (bool bias : {true, false}) {
    linear<double> l2(5, 3, bias);
    l2.weight().value() = l.weight().value().clone();
    if (bias) l2.bias().value() = l.bias().value().clone();
    auto& a2 = l2.add_lora({.rank = 2, .alpha = 6, .dropout = 0.5}, rng);
    a2.lora_A().value() = a.lora_A().value().clone();
    a2.lora_B().value() = a.lora_B().value().clone();
    const auto ref = naive_lora(x, l2);
    const auto got = vals<double>(l2(constant(x)));  // no rng: eval mode, no dropout
    REQUIRE(got.size() == ref.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(ref[i]).epsilon(1e-12));
    dropout_rng drng{5, 0};
    const auto eval = vals<double>(l2(constant(x), drng, false));
    CHECK(eval == got);
    CHECK(drng.counter == 0);  // eval mode draws no mask
  }
  // The fused activation path includes the adapter term.
  const auto act = vals<double>(l(constant(x), [](const auto& z) { return tanh(z); }));
  for (std::size_t i = 0; i < act.size(); ++i) CHECK(act[i] == doctest::Approx(std::tanh(want[i])).epsilon(1e-12));
}

TEST_CASE("lora: gradients match finite differences with only the adapter trainable (double)") {
  std::mt19937 rng(2);
  for (bool bias : {true, false})
    for (double p : {0.0, 0.4}) {
      linear<double> l(7, 5, bias);
      l.init(rng);
      auto& a = l.add_lora({.rank = 3, .alpha = 5, .dropout = p}, rng);
      randomize(a.lora_B(), rng);
      l.weight().set_trainable(false);
      l.bias().set_trainable(false);
      parameter<double> x("x", {2, 3, 7});
      randomize(x, rng);
      auto r = check_gradients(
          [&] {
            dropout_rng drng{11, 0};  // the same mask on every evaluation
            return l(
                x.use(), [](const auto& z) { return gelu(z); }, drng, true);
          },
          {&a.lora_A(), &a.lora_B(), &x, &l.weight()}, {.eps = 1e-6, .rtol = 1e-6, .atol = 1e-8, .seed = 1234});
      INFO("bias " << bias << " dropout " << p << ": " << r.report());
      CHECK(r.ok);
      CHECK(r.outputs_finite);
      CHECK(std::all_of(l.weight().grad().begin(), l.weight().grad().end(), [](double g) { return g == 0; }));
    }
}

TEST_CASE("lora: dropout applies to the adapter input only, in training mode") {
  std::mt19937 rng(3);
  linear<double> l(6, 4);
  l.init(rng);
  auto& a = l.add_lora({.rank = 2, .alpha = 2, .dropout = 0.5}, rng);
  randomize(a.lora_B(), rng);
  tensor<double> x({3, 6});
  fill_uniform(x, rng);
  tape::current().reset();
  no_grad ng;
  dropout_rng d1{9, 0}, d2{9, 0};
  const auto train = vals<double>(l(constant(x), d1, true));
  // Reference: the same mask applied by hand to the adapter input.
  const var<double> xd = dropout(constant(x), 0.5, d2, true);
  const auto w = vals<double>(matmul(constant(x), l.weight().use(), {.b = true}) + l.bias());
  const auto d = vals<double>(matmul(matmul(xd, a.lora_A().use(), {.b = true}), a.lora_B().use(), {.b = true}));
  for (std::size_t i = 0; i < train.size(); ++i)
    CHECK(train[i] == doctest::Approx(w[i] + a.scale() * d[i]).epsilon(1e-12));
  CHECK(d1.counter == 1);
}

TEST_CASE("lora: merge folds scale B A into W, unmerge takes it back out; merged layers skip the adapter") {
  std::mt19937 rng(4);
  linear<float> l(64, 48);
  l.init(rng);
  const tensor<float> w0 = l.weight().value().clone();
  auto& a = l.add_lora({.rank = 8, .alpha = 16, .dropout = 0.1}, rng);
  randomize(a.lora_B(), rng, -0.1, 0.1);
  tensor<float> x({5, 64});
  fill_uniform(x, rng);
  tape::current().reset();
  no_grad ng;
  const auto unmerged = vals<float>(l(constant(x)));
  l.merge();
  CHECK(a.merged());
  l.merge();  // idempotent
  double scale = 0;
  for (float v : w0) scale = std::max(scale, std::abs(static_cast<double>(v)));
  // W changed by exactly scale * B A (up to float rounding).
  for (index_t o = 0; o < 48; ++o)
    for (index_t i = 0; i < 64; ++i) {
      double ba = 0;
      for (index_t k = 0; k < 8; ++k) ba += double(a.lora_B().value()[o * 8 + k]) * a.lora_A().value()[k * 64 + i];
      CHECK(l.weight().value()[o * 64 + i] == doctest::Approx(w0[o * 64 + i] + 2.0 * ba).epsilon(1e-5).scale(scale));
    }
  // Merged: the adapter path is skipped (changing B no longer matters), the output is the same.
  const tensor<float> b_saved = a.lora_B().value().clone();
  a.lora_B().value().fill(100.f);
  const auto merged = vals<float>(l(constant(x)));
  a.lora_B().value() = b_saved;
  for (std::size_t i = 0; i < merged.size(); ++i) CHECK(merged[i] == doctest::Approx(unmerged[i]).epsilon(1e-5));
  l.unmerge();
  CHECK(!a.merged());
  for (index_t i = 0; i < w0.numel(); ++i) CHECK(std::abs(l.weight().value()[i] - w0[i]) <= 1e-6 * scale);
  const auto back = vals<float>(l(constant(x)));  // W is back up to rounding, so the output is too
  for (std::size_t i = 0; i < back.size(); ++i) CHECK(back[i] == doctest::Approx(unmerged[i]).epsilon(1e-5));

  linear<float> plain(3, 2);
  CHECK_THROWS_AS(plain.merge(), std::logic_error);
  CHECK_THROWS_AS(plain.add_lora({.rank = 0, .alpha = 1, .dropout = 0}, rng), std::invalid_argument);
  CHECK_THROWS_AS(plain.add_lora({.rank = 2, .alpha = 1, .dropout = 1.0}, rng), std::invalid_argument);
  CHECK_THROWS_AS(l(constant(tensor<float>({2, 63}, 0.f))), shape_error);
}

TEST_CASE("apply_lora on BERT: adapters on query/value, PEFT names, everything else frozen") {
  enc::bert_model<float> m(small_bert());
  const index_t full = count_parameters(m);
  const auto before = names_of(m);
  std::mt19937 rng(5);
  const auto rep =
      layers::apply_lora(m, {.rank = 8, .alpha = 16, .dropout = 0.1, .target_modules = {"query", "value"}}, rng);
  CHECK(rep.adapted ==
        std::vector<std::string>{"encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
                                 "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"});
  CHECK(rep.saved.empty());  // SEQ_CLS's "classifier" / "score" are optional
  CHECK(layers::count_lora(m) == 4);

  std::vector<std::string> trainable;
  m.visit("", [&](const std::string& n, parameter<float>& p) {
    CHECK(p.name() == n);
    if (p.trainable()) trainable.push_back(n);
  });
  CHECK(trainable.size() == 8);
  CHECK(trainable[0] == "encoder.layer.0.attention.self.query.lora_A.weight");
  CHECK(trainable[1] == "encoder.layer.0.attention.self.query.lora_B.weight");
  CHECK(trainable[3] == "encoder.layer.0.attention.self.value.lora_B.weight");
  // Base names and order are unchanged; adapters follow their layer's weight and bias.
  auto after = names_of(m);
  std::erase_if(after, [](const std::string& n) { return n.find(".lora_") != std::string::npos; });
  CHECK(after == before);

  const index_t lora = count_parameters(m, true);
  CHECK(lora == 2 * 2 * (8 * 128 + 128 * 8));
  CHECK(count_parameters(m) == full + lora);
  MESSAGE("trainable " << lora << " of " << full << " (" << 100.0 * lora / full << "%)");
  CHECK(double(lora) / double(full) < 0.02);

  // A fresh adapter leaves the encoder's output exactly as it was.
  enc::bert_model<float> base(small_bert());
  enc::text_input in{tensor<std::int32_t>({2, 5}, {101, 7, 8, 9, 102, 101, 4, 102, 0, 0}),
                     {},
                     tensor<float>({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0})};
  tape::current().reset();
  no_grad ng;
  dropout_rng d1{}, d2{};
  CHECK(vals(m(in, d1, false).pooled) == vals(base(in, d2, false).pooled));
}

TEST_CASE("apply_lora: matching by dotted suffix, modules_to_save, and errors that leave the model unchanged") {
  std::mt19937 rng(6);
  {
    enc::bert_model<float> m(small_bert());
    const auto rep = layers::apply_lora(m,
                                        {.rank = 4,
                                         .alpha = 8,
                                         .dropout = 0,
                                         .target_modules = {"attention.self.query", "dense"},
                                         .modules_to_save = {"pooler.dense"},
                                         .task_type = ""},
                                        rng);
    // "dense" matches attention.output.dense, intermediate.dense, output.dense and pooler.dense.
    CHECK(rep.adapted.size() == 2 * 4 + 1);
    CHECK(rep.saved == std::vector<std::string>{"pooler.dense"});
    m.visit("", [&](const std::string& n, parameter<float>& p) {
      const bool want = n.find(".lora_") != std::string::npos || n.starts_with("pooler.dense.");
      CHECK_MESSAGE(p.trainable() == want, n);
    });
    CHECK_THROWS_WITH_AS(layers::apply_lora(m, {.rank = 4}, rng), doctest::Contains("already has a LoRA adapter"),
                         std::invalid_argument);
    layers::merge_lora(m);
    layers::for_each_lora(m, [](const std::string&, auto& l) { CHECK(l.lora()->merged()); });
    layers::unmerge_lora(m);
    layers::for_each_lora(m, [](const std::string&, auto& l) { CHECK(!l.lora()->merged()); });
  }
  enc::bert_model<float> m(small_bert());
  const auto names = names_of(m);
  auto unchanged = [&] {
    CHECK(layers::count_lora(m) == 0);
    CHECK(count_parameters(m, true) == count_parameters(m));
    CHECK(names_of(m) == names);
  };
  CHECK_THROWS_WITH_AS(layers::apply_lora(m, {.rank = 4, .target_modules = {"query", "qkv"}}, rng),
                       doctest::Contains("no module matches 'qkv'"), std::invalid_argument);
  unchanged();
  CHECK_THROWS_WITH_AS(layers::apply_lora(m, {.rank = 4, .target_modules = {"LayerNorm"}}, rng),
                       doctest::Contains("is not a linear layer"), std::invalid_argument);
  unchanged();
  // "uery" is not a dotted suffix of "query".
  CHECK_THROWS_AS(layers::apply_lora(m, {.rank = 4, .target_modules = {"uery"}}, rng), std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      layers::apply_lora(m, {.rank = 4, .target_modules = {"query"}, .modules_to_save = {"head"}}, rng),
      doctest::Contains("'head'"), std::invalid_argument);
  unchanged();
  CHECK_THROWS_AS(layers::apply_lora(m, {.rank = 0}, rng), std::invalid_argument);
  unchanged();
}

TEST_CASE("apply_lora: only adapters receive gradients; the BERT gradient check passes (double)") {
  {
    enc::bert_model<float> m(small_bert());
    layers::apply_lora(m, {.rank = 4, .alpha = 8, .dropout = 0.1});
    layers::for_each_lora(m, [](const std::string&, auto& l) {
      std::mt19937 r(7);
      fill_uniform(l.lora()->lora_B().value(), r, -0.1, 0.1);
    });
    enc::text_input in{
        tensor<std::int32_t>({2, 4}, {1, 5, 2, 6, 3, 3, 0, 4}), {}, tensor<float>({2, 4}, {1, 1, 1, 1, 1, 1, 0, 0})};
    zero_grad(m);
    tape::current().reset();
    dropout_rng drng{3, 0};
    sum(m(in, drng, true).pooled).backward();
    m.visit("", [&](const std::string& n, parameter<float>& p) {
      const bool any = std::any_of(p.grad().begin(), p.grad().end(), [](float g) { return g != 0; });
      CHECK_MESSAGE(any == p.trainable(), n);
    });
  }
  enc::bert_model<double> m({.vocab = 7,
                             .hidden = 4,
                             .layers = 1,
                             .heads = 2,
                             .ffn = 6,
                             .max_positions = 5,
                             .dropout = 0,
                             .attention_dropout = 0});
  std::mt19937 rng(8);
  layers::apply_lora(m, {.rank = 2, .alpha = 3, .dropout = 0.3, .target_modules = {"query", "value", "output.dense"}},
                     rng);
  std::vector<parameter<double>*> ps;
  m.visit("", [&](const std::string&, parameter<double>& p) {
    fill_uniform(p.value(), rng, -0.8, 0.8);
    ps.push_back(&p);  // frozen ones are skipped by the checker
  });
  enc::text_input in{tensor<std::int32_t>({2, 4}, {1, 5, 2, 6, 3, 3, 0, 4}),
                     tensor<std::int32_t>({2, 4}, {0, 0, 1, 1, 0, 1, 1, 1}),
                     tensor<float>({2, 4}, {1, 1, 1, 1, 1, 1, 0, 0})};
  auto r = check_gradients(
      [&] {
        dropout_rng drng{4, 0};  // adapter dropout on (training), the same masks every evaluation
        return m(in, drng, true).pooled;
      },
      ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8, .seed = 1234});
  INFO(r.report());
  CHECK(r.ok);
  CHECK(r.checked == static_cast<std::size_t>(count_parameters(m, true)));
}

TEST_CASE("unload_lora merges the adapters and leaves a plain model") {
  enc::bert_model<float> m(small_bert());
  const auto names = names_of(m);
  layers::apply_lora(m, {.rank = 4, .alpha = 8});
  layers::for_each_lora(m, [](const std::string&, auto& l) {
    std::mt19937 r(9);
    fill_uniform(l.lora()->lora_B().value(), r, -0.05, 0.05);
  });
  enc::text_input in{tensor<std::int32_t>({1, 4}, {101, 5, 6, 102}), {}, {}};
  tape::current().reset();
  no_grad ng;
  dropout_rng d{};
  const auto with = vals(m(in, d, false).pooled);
  layers::unload_lora(m);
  CHECK(layers::count_lora(m) == 0);
  CHECK(names_of(m) == names);
  const auto without = vals(m(in, d, false).pooled);
  for (std::size_t i = 0; i < with.size(); ++i) CHECK(without[i] == doctest::Approx(with[i]).epsilon(1e-5));
}

TEST_CASE("apply_lora on a composed model: the text encoder's attention adapted, a head kept trainable") {
  constexpr enc::bert_config text{.vocab = 20, .hidden = 8, .layers = 2, .heads = 2, .ffn = 16, .max_positions = 8};
  model<encoders<modality<"text", enc::bert<text>>>, fuse::concat, heads<head::classify<"topic", 3>>> m;
  std::mt19937 rng(3);
  const auto rep = layers::apply_lora(
      m, {.rank = 2, .alpha = 4, .target_modules = {"query", "value"}, .modules_to_save = {"heads.topic"}, .task_type = ""},
      rng);
  CHECK(rep.adapted == std::vector<std::string>{"text.encoder.layer.0.attention.self.query",
                                                "text.encoder.layer.0.attention.self.value",
                                                "text.encoder.layer.1.attention.self.query",
                                                "text.encoder.layer.1.attention.self.value"});
  CHECK(rep.saved == std::vector<std::string>{"heads.topic"});
  CHECK(layers::count_lora(m) == 4);
  std::vector<std::string> trainable;
  m.visit("", [&](const std::string& n, parameter<float>& p) {
    if (p.trainable()) trainable.push_back(n);
  });
  CHECK(trainable.size() == 4 * 2 + 2);  // lora_A, lora_B per adapted layer; the head's weight and bias
  CHECK(trainable.back() == "heads.topic.bias");
  CHECK(trainable.front() == "text.encoder.layer.0.attention.self.query.lora_A.weight");
}

}  // namespace HYBRID_TEST_UNIT
