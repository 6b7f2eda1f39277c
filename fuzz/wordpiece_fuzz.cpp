// libFuzzer target: the WordPiece tokenizer on arbitrary bytes (any UTF-8, or not) with a fixed small
// vocabulary, uncased and cased (the first byte picks max_length and the options, the rest is the text).
#include <exception>
#include <string>
#include <vector>

#include "wordpiece_common.hpp"

using namespace hybrid::io;

namespace {

std::vector<std::string> small_vocab() {
  std::vector<std::string> v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", "\"", "#", "$", "'", "(", ")",
                                ",", "-", ".", "/", ":", "?", "@", "[", "]", "\xc2\xbf", "\xe3\x80\x82"};
  for (const char* w : {"the", "a", "an", "hello", "world", "un", "##aff", "##able", "##ing", "##ed", "##s", "play",
                        "run", "##ning", "cafe", "caf\xc3\xa9", "na\xc3\xafve", "\xc3\xa9", "##\xc3\xa9", "i",
                        "##i", "\xce\xb1", "##\xce\xb2", "\xe4\xb8\xad", "\xe5\x9b\xbd", "\xe6\x97\xa5",
                        "\xd0\xbc\xd0\xb8\xd1\x80", "##\xd1\x80", "\xf0\x9f\x98\x80", "x", "##x", "##y", "y",
                        "0", "1", "##0", "##1", "[CLS]x", "##"})
    v.emplace_back(w);
  for (char c = 'a'; c <= 'z'; ++c) v.push_back(std::string(1, c)), v.push_back("##" + std::string(1, c));
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const wordpiece_tokenizer uncased(small_vocab());
  static const wordpiece_tokenizer cased(small_vocab(), {.lower_case = false});
  static const wordpiece_tokenizer raw(small_vocab(), {.lower_case = false, .strip_accents = false,
                                                       .tokenize_chinese_chars = false, .split_on_punctuation = false,
                                                       .never_split = {"hello", "[x]"},
                                                       .max_input_chars_per_word = 8});
  if (size == 0) return 0;
  const std::size_t max_length = data[0] % 16;
  const auto& tok = data[0] / 16 % 3 == 0 ? uncased : data[0] / 16 % 3 == 1 ? cased : raw;
  try {
    fuzz::exercise(tok, fuzz::text(data + 1, size - 1), max_length);
  } catch (const std::exception&) {
  }
  return 0;
}
