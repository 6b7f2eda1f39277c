// Shared by the WordPiece fuzz targets: everything a tokenizer offers, run on one text, with the invariants
// HF's tokenizer keeps (ids in the vocabulary, truncation honoured, the three id lists of equal length).
#pragma once
#include <hybrid/io/wordpiece.hpp>

#include <string_view>
#include <vector>

#include "fuzz_common.hpp"

namespace fuzz {

inline void check_encoding(const hybrid::io::encoding& e, const hybrid::io::wordpiece_tokenizer& tok) {
  FUZZ_CHECK(e.token_type_ids.size() == e.size() && e.attention_mask.size() == e.size() && e.tokens.size() == e.size());
  for (auto id : e.input_ids) FUZZ_CHECK(id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size());
}

// Tokenizes `text` every way the tokenizer can; `max_length` drives truncation and padding.
inline void exercise(const hybrid::io::wordpiece_tokenizer& tok, std::string_view text, std::size_t max_length) {
  using namespace hybrid::io;
  const std::vector<std::int32_t> ids = tok.tokenize_ids(text);
  for (auto id : ids) FUZZ_CHECK(id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size());
  FUZZ_CHECK(tok.tokenize(text).size() == ids.size());
  (void)tok.basic_tokenize(text);
  (void)tok.decode(ids);
  (void)tok.decode(ids, true, false);

  const std::string_view a = text.substr(0, text.size() / 2), b = text.substr(text.size() / 2);
  for (auto strategy : {truncation_strategy::none, truncation_strategy::longest_first, truncation_strategy::only_first,
                        truncation_strategy::only_second}) {
    const encode_options o{.max_length = max_length, .truncation = strategy, .padding = padding_strategy::max_length};
    try {
      const encoding e = tok.encode(a, b, o);
      check_encoding(e, tok);
      if (strategy != truncation_strategy::none) FUZZ_CHECK(e.size() == max_length);  // truncated, then padded
      else FUZZ_CHECK(e.size() >= max_length);
    } catch (const std::length_error&) {  // documented: nothing left to cut on the chosen side
    }
  }
  const encode_options batch{.max_length = max_length, .truncation = truncation_strategy::longest_first,
                             .padding = padding_strategy::longest};
  const std::vector<std::string_view> texts{a, b, text};
  std::size_t longest = 0;
  const auto encs = tok.encode_batch(texts, batch);
  for (const auto& e : encs) check_encoding(e, tok), longest = std::max(longest, e.size());
  for (const auto& e : encs) FUZZ_CHECK(e.size() == longest && e.size() <= std::max<std::size_t>(max_length, 2));
}

}  // namespace fuzz
