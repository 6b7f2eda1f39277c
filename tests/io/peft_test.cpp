// Tests for hybrid/io/peft.hpp: LoRA adapters + the head saved in PEFT's layout (names, adapter_config.json)
// and loaded back into a fresh base model, bitwise; bad adapter directories are clear errors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/io/peft.hpp>
#include <hybrid/pipeline/text_classifier.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using namespace hybrid;
using nlohmann::json;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hybrid_peft_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

using model = pipeline::sequence_classifier<float>;
const enc::bert_config tiny{.vocab = 50, .hidden = 16, .layers = 2, .heads = 2, .ffn = 32, .max_positions = 16};

// A LoRA model "after training": adapters and head moved away from their initial values.
model trained(const layers::lora_config& c) {
  model m(tiny, 3);
  layers::apply_lora(m, c);
  std::mt19937 rng(1);
  m.visit("", [&](const std::string&, parameter<float>& p) {
    if (p.trainable()) fill_uniform(p.value(), rng, -0.5, 0.5);
  });
  return m;
}

std::vector<float> logits(const model& m) {
  enc::text_input in{
      tensor<std::int32_t>({2, 4}, {2, 7, 9, 3, 2, 11, 3, 0}), {}, tensor<float>({2, 4}, {1, 1, 1, 1, 1, 1, 1, 0})};
  tape::current().reset();
  no_grad ng;
  dropout_rng d{};
  const var<float> y = m(in, d, false);
  return {y.values().begin(), y.values().end()};
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

const layers::lora_config config{.rank = 4, .alpha = 8, .dropout = 0.05, .target_modules = {"query", "value"}};

}  // namespace

TEST_CASE("save_lora_adapter writes PEFT's names and adapter_config.json; the head is saved by default") {
  temp_dir dir;
  model m = trained(config);
  io::save_lora_adapter(m, config, dir.path, {.base_model_name_or_path = "bert-tiny"});
  const auto r = io::safetensors_reader::open(dir.path / "adapter_model.safetensors");
  std::set<std::string> names;
  for (const auto& t : r.tensors()) {
    names.insert(t.name);
    CHECK(t.type == io::dtype::F32);
  }
  std::set<std::string> want{"base_model.model.classifier.weight", "base_model.model.classifier.bias"};
  for (int l = 0; l < 2; ++l)
    for (const char* mod : {"query", "value"})
      for (const char* ab : {"lora_A", "lora_B"})
        want.insert("base_model.model.bert.encoder.layer." + std::to_string(l) + ".attention.self." + mod + "." + ab +
                    ".weight");
  CHECK(names == want);
  CHECK(r.at("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight").shape ==
        std::vector<std::int64_t>{4, 16});
  CHECK(r.at("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight").shape ==
        std::vector<std::int64_t>{16, 4});
  CHECK(r.at("base_model.model.classifier.weight").shape == std::vector<std::int64_t>{3, 16});
  CHECK(r.metadata().at("format") == "pt");

  const json j = read_json(dir.path / "adapter_config.json");
  CHECK(j["peft_type"] == "LORA");
  CHECK(j["r"] == 4);
  CHECK(j["lora_alpha"] == 8.0);
  CHECK(j["lora_dropout"] == 0.05);
  CHECK(j["target_modules"] == json{"query", "value"});
  CHECK(j["modules_to_save"] == json{"classifier", "score"});
  CHECK(j["bias"] == "none");
  CHECK(j["task_type"] == "SEQ_CLS");
  CHECK(j["base_model_name_or_path"] == "bert-tiny");
  CHECK(j["fan_in_fan_out"] == false);
  CHECK(j["use_rslora"] == false);

  // No task type and no modules_to_save: adapters only, "modules_to_save": null.
  temp_dir plain;
  layers::lora_config c2 = config;
  c2.task_type = "";
  model m2 = trained(c2);
  io::save_lora_adapter(m2, c2, plain.path);
  CHECK(io::safetensors_reader::open(plain.path / "adapter_model.safetensors").tensors().size() == 8);
  const json j2 = read_json(plain.path / "adapter_config.json");
  CHECK(j2["modules_to_save"].is_null());
  CHECK(j2["task_type"].is_null());
  CHECK(j2["base_model_name_or_path"].is_null());

  model none(tiny, 3);
  CHECK_THROWS_AS(io::save_lora_adapter(none, config, plain.path), std::logic_error);

  // Adapters are named after their layer, whichever module apply_lora was given.
  layers::apply_lora(none.bert, {.rank = 2});
  none.visit("", [](const std::string& n, parameter<float>& p) { CHECK(p.name() == n); });
  CHECK(count_parameters(none, true) == 2 * 2 * (2 * 16 + 16 * 2) + 3 * 16 + 3);  // + the head, outside none.bert
}

TEST_CASE("load_lora_adapter restores adapters and head into a fresh base model, bitwise") {
  temp_dir dir;
  model m = trained(config);
  io::save_lora_adapter(m, config, dir.path);

  model fresh(tiny, 3);  // the same base weights (fixed init seeds), no adapters, untrained head
  CHECK(logits(fresh) != logits(m));
  const layers::lora_config c = io::load_lora_adapter(fresh, dir.path);
  CHECK(c.rank == 4);
  CHECK(c.alpha == 8);
  CHECK(c.dropout == 0.05);
  CHECK(c.target_modules == config.target_modules);
  CHECK(c.task_type == "SEQ_CLS");
  CHECK(layers::count_lora(fresh) == 4);
  CHECK(count_parameters(fresh, true) == count_parameters(m, true));
  std::vector<std::vector<float>> a, b;
  m.visit("", [&](const std::string&, parameter<float>& p) { a.emplace_back(p.value().begin(), p.value().end()); });
  fresh.visit("", [&](const std::string&, parameter<float>& p) { b.emplace_back(p.value().begin(), p.value().end()); });
  CHECK(a == b);
  CHECK(logits(fresh) == logits(m));

  // Loading again into a model that already carries the adapters overwrites them.
  layers::for_each_lora(fresh, [](const std::string&, auto& l) { l.lora()->lora_B().value().fill(0.f); });
  io::load_lora_adapter(fresh, dir.path);
  CHECK(logits(fresh) == logits(m));

  // A merged model must be unmerged first.
  layers::merge_lora(fresh);
  CHECK_THROWS_AS(io::load_lora_adapter(fresh, dir.path), std::logic_error);
}

TEST_CASE("load_lora_adapter: bad directories are errors naming the problem") {
  temp_dir dir;
  model m = trained(config);
  io::save_lora_adapter(m, config, dir.path);
  const fs::path cfg = dir.path / "adapter_config.json", weights = dir.path / "adapter_model.safetensors";
  const json good = read_json(cfg);
  auto write_config = [&](const json& j) { std::ofstream(cfg) << j.dump(); };

  SUBCASE("missing files") {
    model f(tiny, 3);
    CHECK_THROWS_AS(io::load_lora_adapter(f, dir.path / "nope"), std::system_error);
    fs::remove(weights);
    CHECK_THROWS_AS(io::load_lora_adapter(f, dir.path), std::system_error);
  }
  SUBCASE("unsupported or malformed config") {
    for (auto [key, value, what] : {std::tuple{"bias", json("all"), "'bias'"},
                                    {"use_rslora", json(true), "use_rslora"},
                                    {"r", json(0), "'r'"},
                                    {"target_modules", json(".*query"), "regexes"},
                                    {"peft_type", json("IA3"), "peft_type"},
                                    {"lora_dropout", json(1.5), "lora_dropout"},
                                    {"rank_pattern", json{{"query", 2}}, "rank_pattern"}}) {
      json j = good;
      j[key] = value;
      write_config(j);
      model f(tiny, 3);
      CHECK_THROWS_WITH_AS(io::load_lora_adapter(f, dir.path), doctest::Contains(what), io::checkpoint_error);
    }
    std::ofstream(cfg) << "{\"peft_type\": ";
    model f(tiny, 3);
    CHECK_THROWS_WITH_AS(io::load_lora_adapter(f, dir.path), doctest::Contains("not valid JSON"), io::checkpoint_error);
  }
  SUBCASE("a rank that disagrees with the tensors") {
    json j = good;
    j["r"] = 2;
    write_config(j);
    model f(tiny, 3);
    CHECK_THROWS_WITH_AS(io::load_lora_adapter(f, dir.path), doctest::Contains("lora_A.weight"), shape_error);
  }
  SUBCASE("a missing or an unexpected tensor") {
    const auto r = io::safetensors_reader::open(weights);
    std::vector<io::tensor_to_write> keep;
    std::vector<std::vector<float>> data;
    data.reserve(r.tensors().size() + 1);
    for (const auto& t : r.tensors())
      if (t.name != "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight") {
        data.push_back(r.read<float>(t.name));
        keep.push_back({t.name, t.shape, std::span<const float>(data.back())});
      }
    io::save_safetensors(weights, keep);
    model f(tiny, 3);
    CHECK_THROWS_WITH_AS(io::load_lora_adapter(f, dir.path), doctest::Contains("layer.1.attention.self.value.lora_B"),
                         io::checkpoint_error);
    data.push_back(std::vector<float>(4 * 16));
    keep.push_back({"base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight",
                    {16, 4},
                    std::span<const float>(data.back())});
    keep.push_back({"base_model.model.bert.encoder.layer.1.attention.self.key.lora_A.weight",
                    {4, 16},
                    std::span<const float>(data.back())});
    io::save_safetensors(weights, keep);
    model g(tiny, 3);
    CHECK_THROWS_WITH_AS(io::load_lora_adapter(g, dir.path), doctest::Contains("self.key.lora_A"),
                         io::checkpoint_error);
  }
  SUBCASE("a truncated file") {
    fs::resize_file(weights, fs::file_size(weights) - 10);
    model f(tiny, 3);
    CHECK_THROWS_AS(io::load_lora_adapter(f, dir.path), io::format_error);
  }
}

}  // namespace HYBRID_TEST_UNIT
