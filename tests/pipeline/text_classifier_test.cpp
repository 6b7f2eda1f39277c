// Tests for hybrid/pipeline/text_classifier.hpp: the saved directory is transformers' layout; load + classify
// matches the model run by hand (softmax / sigmoid); LoRA models save after unloading; bad directories are errors.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/pipeline/text_classifier.hpp>
#include <nlohmann/json.hpp>
#include <random>
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
    path =
        fs::temp_directory_path() / ("hybrid_pipeline_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]",    "[SEP]", "[MASK]", "the", "movie", "was", "great",
                                        "bad",   "good",  "terrible", "hello", "world",  "##s", "!",     ",",   "."};
const enc::bert_config tiny{.vocab = 24, .hidden = 16, .layers = 2, .heads = 2, .ffn = 32, .max_positions = 32};
const std::vector<std::string> labels = {"negative", "positive", "neutral"};
const std::vector<std::string> texts = {"the movie was great!", "Terrible.", "hello worlds, hello", ""};

fs::path write_vocab(const fs::path& dir) {
  std::ofstream out(dir / "source_vocab.txt");
  for (const auto& t : vocab) out << t << '\n';
  return dir / "source_vocab.txt";
}

// A classifier with weights far from BERT's small initial ones, so the labels differ between texts.
pipeline::sequence_classifier<float> make_model() {
  pipeline::sequence_classifier<float> m(tiny, 3);
  std::mt19937 rng(3);
  m.visit("", [&](const std::string&, parameter<float>& p) { fill_uniform(p.value(), rng, -0.6, 0.6); });
  fill_uniform(m.classifier.weight().value(), rng, -2, 2);
  return m;
}

// Logits of one text, unpadded, by hand.
std::vector<double> reference_logits(const pipeline::sequence_classifier<float>& m, const io::wordpiece_tokenizer& tok,
                                     const std::string& text) {
  const auto e = tok.encode(text);
  enc::text_input in{tensor<std::int32_t>::from({1, static_cast<index_t>(e.size())}, e.input_ids), {}, {}};
  tape::current().reset();
  no_grad ng;
  dropout_rng d{};
  const var<float> y = m(in, d, false);
  return {y.values().begin(), y.values().end()};
}

// Points classifier row k at the pooled output of texts[k] (unit length, scaled): text k then gets label k.
void aim_head(pipeline::sequence_classifier<float>& m) {
  const auto tok = io::wordpiece_tokenizer(vocab);
  for (index_t k = 0; k < 3; ++k) {
    const auto e = tok.encode(texts[static_cast<std::size_t>(k)]);
    enc::text_input in{tensor<std::int32_t>::from({1, static_cast<index_t>(e.size())}, e.input_ids), {}, {}};
    tape::current().reset();
    no_grad ng;
    dropout_rng d{};
    const auto p = m.bert(in, d, false).pooled.values();
    double norm = 0;
    for (float v : p) norm += double(v) * v;
    for (index_t j = 0; j < 16; ++j)
      m.classifier.weight().value()[k * 16 + j] =
          static_cast<float>(5 * p[static_cast<std::size_t>(j)] / std::sqrt(norm));
    m.classifier.bias().value()[k] = 0;
  }
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

}  // namespace

TEST_CASE("save_text_classifier writes a BertForSequenceClassification directory") {
  temp_dir dir;
  auto m = make_model();
  const fs::path out = dir.path / "model";
  pipeline::save_text_classifier(out, m.bert, m.classifier, labels, write_vocab(dir.path));
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"})
    CHECK(fs::exists(out / f));
  const json j = read_json(out / "config.json");
  CHECK(j["architectures"] == json{"BertForSequenceClassification"});
  CHECK(j["id2label"] == json{{"0", "negative"}, {"1", "positive"}, {"2", "neutral"}});
  CHECK(j["label2id"] == json{{"negative", 0}, {"positive", 1}, {"neutral", 2}});
  CHECK(j["num_labels"] == 3);
  CHECK(j["problem_type"] == "single_label_classification");
  CHECK(j["hidden_size"] == 16);
  CHECK(read_json(out / "tokenizer_config.json")["do_lower_case"] == true);
  const auto r = io::safetensors_reader::open(out / "model.safetensors");
  CHECK(r.find("bert.embeddings.word_embeddings.weight"));
  CHECK(r.find("bert.encoder.layer.1.output.LayerNorm.bias"));
  CHECK(r.find("bert.pooler.dense.weight"));
  CHECK(r.at("classifier.weight").shape == std::vector<std::int64_t>{3, 16});
  CHECK(r.at("classifier.bias").shape == std::vector<std::int64_t>{3});
  CHECK(r.tensors().size() == static_cast<std::size_t>(5 + 16 * 2 + 2 + 2));
  CHECK(r.metadata().at("format") == "pt");

  CHECK_THROWS_AS(pipeline::save_text_classifier(out, m.bert, m.classifier, {"a", "b"}, write_vocab(dir.path)),
                  shape_error);
  CHECK_THROWS_AS(pipeline::save_text_classifier(out, m.bert, m.classifier, {"a", "b", "a"}, write_vocab(dir.path)),
                  std::invalid_argument);
  CHECK_THROWS(pipeline::save_text_classifier(out, m.bert, m.classifier, labels, dir.path / "missing.txt"));
}

TEST_CASE("text_classifier: load + classify a batch matches the model run by hand (softmax)") {
  temp_dir dir;
  auto m = make_model();
  aim_head(m);
  pipeline::save_text_classifier(dir.path / "model", m.bert, m.classifier, labels, write_vocab(dir.path));
  const auto clf = pipeline::text_classifier<float>::load(dir.path / "model", {.batch_size = 3, .max_length = 0});
  CHECK(clf.labels() == labels);
  CHECK(clf.problem() == pipeline::problem_type::single_label);
  const auto tok = io::wordpiece_tokenizer(vocab);
  const auto results = clf(texts);  // two batches, padded
  REQUIRE(results.size() == texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto z = reference_logits(m, tok, texts[i]);
    double top = *std::max_element(z.begin(), z.end()), sum = 0;
    for (double v : z) sum += std::exp(v - top);
    const auto& r = results[i];
    REQUIRE(r.scores.size() == 3);
    double total = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      CHECK(r.scores[k] == doctest::Approx(std::exp(z[k] - top) / sum).epsilon(1e-5));
      total += r.scores[k];
    }
    CHECK(total == doctest::Approx(1.0));
    const auto best = static_cast<std::size_t>(std::max_element(z.begin(), z.end()) - z.begin());
    CHECK(r.index == static_cast<index_t>(best));
    CHECK(r.label == labels[best]);
    CHECK(r.score == r.scores[best]);
    if (i < 3) CHECK(r.label == labels[i]);
  }
  // Batching changes nothing beyond rounding.
  const auto one = pipeline::text_classifier<float>::load(dir.path / "model", {.batch_size = 1, .max_length = 0});
  const auto single = one(texts);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    CHECK(single[i].label == results[i].label);
    CHECK(single[i].score == doctest::Approx(results[i].score).epsilon(1e-5));
  }
  CHECK(clf("the movie was great!").label == results[0].label);
  CHECK(clf(std::vector<std::string>{}).empty());
}

TEST_CASE("text_classifier: multi-label models score each label with a sigmoid") {
  temp_dir dir;
  auto m = make_model();
  pipeline::save_text_classifier(dir.path / "model", m.bert, m.classifier, labels, write_vocab(dir.path),
                                 {.problem = pipeline::problem_type::multi_label, .lower_case = true});
  CHECK(read_json(dir.path / "model" / "config.json")["problem_type"] == "multi_label_classification");
  const auto clf = pipeline::text_classifier<float>::load(dir.path / "model");
  CHECK(clf.problem() == pipeline::problem_type::multi_label);
  const auto tok = io::wordpiece_tokenizer(vocab);
  const auto results = clf(texts);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto z = reference_logits(m, tok, texts[i]);
    for (std::size_t k = 0; k < 3; ++k)
      CHECK(results[i].scores[k] == doctest::Approx(1 / (1 + std::exp(-z[k]))).epsilon(1e-5));
    CHECK(results[i].score == *std::max_element(results[i].scores.begin(), results[i].scores.end()));
  }
}

TEST_CASE("text_classifier: config.json labels, problem types and tokenizer options") {
  using pipeline::label_config_from_json;
  CHECK(label_config_from_json(json::object()).labels == std::vector<std::string>{"LABEL_0", "LABEL_1"});
  CHECK(label_config_from_json({{"num_labels", 3}}).labels.size() == 3);
  CHECK(label_config_from_json({{"num_labels", 1}}).problem == pipeline::problem_type::multi_label);
  CHECK(label_config_from_json({{"id2label", {{"1", "b"}, {"0", "a"}}}}).labels == std::vector<std::string>{"a", "b"});
  CHECK_THROWS_AS(label_config_from_json({{"id2label", {{"0", "a"}, {"2", "b"}}}}), io::checkpoint_error);
  CHECK_THROWS_AS(label_config_from_json({{"id2label", {{"x", "a"}}}}), io::checkpoint_error);
  CHECK_THROWS_AS(label_config_from_json({{"id2label", {{"0", "a"}}}, {"num_labels", 2}}), io::checkpoint_error);
  CHECK_THROWS_AS(label_config_from_json({{"num_labels", 0}}), io::checkpoint_error);
  CHECK_THROWS_WITH_AS(label_config_from_json({{"problem_type", "regression"}}), doctest::Contains("regression"),
                       io::checkpoint_error);

  temp_dir dir;
  std::ofstream(dir.path / "vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nHello\n";
  CHECK(pipeline::load_tokenizer(dir.path).encode("Hello").input_ids == std::vector<std::int32_t>{2, 4, 3});
  std::ofstream(dir.path / "tokenizer_config.json") << R"({"do_lower_case": false})";
  CHECK(pipeline::load_tokenizer(dir.path).encode("Hello").input_ids == std::vector<std::int32_t>{2, 5, 3});
  std::ofstream(dir.path / "tokenizer_config.json") << R"({"do_lower_case": "no"})";
  CHECK_THROWS_AS(pipeline::load_tokenizer(dir.path), io::checkpoint_error);
}

TEST_CASE("text_classifier: LoRA models are saved after merging; bad directories are clear errors") {
  temp_dir dir;
  const fs::path vocab_file = write_vocab(dir.path), out = dir.path / "model";
  auto m = make_model();
  layers::apply_lora(m, {.rank = 2, .alpha = 4});
  layers::for_each_lora(m, [](const std::string&, auto& l) {
    std::mt19937 r(5);
    fill_uniform(l.lora()->lora_B().value(), r, -0.3, 0.3);
  });
  const auto tok = io::wordpiece_tokenizer(vocab);
  const auto want = reference_logits(m, tok, texts[0]);
  CHECK_THROWS_AS(pipeline::save_text_classifier(out, m.bert, m.classifier, labels, vocab_file), std::logic_error);
  layers::unload_lora(m);
  pipeline::save_text_classifier(out, m.bert, m.classifier, labels, vocab_file);
  auto clf = pipeline::text_classifier<float>::load(out);
  const auto got = reference_logits(clf.model(), tok, texts[0]);
  for (std::size_t k = 0; k < 3; ++k) CHECK(got[k] == doctest::Approx(want[k]).epsilon(1e-5));

  using tc = pipeline::text_classifier<float>;
  CHECK_THROWS_AS(tc::load(dir.path / "missing"), std::system_error);
  // Fewer labels in config.json than classifier rows: a shape error naming the tensor.
  json j = read_json(out / "config.json");
  j["id2label"] = {{"0", "a"}, {"1", "b"}};
  j["num_labels"] = 2;
  std::ofstream(out / "config.json") << j.dump();
  CHECK_THROWS_WITH_AS(tc::load(out), doctest::Contains("classifier.weight"), shape_error);
  // A BertModel checkpoint without the head.
  pipeline::save_text_classifier(out, m.bert, m.classifier, labels, vocab_file);
  io::save_hf_bert(m.bert, dir.path / "bare", {.bert_prefix = true, .architecture = "", .metadata = {}});
  fs::copy_file(dir.path / "bare" / "model.safetensors", out / "model.safetensors",
                fs::copy_options::overwrite_existing);
  CHECK_THROWS_WITH_AS(tc::load(out), doctest::Contains("classifier.weight"), io::checkpoint_error);
  // A truncated checkpoint, a vocabulary larger than the embedding table, broken JSON.
  pipeline::save_text_classifier(out, m.bert, m.classifier, labels, vocab_file);
  fs::resize_file(out / "model.safetensors", fs::file_size(out / "model.safetensors") / 2);
  CHECK_THROWS_AS(tc::load(out), io::format_error);
  pipeline::save_text_classifier(out, m.bert, m.classifier, labels, vocab_file);
  {
    std::ofstream v(out / "vocab.txt", std::ios::app);
    for (int i = 0; i < 10; ++i) v << "extra" << i << '\n';
  }
  CHECK_THROWS_WITH_AS(tc::load(out), doctest::Contains("vocabulary"), io::checkpoint_error);
  std::ofstream(out / "config.json") << "{";
  CHECK_THROWS_WITH_AS(tc::load(out), doctest::Contains("not valid JSON"), io::checkpoint_error);
}

}  // namespace HYBRID_TEST_UNIT
