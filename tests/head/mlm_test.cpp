#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/head/mlm.hpp>
#include <hybrid/model.hpp>
#include <hybrid/io/safetensors.hpp>
#include <hybrid/train/mlm_pretrainer.hpp>
#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using head::bert_for_masked_lm;
using head::mask_tokens;

namespace {

constexpr std::int32_t pad = 0, cls = 2, sep = 3, mask_id = 4;

// Rows of random "word" ids in [10, vocab): [CLS] w... [SEP] [PAD]..., with a different length per row.
tensor<std::int32_t> random_batch(index_t B, index_t L, index_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  tensor<std::int32_t> ids({B, L});
  for (index_t b = 0; b < B; ++b) {
    const index_t len = 3 + static_cast<index_t>(rng() % static_cast<unsigned>(L - 2));
    for (index_t t = 0; t < L; ++t)
      ids[b * L + t] = t == 0 ? cls : t == len - 1 ? sep : t >= len ? pad : 10 + static_cast<std::int32_t>(rng() % (vocab - 10));
  }
  return ids;
}

enc::bert_config tiny_config() {
  return {.vocab = 13, .hidden = 4, .layers = 1, .heads = 2, .ffn = 6, .max_positions = 8, .type_vocab = 2,
          .layer_norm_eps = 1e-5, .dropout = 0.0, .attention_dropout = 0.0, .pooler = false};
}

enc::text_input tiny_input() {
  enc::text_input in{tensor<std::int32_t>({2, 5}), tensor<std::int32_t>({2, 5}), tensor<float>({2, 5})};
  const std::int32_t ids[] = {cls, 7, 4, 11, sep, cls, 12, 4, sep, pad};
  const std::int32_t types[] = {0, 0, 0, 1, 1, 0, 0, 1, 1, 0};
  const float keep[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
  std::copy(std::begin(ids), std::end(ids), in.ids.begin());
  std::copy(std::begin(types), std::end(types), in.token_types.begin());
  std::copy(std::begin(keep), std::end(keep), in.attention_mask.begin());
  return in;
}

}  // namespace

TEST_CASE("mask_tokens: 15% chosen, 80/10/10 replaced, specials never chosen, labels") {
  const index_t B = 400, L = 300, vocab = 30522;
  const auto ids = random_batch(B, L, vocab, 1);
  const auto special = head::special_tokens_mask(ids.span(), {cls, sep, pad});
  std::mt19937_64 rng(123);
  const auto m = mask_tokens(ids, special, mask_id, vocab, rng);
  REQUIRE(m.ids.shape() == ids.shape());
  REQUIRE(m.labels.size() == static_cast<std::size_t>(ids.numel()));
  REQUIRE(m.positions.size() == m.targets.size());
  index_t candidates = 0, chosen = 0, masked = 0, random = 0, kept = 0;
  std::size_t next = 0;
  for (index_t i = 0; i < ids.numel(); ++i) {
    const auto u = static_cast<std::size_t>(i);
    candidates += !special[u];
    if (m.labels[u] == head::no_label) {
      CHECK_MESSAGE(m.ids[i] == ids[i], "token " << i << " was not chosen but changed");
      continue;
    }
    ++chosen;
    CHECK_MESSAGE(!special[u], "special token at " << i << " was chosen");
    CHECK(m.labels[u] == ids[i]);
    REQUIRE(next < m.positions.size());
    CHECK(m.positions[next] == i);
    CHECK(m.targets[next] == ids[i]);
    ++next;
    if (m.ids[i] == mask_id) ++masked;
    else if (m.ids[i] != ids[i]) ++random;
    else ++kept;
  }
  CHECK(next == m.positions.size());
  const double p = double(chosen) / double(candidates);
  MESSAGE("chosen " << p << " of " << candidates << "; [MASK] " << double(masked) / chosen << ", random "
                    << double(random) / chosen << ", kept " << double(kept) / chosen);
  CHECK(candidates > 50000);
  CHECK(std::abs(p - 0.15) < 0.005);  // sd 0.0014 at this size
  CHECK(std::abs(double(masked) / chosen - 0.8) < 0.015);
  CHECK(std::abs(double(random) / chosen - 0.1) < 0.01);  // a random id equal to the original (1/30522) counts as kept
  CHECK(std::abs(double(kept) / chosen - 0.1) < 0.01);

  SUBCASE("the same seed gives the same masks; another seed others") {
    std::mt19937_64 a(123), b(124);
    CHECK(mask_tokens(ids, special, mask_id, vocab, a).positions == m.positions);
    CHECK(mask_tokens(ids, special, mask_id, vocab, b).positions != m.positions);
  }
  SUBCASE("probability 0 chooses nothing, 1 every non-special token") {
    std::mt19937_64 r(5);
    CHECK(mask_tokens(ids, special, mask_id, vocab, r, {.probability = 0}).positions.empty());
    const auto all = mask_tokens(ids, special, mask_id, vocab, r, {.probability = 1, .mask = 1, .random = 0});
    CHECK(static_cast<index_t>(all.positions.size()) == candidates);
    for (index_t i : all.positions) CHECK(all.ids[i] == mask_id);
  }
  SUBCASE("errors") {
    std::mt19937_64 r(5);
    std::vector<std::uint8_t> short_mask(10);
    CHECK_THROWS_AS(mask_tokens(ids, short_mask, mask_id, vocab, r), shape_error);
    CHECK_THROWS_AS(mask_tokens(ids, special, mask_id, vocab, r, {.probability = 1.5}), std::invalid_argument);
    CHECK_THROWS_AS(mask_tokens(ids, special, mask_id, vocab, r, {.mask = 0.95, .random = 0.1}), std::invalid_argument);
    CHECK_THROWS_AS(mask_tokens(ids, special, 40000, vocab, r), std::invalid_argument);
  }
}

TEST_CASE("bert_for_masked_lm: Hugging Face BertForMaskedLM parameter names, no pooler, tied decoder") {
  bert_for_masked_lm<float> m(tiny_config());
  std::vector<std::string> names;
  m.visit("", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const char* n : {"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
                        "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
                        "cls.predictions.bias"})
    CHECK_MESSAGE(has(n), n);
  CHECK_FALSE(has("cls.predictions.decoder.weight"));
  CHECK_FALSE(has("bert.pooler.dense.weight"));
  CHECK_FALSE(m.config().pooler);
  CHECK(m.word_embeddings().name() == "bert.embeddings.word_embeddings.weight");
  CHECK(m.head().vocab() == 13);
}

TEST_CASE("MLM head gradients (double, tiny BERT, tied decoder) match finite differences") {
  bert_for_masked_lm<double> m(tiny_config(), 3);
  // Non-trivial LayerNorm and bias values, so their gradients are exercised away from the init point.
  std::mt19937 rng(9);
  m.visit("", [&](const std::string&, parameter<double>& p) {
    for (double& v : p.value()) v += std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
  });
  const auto in = tiny_input();
  const std::vector<std::int32_t> positions = {1, 2, 3, 6, 7};
  dropout_rng drop{1, 0};
  auto f = [&] { return m(in, positions, drop, false); };
  const auto res = check_gradients(f, parameters_of(m), {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(res.report());
  CHECK(res.ok);
  CHECK(res.checked == static_cast<std::size_t>(count_parameters(m)));
}

TEST_CASE("tied decoder: the word-embedding gradient is the sum of the input and the decoder paths") {
  bert_for_masked_lm<double> m(tiny_config(), 5);
  const auto in = tiny_input();
  const std::vector<std::int32_t> positions = {1, 2, 6, 7};
  const std::vector<std::int32_t> targets = {7, 4, 12, 4};
  dropout_rng drop{1, 0};
  parameter<double>& table = m.word_embeddings();

  zero_grad(m);
  head::mlm_loss(m(in, positions, drop, false), targets).loss.backward();
  const tensor<double> tied = table.grad().clone();

  // Same computation with the decoder reading an untied copy of the table: each path's share separately.
  zero_grad(m);
  parameter<double> copy("decoder", table.value().clone());
  auto seq = m.bert()(in, drop, false).sequence;
  head::mlm_loss(m.head().at(seq, positions, copy.use()), targets).loss.backward();
  double input_norm = 0, decoder_norm = 0, max_err = 0;
  for (index_t i = 0; i < table.numel(); ++i) {
    input_norm += std::abs(table.grad()[i]);
    decoder_norm += std::abs(copy.grad()[i]);
    max_err = std::max(max_err, std::abs(tied[i] - (table.grad()[i] + copy.grad()[i])));
  }
  CHECK(input_norm > 1e-6);    // the embedding lookup path reaches the table
  CHECK(decoder_norm > 1e-6);  // and so does the decoder
  CHECK(max_err < 1e-12);
  // The decoder path reaches every row (every vocabulary logit), the input path only the ids used.
  for (index_t v = 0; v < 13; ++v) {
    double row = 0;
    for (index_t h = 0; h < 4; ++h) row += std::abs(copy.grad()[v * 4 + h]);
    CHECK(row > 0);
  }
}

TEST_CASE("the head at the masked positions equals the full head at those positions") {
  auto cfg = tiny_config();
  cfg.vocab = 50;
  bert_for_masked_lm<double> m(cfg, 8);
  auto in = tiny_input();
  const std::vector<std::int32_t> positions = {0, 2, 4, 7, 9};  // includes a padding position: still a row
  dropout_rng drop{1, 0};
  no_grad ng;
  auto full = m.all_logits(in, drop, false);
  auto some = m(in, positions, drop, false);
  REQUIRE(full.shape() == shape{2, 5, 50});
  REQUIRE(some.shape() == shape{5, 50});
  double max_err = 0;
  for (std::size_t i = 0; i < positions.size(); ++i)
    for (index_t v = 0; v < 50; ++v)
      max_err = std::max(max_err, std::abs(some[static_cast<index_t>(i) * 50 + v] - full[positions[i] * 50 + v]));
  CHECK(max_err < 1e-12);
  // float: the same within rounding.
  auto cfgf = cfg;
  bert_for_masked_lm<float> mf(cfgf, 8);
  auto ff = mf.all_logits(in, drop, false);
  auto sf = mf(in, positions, drop, false);
  float errf = 0;
  for (std::size_t i = 0; i < positions.size(); ++i)
    for (index_t v = 0; v < 50; ++v)
      errf = std::max(errf, std::abs(sf[static_cast<index_t>(i) * 50 + v] - ff[positions[i] * 50 + v]));
  CHECK(errf < 1e-5f);
}

TEST_CASE("mlm_loss: mean cross-entropy and argmax accuracy over the masked rows") {
  tensor<double> x({3, 4});
  const double v[] = {2, 0, 0, 0, 0, 0, 3, 0, 1, 1, 1, 1.5};
  std::copy(std::begin(v), std::end(v), x.begin());
  const std::vector<std::int32_t> t = {0, 1, 3};
  const auto r = head::mlm_loss(constant(x), t);
  CHECK(r.count == 3);
  CHECK(r.correct == 2);  // rows 0 and 2 right, row 1 predicts 2
  auto lse = [](std::initializer_list<double> row) {
    double s = 0;
    for (double a : row) s += std::exp(a);
    return std::log(s);
  };
  const double want = ((lse({2, 0, 0, 0}) - 2) + (lse({0, 0, 3, 0}) - 0) + (lse({1, 1, 1, 1.5}) - 1.5)) / 3;
  CHECK(r.loss.item() == doctest::Approx(want).epsilon(1e-12));
}

TEST_CASE("mlm head and model: shape errors name both shapes") {
  bert_for_masked_lm<float> m(tiny_config());
  tensor<float> wrong({12, 4});
  auto x = constant(tensor<float>({3, 4}));
  try {
    (void)m.head()(x, constant(wrong));
    FAIL("no shape_error");
  } catch (const shape_error& e) {
    const std::string what = e.what();
    CHECK(what.find("mlm_head") != std::string::npos);
    CHECK(what.find("[12, 4]") != std::string::npos);
    CHECK(what.find("[13, 4]") != std::string::npos);
  }
  dropout_rng drop{1, 0};
  CHECK_THROWS_AS(m(tiny_input(), std::vector<std::int32_t>{}, drop, false), std::invalid_argument);
  CHECK_THROWS(m(tiny_input(), std::vector<std::int32_t>{10}, drop, false));  // position out of range
}

TEST_CASE("bert_for_masked_lm logits match the PyTorch reference (fixture: tests/enc/fixtures/make_bert_fixture.py)") {
  // The fixture's tensors carry Hugging Face names without the "bert." prefix, plus cls.predictions.*; the
  // loader must accept that layout and leave no head tensor unread.
  const auto r = io::safetensors_reader::open(HYBRID_SOURCE_DIR "/tests/enc/fixtures/bert_reference.safetensors");
  const auto j = nlohmann::json::parse(r.metadata().at("config"));
  const enc::bert_config cfg{.vocab = j["vocab_size"], .hidden = j["hidden_size"], .layers = j["num_hidden_layers"],
                             .heads = j["num_attention_heads"], .ffn = j["intermediate_size"],
                             .max_positions = j["max_position_embeddings"], .type_vocab = j["type_vocab_size"]};
  bert_for_masked_lm<float> m(cfg, 5);
  train::load_bert_for_masked_lm(m, r);
  auto read = [&]<class T>(const std::string& name, T) {
    const auto& info = r.at(name);
    tensor<T> t(hybrid::shape::from_range(info.shape.begin(), info.shape.end()));
    r.read_into<T>(name, t.span());
    return t;
  };
  const enc::text_input in{read("input.input_ids", std::int32_t{}), read("input.token_type_ids", std::int32_t{}),
                           read("input.attention_mask", 0.0f)};
  const tensor<double> want = read("output.mlm_logits", 0.0);
  no_grad ng;
  tape_scope scope;
  dropout_rng rng{};
  const var<float> got = m.all_logits(in, rng, false);
  REQUIRE(got.shape() == want.shape());
  double err = 0, scale = 0;
  for (index_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got.data()[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  CHECK(err / scale < 2e-5);
}

// ---- head::mlm in a composed model -------------------------------------------------------------------------

namespace {
constexpr enc::bert_config tiny_static{.vocab = 13, .hidden = 4, .layers = 1, .heads = 2, .ffn = 6, .max_positions = 8,
                                       .type_vocab = 2, .layer_norm_eps = 1e-5, .dropout = 0.0,
                                       .attention_dropout = 0.0, .pooler = false};
using mlm_net = model<encoders<modality<"text", enc::bert<tiny_static, double>>>, fuse::concat,
                      heads<head::mlm<"mlm", 13, "text", head::mlm_options{.layer_norm_eps = 1e-5}>,
                            head::classify<"topic", 2>>>;
using untied_net = model<encoders<modality<"text", enc::bert<tiny_static, double>>>, fuse::concat,
                         heads<head::mlm<"mlm", 13, "text", head::mlm_options{.tie_word_embeddings = false}>>>;

batch text_batch() {
  batch b;
  b.size = 2;
  b.inputs["text"] = {tiny_input(), {}};
  return b;
}

template <class M>
void perturb(M& m, unsigned seed) {
  std::mt19937 rng(seed);
  m.visit("", [&](const std::string&, parameter<double>& p) {
    for (double& v : p.value()) v += std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
  });
}
}  // namespace

TEST_CASE("head::mlm in a model: BertForMaskedLM's logits, names and tied decoder") {
  mlm_net net;
  perturb(net, 11);
  // The same numbers as bert_for_masked_lm holding the same parameters ("text." -> "bert.", "heads.mlm." -> "cls.").
  bert_for_masked_lm<double> ref(tiny_config(), 1);
  std::map<std::string, parameter<double>*> by_name;
  ref.visit("", [&](const std::string& n, parameter<double>& p) { by_name[n] = &p; });
  std::size_t copied = 0;
  net.visit("", [&](const std::string& n, parameter<double>& p) {
    std::string r = n.starts_with("text.") ? "bert." + n.substr(5) : n.starts_with("heads.mlm.") ? "cls." + n.substr(10) : "";
    if (r.empty()) return;
    REQUIRE_MESSAGE(by_name.count(r), r);
    CHECK(by_name[r]->shape() == p.shape());
    by_name[r]->value() = p.value().clone();
    ++copied;
  });
  CHECK(copied == by_name.size());  // every BertForMaskedLM parameter has its counterpart, and no decoder weight
  batch b = text_batch();
  dropout_rng drop{1, 0};
  no_grad ng;
  const auto out = net(b);
  const var<double> want = ref.all_logits(tiny_input(), drop);
  REQUIRE(out["mlm"].shape() == shape{2, 5, 13});
  double err = 0;
  for (index_t i = 0; i < want.numel(); ++i) err = std::max(err, std::abs(out["mlm"].data()[i] - want.data()[i]));
  CHECK(err < 1e-12);
}

TEST_CASE("head::mlm in a model: loss at the masked tokens only, gradients (tied and untied) match finite differences") {
  batch b = text_batch();
  std::mt19937_64 rng(3);
  const index_t chosen = head::mask_modality(b, "text", "mlm", mask_id, 13, {pad, cls, sep}, rng, {.probability = 0.5});
  const auto& labels = b.labels["mlm"].classes;
  REQUIRE(labels.size() == 10);
  CHECK(chosen == std::count_if(labels.begin(), labels.end(), [](std::int32_t c) { return c != head::no_label; }));
  CHECK(chosen > 0);
  const auto original = tiny_input();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::int32_t id = original.ids[static_cast<index_t>(i)];
    if (id == pad || id == cls || id == sep) CHECK(labels[i] == head::no_label);  // never chosen
    if (labels[i] != head::no_label) CHECK(labels[i] == id);
    else CHECK(std::get<enc::text_input>(b.inputs["text"].input).ids[static_cast<index_t>(i)] == id);
  }
  b.labels["topic"] = {{1, 0}, {}, {}};

  mlm_net net;
  perturb(net, 5);
  tape::current().reset();
  {
    const auto out = net(b, false);
    // The loss is the mean cross-entropy over the chosen tokens.
    const var<double>& logits = out["mlm"];
    double want = 0;
    for (std::size_t t = 0; t < labels.size(); ++t) {
      if (labels[t] == head::no_label) continue;
      const double* row = logits.data() + t * 13;
      double m = *std::max_element(row, row + 13), s = 0;
      for (int v = 0; v < 13; ++v) s += std::exp(row[v] - m);
      want += m + std::log(s) - row[labels[t]];
    }
    CHECK(net.losses(out, b)[0].item() == doctest::Approx(want / double(chosen)).epsilon(1e-12));
  }
  auto res = check_gradients([&] { return net.loss(net(b, false), b); }, parameters_of(net),
                             {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(res.report());
  CHECK(res.ok);

  untied_net untied;
  bool has_decoder = false;
  untied.visit("", [&](const std::string& n, parameter<double>& p) {
    if (n == "heads.mlm.predictions.decoder.weight") has_decoder = p.shape() == shape{13, 4};
  });
  CHECK(has_decoder);
  perturb(untied, 6);
  auto res2 = check_gradients([&] { return untied.loss(untied(b, false), b); }, parameters_of(untied),
                              {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(res2.report());
  CHECK(res2.ok);
}

TEST_CASE("mask_modality: padding and absent samples are never chosen; bad batches are errors") {
  batch b = text_batch();
  b.inputs["text"].present = {0, 1};
  std::mt19937_64 rng(1);
  head::mask_modality(b, "text", "mlm", mask_id, 13, {cls, sep}, rng, {.probability = 1.0});
  const auto& labels = b.labels["mlm"].classes;
  for (int t = 0; t < 5; ++t) CHECK(labels[static_cast<std::size_t>(t)] == head::no_label);  // sample 0 absent
  CHECK(labels[9] == head::no_label);                                                         // attention mask 0
  CHECK(labels[6] == 12);
  CHECK_THROWS_AS(head::mask_modality(b, "image", "mlm", mask_id, 13, {}, rng), std::invalid_argument);
  b.inputs["dense"] = {enc::dense_input{tensor<float>({2, 3})}, {}};
  CHECK_THROWS_WITH_AS(head::mask_modality(b, "dense", "mlm", mask_id, 13, {}, rng), doctest::Contains("not token ids"),
                       std::invalid_argument);
  mlm_net net;
  parameter<double> flat("flat", {2, 4}), table("table", {13, 4});
  dropout_rng drop{1, 0};
  CHECK_THROWS_WITH_AS(net.head<"mlm">()(flat.use(), table.use(), drop, false), doctest::Contains("needs a sequence"),
                       shape_error);
}

}  // namespace HYBRID_TEST_UNIT
