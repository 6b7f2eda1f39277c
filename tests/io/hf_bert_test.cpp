// Tests for hybrid/io/hf_bert.hpp: the committed BertModel fixture loads and reproduces PyTorch; BertFor*
// layouts (bert. prefix, legacy gamma/beta, buffers, heads) load identically; save -> load is bitwise; config.json.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <hybrid/io/hf_bert.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using namespace hybrid;
using nlohmann::json;

namespace {

const fs::path fixture = fs::path(HYBRID_SOURCE_DIR) / "tests" / "enc" / "fixtures" / "bert_reference.safetensors";

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    std::string name = "hybrid_hf_bert_test_";
    name += std::to_string(::getpid());
    name += '_';
    name += std::to_string(rd());
    path = fs::temp_directory_path() / name;
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

enc::bert_config fixture_config() {
  return io::bert_config_from_json(json::parse(io::safetensors_reader::open(fixture).metadata().at("config")));
}

std::vector<std::vector<float>> snapshot(enc::bert_model<float>& m) {
  std::vector<std::vector<float>> out;
  m.visit("", [&](const std::string&, parameter<float>& p) {
    out.emplace_back(p.value().span().begin(), p.value().span().end());
  });
  return out;
}

template <class T>
tensor<T> read_tensor(const io::safetensors_reader& r, const std::string& name) {
  const auto& info = r.at(name);
  tensor<T> t(hybrid::shape::from_range(info.shape.begin(), info.shape.end()));
  r.read_into<T>(name, t.span());
  return t;
}

// The model's outputs on the fixture's inputs: last hidden state then pooled, concatenated.
std::vector<float> run(const enc::bert_model<float>& m) {
  auto r = io::safetensors_reader::open(fixture);
  enc::text_input in{read_tensor<std::int32_t>(r, "input.input_ids"),
                     read_tensor<std::int32_t>(r, "input.token_type_ids"),
                     read_tensor<float>(r, "input.attention_mask")};
  tape::current().reset();
  no_grad ng;
  dropout_rng rng{};
  auto out = m(in, rng, false);
  std::vector<float> v(out.sequence.values().begin(), out.sequence.values().end());
  v.insert(v.end(), out.pooled.values().begin(), out.pooled.values().end());
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool same_params(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return false;
  return true;
}

struct extra_tensor {
  std::string name;
  io::dtype type;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

// Copies the fixture's weights (not input.* / output.*) to `dest` under rename(name) ("" drops one),
// bytes and dtypes unchanged, plus `extras`.
void rewrite(const fs::path& dest, const std::function<std::string(const std::string&)>& rename,
             const std::vector<extra_tensor>& extras = {}) {
  auto r = io::safetensors_reader::open(fixture);
  std::vector<io::tensor_to_write> list;
  for (const auto& t : r.tensors()) {
    // The fixture's BertModel tensors only: inputs, outputs and its MLM head (cls.*) are not rewritten.
    if (t.name.starts_with("input.") || t.name.starts_with("output.") || t.name.starts_with("cls.")) continue;
    std::string n = rename(t.name);
    if (!n.empty()) list.push_back({n, t.shape, io::raw_tensor_data{t.type, r.raw(t)}});
  }
  for (const auto& e : extras) list.push_back({e.name, e.shape, io::raw_tensor_data{e.type, e.bytes}});
  io::save_safetensors(dest, list);
}

std::string keep(const std::string& n) { return n; }

extra_tensor zeros(std::string name, io::dtype type, std::vector<std::int64_t> shape) {
  std::size_t n = io::dtype_size(type);
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  return {std::move(name), type, std::move(shape), std::vector<std::byte>(n)};
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("hf_bert: the BertModel fixture loads and reproduces PyTorch's outputs") {
  const enc::bert_config cfg = fixture_config();
  CHECK(cfg.vocab == 120);
  CHECK(cfg.hidden == 32);
  CHECK(cfg.layers == 2);
  enc::bert_model<float> m(cfg);
  const io::hf_bert_report rep = io::load_hf_bert(m, fixture);
  CHECK(rep.prefix.empty());
  CHECK(rep.loaded.size() == 5 + 16 * 2 + 2);
  CHECK(rep.missing.empty());
  CHECK(sorted(rep.unexpected) == std::vector<std::string>{"cls.predictions.bias",
                                                           "cls.predictions.transform.LayerNorm.bias",
                                                           "cls.predictions.transform.LayerNorm.weight",
                                                           "cls.predictions.transform.dense.bias",
                                                           "cls.predictions.transform.dense.weight",
                                                           "input.attention_mask", "input.input_ids",
                                                           "input.token_type_ids", "output.last_hidden_state",
                                                           "output.mlm_logits", "output.pooler_output"});
  auto r = io::safetensors_reader::open(fixture);
  const auto want_seq = read_tensor<double>(r, "output.last_hidden_state");
  const auto want_pool = read_tensor<double>(r, "output.pooler_output");
  const auto got = run(m);
  REQUIRE(got.size() == static_cast<std::size_t>(want_seq.numel() + want_pool.numel()));
  double err = 0, scale = 0;
  for (index_t i = 0; i < want_seq.numel() + want_pool.numel(); ++i) {
    const double w = i < want_seq.numel() ? want_seq[i] : want_pool[i - want_seq.numel()];
    err = std::max(err, std::abs(got[static_cast<std::size_t>(i)] - w));
    scale = std::max(scale, std::abs(w));
  }
  CHECK(err / scale < 1e-5);
}

TEST_CASE("hf_bert: BertFor* layouts (bert. prefix, legacy gamma/beta, buffers, heads) load identically") {
  temp_dir d;
  enc::bert_model<float> ref(fixture_config());
  io::load_hf_bert(ref, fixture);

  SUBCASE("BertForMaskedLM with legacy TF LayerNorm names and a position_ids buffer") {
    const fs::path file = d.path / "mlm.safetensors";
    rewrite(file,
            [](const std::string& n) {
              std::string out = "bert." + n;
              if (out.ends_with("LayerNorm.weight")) out.replace(out.size() - 6, 6, "gamma");
              if (out.ends_with("LayerNorm.bias")) out.replace(out.size() - 4, 4, "beta");
              return out;
            },
            {zeros("bert.embeddings.position_ids", io::dtype::I64, {1, 40}),
             zeros("cls.predictions.bias", io::dtype::F32, {120}),
             zeros("cls.predictions.transform.dense.weight", io::dtype::F32, {32, 32}),
             zeros("cls.predictions.transform.LayerNorm.gamma", io::dtype::F32, {32})});
    REQUIRE(io::safetensors_reader::open(file).find("bert.encoder.layer.1.output.LayerNorm.gamma"));
    enc::bert_model<float> m(fixture_config());
    const auto rep = io::load_hf_bert(m, file);
    CHECK(rep.prefix == "bert");
    CHECK(rep.skipped == std::vector<std::string>{"bert.embeddings.position_ids"});
    CHECK(sorted(rep.unexpected) == std::vector<std::string>{"cls.predictions.bias",
                                                             "cls.predictions.transform.LayerNorm.gamma",
                                                             "cls.predictions.transform.dense.weight"});
    CHECK(same_params(snapshot(m), snapshot(ref)));
    CHECK(same_bits(run(m), run(ref)));
  }
  SUBCASE("BertForSequenceClassification: classifier.* is left for the caller") {
    const fs::path file = d.path / "cls.safetensors";
    rewrite(file, [](const std::string& n) { return "bert." + n; },
            {zeros("classifier.weight", io::dtype::F32, {3, 32}), zeros("classifier.bias", io::dtype::F32, {3})});
    enc::bert_model<float> m(fixture_config());
    const auto rep = io::load_hf_bert(m, file);
    CHECK(rep.prefix == "bert");
    CHECK(sorted(rep.unexpected) == std::vector<std::string>{"classifier.bias", "classifier.weight"});
    CHECK(same_params(snapshot(m), snapshot(ref)));
  }
  SUBCASE("a directory holding model.safetensors, with an embeddings.token_type_ids buffer") {
    rewrite(d.path / "model.safetensors", keep, {zeros("embeddings.token_type_ids", io::dtype::I64, {1, 40})});
    enc::bert_model<float> m(fixture_config());
    const auto rep = io::load_hf_bert(m, d.path);
    CHECK(rep.skipped == std::vector<std::string>{"embeddings.token_type_ids"});
    CHECK(rep.unexpected.empty());
    CHECK(same_params(snapshot(m), snapshot(ref)));
  }
}

TEST_CASE("hf_bert: a checkpoint without a pooler needs a model without one, or says so") {
  temp_dir d;
  const fs::path file = d.path / "nopool.safetensors";
  rewrite(file, [](const std::string& n) { return n.starts_with("pooler.") ? "" : n; });
  enc::bert_model<float> with(fixture_config());
  const std::string msg = message_of([&] { io::load_hf_bert(with, file); });
  CHECK(msg.find("has no pooler ('pooler.dense.weight')") != std::string::npos);
  CHECK(msg.find("pooler = false") != std::string::npos);
  CHECK_THROWS_AS(io::load_hf_bert(with, file), io::checkpoint_error);

  const auto loose = io::load_hf_bert(with, file, {.strict = false});
  CHECK(loose.missing == std::vector<std::string>{"pooler.dense.weight", "pooler.dense.bias"});

  enc::bert_config cfg = fixture_config();
  cfg.pooler = false;
  enc::bert_model<float> without(cfg);
  const auto rep = io::load_hf_bert(without, file);
  CHECK(rep.loaded.size() == 5 + 16 * 2);
  CHECK(rep.unexpected.empty());
  // And the full fixture into a model without a pooler: the pooler weights are left over.
  const auto rep2 = io::load_hf_bert(without, fixture);
  CHECK(std::count(rep2.unexpected.begin(), rep2.unexpected.end(), "pooler.dense.weight") == 1);
}

TEST_CASE("hf_bert: save_hf_bert writes BertModel / BertForMaskedLM layouts that load back bitwise") {
  temp_dir d;
  enc::bert_model<float> m(fixture_config());
  io::load_hf_bert(m, fixture);
  const auto want = run(m);
  if (const char* dir = std::getenv("HYBRID_HF_BERT_EXPORT"))
    io::save_hf_bert(m, dir);  // for check_hf_bert_roundtrip.py

  for (const bool prefix : {false, true}) {
    CAPTURE(prefix);
    const fs::path dir = d.path / (prefix ? "mlm" : "base");
    io::save_hf_bert(m, dir, {.bert_prefix = prefix});
    auto r = io::safetensors_reader::open(dir / "model.safetensors");
    CHECK(r.metadata().at("format") == "pt");
    std::vector<std::string> want_names, got_names;
    m.visit(prefix ? "bert" : "", [&](const std::string& n, parameter<float>&) { want_names.push_back(n); });
    for (const auto& t : r.tensors()) {
      got_names.push_back(t.name);
      CHECK(t.type == io::dtype::F32);
    }
    CHECK(sorted(got_names) == sorted(want_names));
    // Byte-identical to the fixture's float32 weights.
    auto fx = io::safetensors_reader::open(fixture);
    const std::string name =
        prefix ? "bert.encoder.layer.1.attention.self.key.weight" : "encoder.layer.1.attention.self.key.weight";
    const auto a = r.raw(name), b = fx.raw("encoder.layer.1.attention.self.key.weight");
    CHECK((a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0));

    std::ifstream cf(dir / "config.json");
    const json cj = json::parse(cf);
    CHECK(cj["architectures"] == json::array({prefix ? "BertForMaskedLM" : "BertModel"}));
    CHECK(cj["model_type"] == "bert");
    CHECK(cj["hidden_size"] == 32);

    io::hf_bert_report rep;
    enc::bert_model<float> back = io::load_hf_bert_model<float>(dir, &rep);
    CHECK(rep.prefix == (prefix ? "bert" : ""));
    CHECK(rep.unexpected.empty());
    CHECK(back.config().pooler);
    CHECK(same_params(snapshot(back), snapshot(m)));
    CHECK(same_bits(run(back), want));
  }

  // A model without a pooler round-trips as one.
  enc::bert_config cfg = fixture_config();
  cfg.pooler = false;
  enc::bert_model<float> np(cfg);
  io::save_hf_bert(np, d.path / "nopool", {.architecture = "BertForSequenceClassification"});
  CHECK_FALSE(io::safetensors_reader::open(d.path / "nopool" / "model.safetensors").find("pooler.dense.weight"));
  enc::bert_model<float> back = io::load_hf_bert_model<float>(d.path / "nopool");
  CHECK_FALSE(back.config().pooler);
  CHECK(same_params(snapshot(back), snapshot(np)));
}

TEST_CASE("hf_bert: config.json round trip") {
  const enc::bert_config c{.vocab = 100,
                           .hidden = 48,
                           .layers = 3,
                           .heads = 6,
                           .ffn = 96,
                           .max_positions = 64,
                           .type_vocab = 3,
                           .layer_norm_eps = 1e-7,
                           .dropout = 0.2,
                           .attention_dropout = 0.05,
                           .pooler = false};
  const json j = io::bert_config_to_json(c, "BertForMaskedLM");
  CHECK(j["model_type"] == "bert");
  CHECK(j["hidden_act"] == "gelu");
  CHECK(j["architectures"] == json::array({"BertForMaskedLM"}));
  CHECK(j["num_hidden_layers"] == 3);
  CHECK(j["layer_norm_eps"] == 1e-7);
  auto same = [](const enc::bert_config& a, const enc::bert_config& b) {
    return a.vocab == b.vocab && a.hidden == b.hidden && a.layers == b.layers && a.heads == b.heads && a.ffn == b.ffn &&
           a.max_positions == b.max_positions && a.type_vocab == b.type_vocab && a.layer_norm_eps == b.layer_norm_eps &&
           a.dropout == b.dropout && a.attention_dropout == b.attention_dropout && a.pooler == b.pooler;
  };
  CHECK(same(io::bert_config_from_json(j), c));
  CHECK(same(io::bert_config_from_json(json::parse(j.dump(2))), c));
  temp_dir d;
  io::write_bert_config(c, d.path / "config.json");
  CHECK(same(io::read_bert_config(d.path), c));
  CHECK(same(io::read_bert_config(d.path / "config.json"), c));
  CHECK(io::bert_config_to_json(enc::bert_config{}).count("add_pooling_layer") == 0);
}

TEST_CASE("hf_bert: bert-base-uncased's config.json parses") {
  const char* text = R"({
  "architectures": [
    "BertForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0.1,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "transformers_version": "4.6.0.dev0",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
}
)";
  const enc::bert_config c = io::bert_config_from_json(json::parse(text));
  CHECK(c.vocab == 30522);
  CHECK(c.hidden == 768);
  CHECK(c.layers == 12);
  CHECK(c.heads == 12);
  CHECK(c.ffn == 3072);
  CHECK(c.max_positions == 512);
  CHECK(c.type_vocab == 2);
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(c.dropout == 0.1);
  CHECK(c.attention_dropout == 0.1);
  CHECK(c.pooler);
  // An older-style config with only the sizes (as BERT's original bert_config.json) takes the defaults.
  const enc::bert_config old = io::bert_config_from_json(json::parse(R"({"hidden_size": 128, "num_attention_heads": 2,
      "num_hidden_layers": 2, "intermediate_size": 512, "vocab_size": 30522})"));
  CHECK(old.hidden == 128);
  CHECK(old.max_positions == 512);
  CHECK(old.layer_norm_eps == 1e-12);
}

TEST_CASE("hf_bert: unsupported or malformed config.json is a clear error") {
  auto err = [](const std::string& patch) {
    json j = io::bert_config_to_json(enc::bert_config{});
    j.merge_patch(json::parse(patch));
    return message_of([&] { io::bert_config_from_json(j); });
  };
  CHECK(err(R"({"hidden_act": "relu"})") ==
        "BERT config.json: 'hidden_act' = \"relu\" is not supported: hybrid's BERT uses the exact erf GELU (\"gelu\") "
        "only");
  CHECK(err(R"({"hidden_act": "gelu_new"})").find("'hidden_act' = \"gelu_new\"") != std::string::npos);
  CHECK(err(R"({"model_type": "roberta"})").find("'model_type' = \"roberta\" is not supported") != std::string::npos);
  CHECK(err(R"({"position_embedding_type": "relative_key"})").find("position_embedding_type") != std::string::npos);
  CHECK(err(R"({"is_decoder": true})").find("'is_decoder' = true is not supported") != std::string::npos);
  CHECK(err(R"({"hidden_size": "768"})") == "BERT config.json: 'hidden_size' = \"768\" is not a positive integer");
  CHECK(err(R"({"num_hidden_layers": 0})").find("'num_hidden_layers' = 0 is not a positive integer") !=
        std::string::npos);
  CHECK(err(R"({"vocab_size": 3.5})").find("'vocab_size' = 3.5") != std::string::npos);
  CHECK(err(R"({"hidden_size": 770})") ==
        "BERT config.json: hidden_size 770 is not a multiple of num_attention_heads 12");
  CHECK(err(R"({"layer_norm_eps": -1})").find("'layer_norm_eps' = -1 is not a number in [0.0, 1.0)") !=
        std::string::npos);
  CHECK(err(R"({"hidden_dropout_prob": 1.5})").find("hidden_dropout_prob") != std::string::npos);
  CHECK(err(R"({"architectures": "BertModel"})").find("'architectures'") != std::string::npos);
  CHECK(message_of([] { io::bert_config_from_json(json::array()); }).find("expected a JSON object") !=
        std::string::npos);

  temp_dir d;
  std::ofstream(d.path / "config.json") << "{\"hidden_size\": 768,";
  CHECK_THROWS_AS(io::read_bert_config(d.path), io::checkpoint_error);
  CHECK(message_of([&] { io::read_bert_config(d.path); }).find("is not valid JSON") != std::string::npos);
  std::ofstream(d.path / "config.json") << R"({"hidden_act": "silu"})";
  CHECK(message_of([&] { io::read_bert_config(d.path); }).find("config.json')") != std::string::npos);
  CHECK_THROWS_AS(io::read_bert_config(d.path / "absent.json"), std::system_error);
}

TEST_CASE("hf_bert: missing, mis-shaped, wrongly typed and truncated checkpoints are errors naming the tensor") {
  temp_dir d;
  enc::bert_model<float> m(fixture_config());
  const auto before = snapshot(m);

  rewrite(d.path / "missing.safetensors",
          [](const std::string& n) { return n == "encoder.layer.1.output.dense.bias" ? "" : "bert." + n; });
  const std::string missing = message_of([&] { io::load_hf_bert(m, d.path / "missing.safetensors"); });
  CHECK(missing.find("1 parameter not found: 'encoder.layer.1.output.dense.bias'") != std::string::npos);

  enc::bert_config small = fixture_config();
  small.vocab = 100;
  enc::bert_model<float> ms(small);
  CHECK_THROWS_AS(io::load_hf_bert(ms, fixture), shape_error);
  const std::string shaped = message_of([&] { io::load_hf_bert(ms, fixture); });
  CHECK(shaped.find("checkpoint tensor 'embeddings.word_embeddings.weight' [120, 32] does not fit parameter "
                    "'embeddings.word_embeddings.weight' [100, 32]") != std::string::npos);

  rewrite(d.path / "typed.safetensors", [](const std::string& n) { return n == "pooler.dense.bias" ? "" : n; },
          {zeros("pooler.dense.bias", io::dtype::I64, {32})});
  const std::string typed = message_of([&] { io::load_hf_bert(m, d.path / "typed.safetensors"); });
  CHECK(typed.find("tensor 'pooler.dense.bias' has dtype I64") != std::string::npos);

  fs::copy_file(fixture, d.path / "cut.safetensors");
  fs::resize_file(d.path / "cut.safetensors", fs::file_size(fixture) / 2);
  CHECK_THROWS_AS(io::load_hf_bert(m, d.path / "cut.safetensors"), io::format_error);

  fs::create_directories(d.path / "torch");
  std::ofstream(d.path / "torch" / "pytorch_model.bin") << "pickle";
  CHECK(message_of([&] { io::load_hf_bert(m, d.path / "torch"); }).find("pytorch_model.bin") != std::string::npos);
  CHECK(same_params(snapshot(m), before));  // no failed load wrote anything
}

}  // namespace HYBRID_TEST_UNIT
