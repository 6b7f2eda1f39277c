// libFuzzer target: the `hybrid` tool's argument handling. tools/hybrid_cli.cpp is compiled in with its main
// renamed (it is not a library), and each input, split at NUL bytes, becomes argv. The tool promises an exit
// status and a message for every command line: an escaping exception, a crash or a sanitizer report is a finding.
// It runs in a scratch directory holding a vocabulary, a safetensors file and tiny model directories (m: BertModel,
// c: classifier); arguments naming anything outside it ('/' or "..") are skipped, so no other file is ever read.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <streambuf>
#include <string>
#include <vector>

// Everything the tool includes, first, so that the renaming below reaches its main only.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <stdexcept>
#include <string_view>

#include "hybrid/io/hf_bert.hpp"
#include "hybrid/io/safetensors.hpp"
#include "hybrid/io/wordpiece.hpp"
#include "hybrid/pipeline/text_classifier.hpp"

#include "fuzz_common.hpp"

#define main hybrid_cli_main
#include HYBRID_CLI_SOURCE
#undef main

namespace {

namespace fs = std::filesystem;
using namespace hybrid;

struct null_buffer : std::streambuf {
  int overflow(int c) override { return traits_type::not_eof(c); }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// The scratch directory: v.txt, t.safetensors, m/ (BertModel) and c/ (BertForSequenceClassification).
void make_sandbox() {
  const fs::path dir = fs::temp_directory_path() / ("hybrid_cli_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n,\n.\n!\nhello\nworld\nthe\n##s\n##ing\nplay\n";
  for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
  write(dir / "v.txt", vocab);
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  io::save_safetensors(dir / "t.safetensors", {{"a.weight", {2, 3}, std::span<const float>(w)},
                                               {"b", {}, std::span<const float>(w).first(1)}},
                       {{"format", "pt"}});
  const enc::bert_config c{.vocab = 64, .hidden = 8, .layers = 1, .heads = 2, .ffn = 16, .max_positions = 12,
                           .type_vocab = 2};
  enc::bert_model<float> bert(c);
  io::save_hf_bert(bert, dir / "m");
  write(dir / "m" / "vocab.txt", vocab);
  layers::linear<float> head(c.hidden, 3);
  pipeline::save_text_classifier(dir / "c", bert, head, {"neg", "neu", "pos"}, dir / "v.txt");
  fs::current_path(dir);
  static const fs::path sandbox = dir;
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(sandbox, ec);
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  static null_buffer sink;
  make_sandbox();
  std::cout.rdbuf(&sink);
  std::cerr.rdbuf(&sink);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"hybrid"};
  std::string cur;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) args.push_back(std::move(cur)), cur.clear();
    else cur += static_cast<char>(data[i]);
  }
  if (size > 0) args.push_back(std::move(cur));
  if (args.size() > 64) return 0;
  for (const auto& a : args)
    if (a.find('/') != std::string::npos || a.find("..") != std::string::npos) return 0;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.clear();
  const int status = hybrid_cli_main(static_cast<int>(args.size()), argv.data());
  FUZZ_CHECK(status == 0 || status == 1 || status == 2);
  return 0;
}
