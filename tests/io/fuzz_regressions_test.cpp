// Regression tests for what fuzzing the parsers found (fuzz/, docs/reliability.md): every input committed under
// tests/io/fixtures/fuzz/<target>/ is replayed through its parser, which must give a result or a std::exception,
// and each finding's own test checks the error it now gives. Run under ASan/UBSan by scripts/test_sanitized.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <hybrid/io/hf_bert.hpp>
#include <hybrid/io/idx.hpp>
#include <hybrid/io/safetensors.hpp>
#include <hybrid/io/wav.hpp>
#include <hybrid/io/wordpiece.hpp>
#include <hybrid/pipeline/text_classifier.hpp>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>
#ifdef HYBRID_WITH_PNG
#include <hybrid/io/png.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt
#endif

namespace fs = std::filesystem;
using namespace hybrid;

namespace {

const fs::path findings = fs::path(HYBRID_SOURCE_DIR) / "tests" / "io" / "fixtures" / "fuzz";

std::vector<unsigned char> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string text_of(const fs::path& p) {
  const auto b = slurp(p);
  return {b.begin(), b.end()};
}

// The message of the exception `f` throws (E or a subclass); fails if it throws nothing.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception thrown");
  return {};
}

// What each fuzz target does with its input, minus the invariant checks (fuzz/*_fuzz.cpp).
const std::map<std::string, std::function<void(std::span<const unsigned char>)>> replay = {
    {"safetensors",
     [](std::span<const unsigned char> b) {
       const auto r = io::safetensors_reader::from_bytes(std::as_bytes(b), "finding");
       for (const auto& t : r.tensors()) (void)r.read<float>(t.name);
     }},
    {"config",
     [](std::span<const unsigned char> b) {
       const auto j = nlohmann::json::parse(b.begin(), b.end());
       try {
         (void)io::bert_config_from_json(j);
       } catch (const io::checkpoint_error&) {
       }
       (void)pipeline::label_config_from_json(j);
     }},
    {"idx", [](std::span<const unsigned char> b) { (void)io::read_idx(b, "finding"); }},
    {"wav", [](std::span<const unsigned char> b) { (void)io::read_wav(b, "finding"); }},
#ifdef HYBRID_WITH_PNG
    {"png", [](std::span<const unsigned char> b) { (void)io::to_chw(io::read_png(b, io::pixel_format::rgba)); }},
#endif
};

}  // namespace

TEST_CASE("fuzz findings: every committed input is parsed or rejected with an exception") {
  REQUIRE(fs::is_directory(findings));
  int replayed = 0;
  for (const auto& dir : fs::directory_iterator(findings)) {
    if (!dir.is_directory()) continue;
    const std::string target = dir.path().filename().string();
    const auto it = replay.find(target);
    REQUIRE_MESSAGE(it != replay.end(), "no replay for fuzz target '" << target << "'");
    for (const auto& f : fs::directory_iterator(dir.path())) {
      CAPTURE(f.path());
      const auto bytes = slurp(f.path());
      try {
        it->second(bytes);
      } catch (const std::exception&) {
      }
      ++replayed;
    }
  }
  CHECK(replayed > 0);
}

TEST_CASE("fuzz finding: classifier config.json with a huge num_labels is refused at once") {
  // Before: label_config_from_json generated 10^11 label names (a hang, then out of memory) from 28 bytes.
  const auto j = nlohmann::json::parse(text_of(findings / "config" / "num_labels_1e11.json"));
  const std::string msg = error_of<io::checkpoint_error>([&] { (void)pipeline::label_config_from_json(j); });
  CHECK(msg.find("'num_labels' = 100000000000 is above 1048576") != std::string::npos);
  CHECK(pipeline::label_config_from_json(nlohmann::json{{"num_labels", 1 << 20}}).labels.size() == 1u << 20);
}

TEST_CASE("fuzz finding: BERT config.json sizes whose weights cannot be addressed are refused") {
  // Before: accepted; bert_model then allocated vocab x hidden x 4 bytes computed modulo 2^64 (a 32-byte table
  // claiming 2^59 + 1 rows), so any lookup past the first rows read out of bounds.
  auto config = [](const char* file) {
    return io::bert_config_from_json(nlohmann::json::parse(text_of(findings / "config" / file)));
  };
  CHECK(error_of<io::checkpoint_error>([&] { (void)config("vocab_2p59_overflow.json"); })
            .find("'vocab_size' = 576460752303423488 is above 2147483647") != std::string::npos);
  CHECK(error_of<io::checkpoint_error>([&] { (void)config("hidden_2p32.json"); })
            .find("'hidden_size' = 4294967296 is above 2147483647") != std::string::npos);
  // Products are checked too: each size fits int32, vocab x hidden does not fit the address space.
  const auto wide = nlohmann::json{{"vocab_size", 2147483647}, {"hidden_size", 2147483646}, {"num_attention_heads", 2}};
  CHECK(error_of<io::checkpoint_error>([&] { (void)io::bert_config_from_json(wide); })
            .find("'vocab_size' = 2147483647 x hidden_size 2147483646 is too many elements") != std::string::npos);
  // The largest sizes real checkpoints use are still fine.
  const auto big = io::bert_config_from_json(
      nlohmann::json{{"vocab_size", 250002}, {"hidden_size", 4096}, {"num_attention_heads", 64}, {"intermediate_size", 16384}});
  CHECK(big.vocab == 250002);
}

#ifdef HYBRID_WITH_PNG
TEST_CASE("fuzz finding: a PNG chunk longer than the file is refused before libpng allocates it") {
  // Before: libpng allocated and cleared the tEXt chunk's declared 725 MB for this 76-byte file (12 s under ASan).
  const auto bytes = slurp(findings / "png" / "text_chunk_725mb.png");
  CHECK(error_of<io::png_decode_error>([&] { (void)io::read_png(bytes); }) ==
        "<memory>: corrupt PNG: chunk 'tEXt' at byte offset 33 declares 725286912 data bytes, only 31 follow");
  // A file that merely ends early (no IEND) is still libpng's to report.
  const auto cut = std::span(bytes).first(33);
  CHECK(error_of<io::png_decode_error>([&] { (void)io::read_png(cut); }).find("chunk 'tEXt'") == std::string::npos);
}

}  // namespace HYBRID_TEST_UNIT
#endif
