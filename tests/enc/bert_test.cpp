// BERT encoder: matches a PyTorch re-statement of BertModel (fixture) and has correct gradients.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/io/safetensors.hpp>
#include <nlohmann/json.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
const char* fixture = HYBRID_SOURCE_DIR "/tests/enc/fixtures/bert_reference.safetensors";

template <class T>
tensor<T> read_tensor(const io::safetensors_reader& r, const std::string& name) {
  const auto& info = r.at(name);
  tensor<T> t(hybrid::shape::from_range(info.shape.begin(), info.shape.end()));
  r.read_into<T>(name, t.span());
  return t;
}
}  // namespace

TEST_CASE("bert forward matches the PyTorch reference in float32") {
  auto r = io::safetensors_reader::open(fixture);
  auto j = nlohmann::json::parse(r.metadata().at("config"));
  enc::bert_config cfg{.vocab = j["vocab_size"], .hidden = j["hidden_size"], .layers = j["num_hidden_layers"],
                       .heads = j["num_attention_heads"], .ffn = j["intermediate_size"],
                       .max_positions = j["max_position_embeddings"], .type_vocab = j["type_vocab_size"]};
  enc::bert_model<float> m(cfg);
  int loaded = 0;
  m.visit("", [&](const std::string& name, parameter<float>& p) {
    const auto& info = r.at(name);
    REQUIRE(hybrid::shape::from_range(info.shape.begin(), info.shape.end()) == p.shape());
    r.read_into<float>(name, p.value().span());
    ++loaded;
  });
  CHECK(loaded == 5 + 16 * cfg.layers + 2);

  enc::text_input in{read_tensor<std::int32_t>(r, "input.input_ids"), read_tensor<std::int32_t>(r, "input.token_type_ids"),
                     read_tensor<float>(r, "input.attention_mask")};
  const auto want_seq = read_tensor<double>(r, "output.last_hidden_state");
  const auto want_pool = read_tensor<double>(r, "output.pooler_output");
  tape::current().reset();
  no_grad ng;
  dropout_rng rng{};
  auto out = m(in, rng, false);
  REQUIRE(out.sequence.shape() == want_seq.shape());
  REQUIRE(out.pooled.shape() == want_pool.shape());
  auto rel_err = [](std::span<const float> got, const tensor<double>& want) {
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, std::abs(got[i] - want[static_cast<index_t>(i)]));
      scale = std::max(scale, std::abs(want[static_cast<index_t>(i)]));
    }
    return err / scale;
  };
  CHECK(rel_err(out.sequence.values(), want_seq) < 1e-5);
  CHECK(rel_err(out.pooled.values(), want_pool) < 1e-5);
}

TEST_CASE("bert parameter names follow Hugging Face") {
  enc::bert_model<float> m({.vocab = 10, .hidden = 8, .layers = 1, .heads = 2, .ffn = 16, .max_positions = 6});
  std::vector<std::string> names;
  m.visit("bert", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  CHECK(names.front() == "bert.embeddings.word_embeddings.weight");
  CHECK(std::find(names.begin(), names.end(), "bert.encoder.layer.0.attention.self.query.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "bert.encoder.layer.0.attention.output.LayerNorm.bias") != names.end());
  CHECK(std::find(names.begin(), names.end(), "bert.encoder.layer.0.output.dense.weight") != names.end());
  CHECK(names.back() == "bert.pooler.dense.bias");
  const index_t embeddings = 10 * 8 + 6 * 8 + 2 * 8 + 2 * 8;
  const index_t block = 4 * (8 * 8 + 8) + 2 * 8 + (16 * 8 + 16) + (8 * 16 + 8) + 2 * 8;
  CHECK(count_parameters(m) == embeddings + block + 8 * 8 + 8);
}

TEST_CASE("bert gradients match finite differences (double, tiny config, with padding)") {
  enc::bert_model<double> m({.vocab = 7, .hidden = 4, .layers = 1, .heads = 2, .ffn = 6, .max_positions = 5,
                             .dropout = 0, .attention_dropout = 0});
  std::mt19937 rng(3);
  std::vector<parameter<double>*> ps;
  m.visit("", [&](const std::string&, parameter<double>& p) {
    fill_uniform(p.value(), rng, -0.8, 0.8);
    ps.push_back(&p);
  });
  enc::text_input in{tensor<std::int32_t>({2, 4}, {1, 5, 2, 6, 3, 3, 0, 4}), tensor<std::int32_t>({2, 4}, {0, 0, 1, 1, 0, 1, 1, 1}),
                     tensor<float>({2, 4}, {1, 1, 1, 1, 1, 1, 0, 0})};
  dropout_rng drng{};
  auto r = check_gradients([&] {
    auto o = m(in, drng, false);
    return o.pooled;
  }, ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(r.report());
  CHECK(r.ok);
  auto r2 = check_gradients([&] { return m(in, drng, false).sequence; }, ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(r2.report());
  CHECK(r2.ok);
}

}  // namespace HYBRID_TEST_UNIT
