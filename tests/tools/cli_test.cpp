// Runs the built `hybrid` tool (path from tools/CMakeLists.txt): tokenize with the real bert-base-uncased
// vocabulary, inspect the BERT fixture, embed / classify a tiny saved model, and bad input -> exit 1 or 2, never a
// signal.
#include <doctest/doctest.h>

#ifndef HYBRID_CLI
TEST_CASE("hybrid CLI: not built (HYBRID_BUILD_TOOLS=OFF)") { MESSAGE("the hybrid tool is not built; nothing to run"); }
#else
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/pipeline/text_classifier.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using namespace hybrid;
using nlohmann::json;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hybrid_cli_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct result {
  int status = -1;  // exit status, or -1 when killed by a signal
  int signal = 0;
  std::string out, err;
  std::vector<json> lines() const {
    std::vector<json> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) v.push_back(json::parse(l));
    return v;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `hybrid args...` with stdout and stderr captured in files (no shell in between).
result run(const std::vector<std::string>& args) {
  static temp_dir io;
  const fs::path out = io.path / "out", err = io.path / "err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> all{HYBRID_CLI};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, HYBRID_CLI, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE_MESSAGE(rc == 0, "cannot start " HYBRID_CLI);
  int ws = 0;
  REQUIRE(waitpid(pid, &ws, 0) == pid);
  result r;
  if (WIFEXITED(ws)) r.status = WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) r.signal = WTERMSIG(ws);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// A failure: the given exit status, a message on stderr, nothing on stdout, no signal.
void check_fails(const std::vector<std::string>& args, int status, const std::string& message) {
  const result r = run(args);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  INFO("hybrid " << cmd << "-> status " << r.status << ", signal " << r.signal << ", stderr: " << r.err);
  CHECK(r.signal == 0);
  CHECK(r.status == status);
  CHECK(r.out.empty());
  CHECK(r.err.find(message) != std::string::npos);
}

const fs::path real_vocab = fs::path(HYBRID_DATA_DIR) / "bert-base-uncased" / "vocab.txt";
const fs::path fixture = fs::path(HYBRID_SOURCE_DIR) / "tests" / "enc" / "fixtures" / "bert_reference.safetensors";

const std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was",
                                        "great", "bad",   "hello", "world", "##s",    "!",   ","};
const enc::bert_config tiny{.vocab = 20, .hidden = 8, .layers = 1, .heads = 2, .ffn = 16, .max_positions = 12};
const std::vector<std::string> labels = {"neg", "pos", "mixed"};

// A tiny BertForSequenceClassification directory written with the pipeline's save.
struct model_dir {
  temp_dir tmp;
  fs::path dir = tmp.path / "model";
  pipeline::sequence_classifier<float> m{tiny, 3};
  model_dir() {
    std::ofstream v(tmp.path / "vocab.txt");
    for (const auto& t : vocab) v << t << '\n';
    v.close();
    std::mt19937 rng(2);
    fill_uniform(m.classifier.weight().value(), rng, -2, 2);
    pipeline::save_text_classifier(dir, m.bert, m.classifier, labels, tmp.path / "vocab.txt");
  }
};

}  // namespace

TEST_CASE("hybrid tokenize: the real bert-base-uncased vocabulary") {
  REQUIRE_MESSAGE(fs::exists(real_vocab), "missing " << real_vocab << ": run scripts/data/bert_vocab.sh");
  const result r = run({"tokenize", "--vocab", real_vocab.string(), "hello world", "Héllo, WORLD!"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto lines = r.lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["input_ids"] == json{101, 7592, 2088, 102});
  CHECK(lines[0]["tokens"] == json{"[CLS]", "hello", "world", "[SEP]"});
  CHECK(lines[0]["token_type_ids"] == json{0, 0, 0, 0});
  CHECK(lines[0]["attention_mask"] == json{1, 1, 1, 1});
  CHECK(lines[1]["tokens"] == json{"[CLS]", "hello", ",", "world", "!", "[SEP]"});
  // --cased keeps "Héllo" whole, which the uncased vocabulary does not know; "--" lets a text start with "-".
  const result c = run({"tokenize", "--cased", "--vocab=" + real_vocab.string(), "--", "Héllo", "-x"});
  REQUIRE(c.status == 0);
  const auto cl = c.lines();
  REQUIRE(cl.size() == 2);
  CHECK(cl[0]["tokens"] == json{"[CLS]", "[UNK]", "[SEP]"});
  CHECK(cl[1]["tokens"] == json{"[CLS]", "-", "x", "[SEP]"});
  const result t = run({"tokenize", "--vocab", real_vocab.string(), "--max-length", "3", "hello world"});
  REQUIRE(t.status == 0);
  CHECK(t.lines()[0]["input_ids"] == json{101, 7592, 102});
}

TEST_CASE("hybrid inspect: names, dtypes, shapes and the parameter count of the BERT fixture") {
  const auto r = io::safetensors_reader::open(fixture);
  std::uint64_t total = 0;
  for (const auto& t : r.tensors()) total += t.numel();
  const result j = run({"inspect", "--json", fixture.string()});
  INFO(j.err);
  REQUIRE(j.status == 0);
  const auto lines = j.lines();
  REQUIRE(lines.size() == 1);
  const json& o = lines[0];
  CHECK(o["parameter_count"] == total);
  CHECK(o["tensor_count"] == r.tensors().size());
  REQUIRE(o["tensors"].size() == r.tensors().size());
  for (std::size_t i = 0; i < r.tensors().size(); ++i) {
    const auto& t = r.tensors()[i];
    CHECK(o["tensors"][i]["name"] == t.name);
    CHECK(o["tensors"][i]["dtype"] == std::string(io::dtype_name(t.type)));
    CHECK(o["tensors"][i]["shape"] == json(t.shape));
  }
  CHECK(o["metadata"].contains("config"));

  const result text = run({"inspect", fixture.string()});
  REQUIRE(text.status == 0);
  CHECK(text.out.find("embeddings.word_embeddings.weight") != std::string::npos);
  CHECK(text.out.find(std::to_string(r.tensors().size()) + " tensors, " + std::to_string(total) + " parameters") !=
        std::string::npos);
}

TEST_CASE("hybrid embed and classify on a tiny saved model") {
  model_dir md;
  const result e = run({"embed", "--model", md.dir.string(), "the movie was great", "hello worlds"});
  INFO(e.err);
  REQUIRE(e.status == 0);
  const auto lines = e.lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["tokens"] == json{"[CLS]", "the", "movie", "was", "great", "[SEP]"});
  CHECK(lines[1]["input_ids"] == json{2, 10, 11, 12, 3});
  for (const auto& l : lines) {
    CHECK(l["cls"].size() == 8);
    CHECK(l["pooled"].size() == 8);
    CHECK(!l.contains("last_hidden_state"));
  }
  // The same numbers as the model run in-process.
  {
    enc::text_input in{tensor<std::int32_t>({1, 5}, {2, 10, 11, 12, 3}), {}, {}};
    tape::current().reset();
    no_grad ng;
    dropout_rng d{};
    const auto out = md.m.bert(in, d, false);
    for (index_t k = 0; k < 8; ++k) {
      CHECK(lines[1]["cls"][static_cast<std::size_t>(k)].get<double>() ==
            doctest::Approx(out.sequence[k]).epsilon(1e-6));
      CHECK(lines[1]["pooled"][static_cast<std::size_t>(k)].get<double>() ==
            doctest::Approx(out.pooled[k]).epsilon(1e-6));
    }
  }
  const result all = run({"embed", "--all-tokens", "--model", md.dir.string(), "--ids", "2,5,6,3", "--ids", "2,3"});
  INFO(all.err);
  REQUIRE(all.status == 0);
  const auto al = all.lines();
  REQUIRE(al.size() == 2);
  CHECK(al[0]["input_ids"] == json{2, 5, 6, 3});
  CHECK(al[0]["last_hidden_state"].size() == 4);
  CHECK(al[0]["last_hidden_state"][3].size() == 8);
  CHECK(al[1]["last_hidden_state"].size() == 2);
  CHECK(al[0]["last_hidden_state"][0] == al[0]["cls"]);

  const result c = run({"classify", "--model", md.dir.string(), "--all-scores", "the movie was great", "bad", "hello"});
  INFO(c.err);
  REQUIRE(c.status == 0);
  const auto cl = c.lines();
  REQUIRE(cl.size() == 3);
  const auto clf = pipeline::text_classifier<float>::load(md.dir);
  const auto want = clf(std::vector<std::string>{"the movie was great", "bad", "hello"});
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(cl[i]["label"] == want[i].label);
    CHECK(cl[i]["score"].get<double>() == doctest::Approx(want[i].score));
    CHECK(cl[i]["score"].get<double>() > 1.0 / 3);
    CHECK(cl[i]["scores"].size() == 3);
  }
  const result plain = run({"classify", "--model", md.dir.string(), "hello"});
  REQUIRE(plain.status == 0);
  CHECK(plain.lines()[0].size() == 2);  // label, score
}

TEST_CASE("hybrid: help, and bad input gives a message and exit 2 (usage) or 1 (error), never a signal") {
  const result h = run({"--help"});
  CHECK(h.status == 0);
  CHECK(h.out.find("usage: hybrid") != std::string::npos);
  for (const char* cmd : {"inspect", "tokenize", "embed", "classify"}) {
    const result c = run({cmd, "--help"});
    CHECK(c.status == 0);
    CHECK(c.out.find(std::string("usage: hybrid ") + cmd) != std::string::npos);
  }
  const result none = run({});
  CHECK(none.status == 2);
  CHECK(none.err.find("usage") != std::string::npos);

  model_dir md;
  const std::string model = md.dir.string(), vocab_file = real_vocab.string();
  // Usage errors.
  check_fails({"frobnicate"}, 2, "unknown command 'frobnicate'");
  check_fails({"tokenize", "--vocab", vocab_file, "--bogus", "x"}, 2, "unknown option '--bogus'");
  check_fails({"tokenize", "--vocab"}, 2, "--vocab needs a value");
  check_fails({"tokenize", "hello"}, 2, "missing required option --vocab");
  check_fails({"tokenize", "--vocab", vocab_file}, 2, "no TEXT");
  check_fails({"tokenize", "--cased=yes", "--vocab", vocab_file, "x"}, 2, "takes no value");
  check_fails({"tokenize", "--vocab", vocab_file, "--max-length", "ten", "x"}, 2, "not an integer");
  check_fails({"inspect"}, 2, "exactly one FILE");
  check_fails({"embed", "--model", model}, 2, "no TEXT");
  check_fails({"embed", "--model", model, "--ids", "2,x,3"}, 2, "not an integer");
  check_fails({"embed", "--model", model, "--ids", "2,3", "text"}, 2, "not both");
  check_fails({"classify", "--model", model, "--batch-size", "0", "x"}, 2, "--batch-size");
  // Errors.
  temp_dir tmp;
  check_fails({"tokenize", "--vocab", (tmp.path / "missing.txt").string(), "x"}, 1, "missing.txt");
  check_fails({"inspect", (tmp.path / "missing.safetensors").string()}, 1, "missing.safetensors");
  fs::copy_file(fixture, tmp.path / "truncated.safetensors");
  fs::resize_file(tmp.path / "truncated.safetensors", fs::file_size(fixture) - 100);
  check_fails({"inspect", (tmp.path / "truncated.safetensors").string()}, 1, "truncated.safetensors");
  std::ofstream(tmp.path / "garbage.safetensors") << "\xff\xff\xff\xff\xff\xff\xff\x7fnot a header";
  check_fails({"inspect", (tmp.path / "garbage.safetensors").string()}, 1, "header");
  std::ofstream(tmp.path / "tiny.safetensors") << "abc";
  check_fails({"inspect", (tmp.path / "tiny.safetensors").string()}, 1, "tiny.safetensors");
  check_fails({"embed", "--model", (tmp.path / "nope").string(), "x"}, 1, "nope");
  check_fails({"classify", "--model", (tmp.path / "nope").string(), "x"}, 1, "nope");
  check_fails({"embed", "--model", model, "--ids", "2,999,3"}, 1, "999");
  check_fails({"embed", "--model", model, "--ids", "2,5,5,5,5,5,5,5,5,5,5,5,5,3"}, 1, "max_positions");
  // A checkpoint cut short, and a model directory without a classifier head.
  fs::resize_file(md.dir / "model.safetensors", fs::file_size(md.dir / "model.safetensors") - 64);
  check_fails({"embed", "--model", model, "x"}, 1, "model.safetensors");
  check_fails({"classify", "--model", model, "x"}, 1, "model.safetensors");
  io::save_hf_bert(md.m.bert, md.dir, {.bert_prefix = true, .architecture = "", .metadata = {}});
  check_fails({"classify", "--model", model, "x"}, 1, "classifier.weight");
  const result ok = run({"embed", "--model", model, "--ids", "2,3"});  // a BertModel checkpoint embeds fine
  CHECK(ok.status == 0);
}

}  // namespace HYBRID_TEST_UNIT
#endif
