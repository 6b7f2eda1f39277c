// libFuzzer target: vocab.txt + WordPiece. The bytes before the first 0xFF (never valid UTF-8, so never part
// of a valid vocabulary) are written as vocab.txt and loaded with load_vocab; the special tokens it lacks are
// appended; the bytes after it are tokenized with the result.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "wordpiece_common.hpp"

using namespace hybrid::io;

namespace {
std::filesystem::path vocab_file() {
  return std::filesystem::temp_directory_path() / ("hybrid_vocab_fuzz_" + std::to_string(::getpid()) + ".txt");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove(vocab_file(), ec);
    });
    return vocab_file();
  }();
  const std::string_view all = fuzz::text(data, size);
  const std::size_t cut = std::min(all.find('\xff'), all.size());
  const std::string_view text = cut < all.size() ? all.substr(cut + 1) : std::string_view();
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(all.data(), static_cast<std::streamsize>(cut));
  }
  try {
    std::vector<std::string> vocab = load_vocab(file);
    FUZZ_CHECK(!vocab.empty());
    for (const char* s : {"[UNK]", "[CLS]", "[SEP]", "[PAD]"})
      if (std::find(vocab.begin(), vocab.end(), s) == vocab.end()) vocab.emplace_back(s);
    const bool cased = !text.empty() && (text[0] & 1);
    const wordpiece_tokenizer tok(std::move(vocab), {.lower_case = !cased});
    fuzz::exercise(tok, text, text.empty() ? 0 : static_cast<unsigned char>(text[0]) % 20);
  } catch (const std::exception&) {
  }
  return 0;
}
