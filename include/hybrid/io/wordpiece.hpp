// hybrid/io/wordpiece.hpp: BERT's WordPiece tokenizer, behaving like Hugging Face's BertTokenizer
// (special-token split, BasicTokenizer, WordpieceTokenizer) plus [CLS]/[SEP] encoding, truncation, padding, decoding.
#pragma once

#include <algorithm>
#include <array>
#include <bitset>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "hybrid/core/compiled.hpp"

// Only the bodies call utf8proc (Unicode tables, normalization).
#if HYBRID_DEFINE
#include <utf8proc.h>
#endif

namespace hybrid::io {

// Pipeline for text between special tokens, in Hugging Face's order (transformers 4.3x):
//   lowercase per code point -> clean (drop NUL, U+FFFD, C*; whitespace -> ' ') -> pad CJK ideographs ->
//   NFC -> split on whitespace -> [never_split words stay whole] -> NFD + drop Mn -> split punctuation ->
//   greedy longest-match-first WordPiece with "##" continuations.
// Input that is not valid UTF-8 never fails: each invalid byte decodes to U+FFFD, which the cleaning step
// then removes, exactly what HF does with text decoded by bytes.decode("utf-8", errors="replace").
// Unicode tables are utf8proc's (Unicode 15 in Debian 12); Python's may be a version older.

struct wordpiece_options {
  bool lower_case = true;                 // HF do_lower_case (bert-base-uncased: true)
  std::optional<bool> strip_accents = std::nullopt;  // unset: strip exactly when lower_case, as HF does
  bool tokenize_chinese_chars = true;     // put spaces around CJK ideographs
  bool split_on_punctuation = true;       // HF do_split_on_punc
  std::vector<std::string> never_split = {};  // extra words the basic tokenizer keeps whole
  std::size_t max_input_chars_per_word = 100;  // longer words become [UNK]
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]",
              mask_token = "[MASK]";
};

enum class truncation_strategy { none, longest_first, only_first, only_second };
enum class padding_strategy { none, longest, max_length };  // longest: the longest in the batch

struct encode_options {
  std::size_t max_length = 512;  // BERT's position limit; used by truncation and padding::max_length
  truncation_strategy truncation = truncation_strategy::none;
  padding_strategy padding = padding_strategy::none;
  bool add_special_tokens = true;
};

struct encoding {
  std::vector<std::string> tokens;  // the vocabulary strings of input_ids
  std::vector<std::int32_t> input_ids, token_type_ids, attention_mask;
  std::size_t size() const { return input_ids.size(); }
};

// Reads vocab.txt: one token per line, id = line index. A final newline and CRLF line ends are accepted.
HYBRID_DECL std::vector<std::string> load_vocab(const std::filesystem::path& file);

namespace detail::wp {
struct sv_hash {  // lets the vocabulary be searched with a string_view, without building a std::string
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
}  // namespace detail::wp

template <class R>
concept text_range = std::ranges::input_range<R> &&
                     std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>;

class wordpiece_tokenizer {
 public:
  // vocab[i] is the token with id i. unk/cls/sep/pad tokens must be in it; mask is special only if present.
  // Immutable once built: one tokenizer can serve many threads.
  explicit wordpiece_tokenizer(std::vector<std::string> vocab, wordpiece_options opt = {});

  static wordpiece_tokenizer from_file(const std::filesystem::path& vocab_txt, wordpiece_options opt = {}) {
    return wordpiece_tokenizer(load_vocab(vocab_txt), std::move(opt));
  }

  std::size_t vocab_size() const { return tokens_.size(); }
  const wordpiece_options& options() const { return opt_; }
  std::int32_t unk_id() const { return unk_; }
  std::int32_t cls_id() const { return cls_; }
  std::int32_t sep_id() const { return sep_; }
  std::int32_t pad_id() const { return pad_; }
  // The mask token's id ([MASK], for masked-LM), or -1 when the vocabulary has none.
  std::int32_t mask_id() const {
    const auto it = vocab_.find(opt_.mask_token);
    return opt_.mask_token.empty() || it == vocab_.end() ? -1 : it->second;
  }

  std::int32_t token_to_id(std::string_view token) const {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? unk_ : it->second;
  }
  const std::string& id_to_token(std::int32_t id) const {  // out of range: the unknown token, as HF
    return id >= 0 && static_cast<std::size_t>(id) < tokens_.size() ? tokens_[static_cast<std::size_t>(id)]
                                                                     : opt_.unk_token;
  }

  // Words after the special-token split and the basic tokenizer, before WordPiece.
  std::vector<std::string> basic_tokenize(std::string_view text) const;

  // Token ids of text, without [CLS]/[SEP]. Special tokens written in the text map to their ids.
  std::vector<std::int32_t> tokenize_ids(std::string_view text) const;

  std::vector<std::string> tokenize(std::string_view text) const { return to_tokens(tokenize_ids(text)); }

  // [CLS] a [SEP] or [CLS] a [SEP] b [SEP], token types 0 for a's part and 1 for b's, as HF's __call__.
  encoding encode(std::string_view a, std::optional<std::string_view> b = {}, const encode_options& opt = {}) const;

  // Encodes each text; padding::longest (the default here) pads all to the longest, padding::max_length to max_length.
  template <text_range R>
  std::vector<encoding> encode_batch(const R& texts,
                                     const encode_options& opt = {.padding = padding_strategy::longest}) const {
    std::vector<encoding> out;
    for (auto&& t : texts) out.push_back(assemble(tokenize_ids(std::string_view(t)), nullptr, opt));
    return pad_batch(std::move(out), opt);
  }
  std::vector<encoding> encode_batch(std::initializer_list<std::string_view> texts,
                                     const encode_options& opt = {.padding = padding_strategy::longest}) const {
    return encode_batch(std::span(texts.begin(), texts.size()), opt);
  }
  // Pairs (a[i], b[i]).
  template <text_range R1, text_range R2>
  std::vector<encoding> encode_batch(const R1& a, const R2& b,
                                     const encode_options& opt = {.padding = padding_strategy::longest}) const {
    std::vector<encoding> out;
    auto ib = std::ranges::begin(b);
    for (auto&& t : a) {
      if (ib == std::ranges::end(b)) throw std::invalid_argument("wordpiece: encode_batch pairs of unequal length");
      auto ids_b = tokenize_ids(std::string_view(*ib++));
      out.push_back(assemble(tokenize_ids(std::string_view(t)), &ids_b, opt));
    }
    if (ib != std::ranges::end(b)) throw std::invalid_argument("wordpiece: encode_batch pairs of unequal length");
    return pad_batch(std::move(out), opt);
  }

  // HF decode: tokens joined by spaces, " ##" removed, then (by default) its clean_up_tokenization.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false,
                     bool clean_up_tokenization_spaces = true) const;

 private:
  using id_map = std::unordered_map<std::string, std::int32_t, detail::wp::sv_hash, std::equal_to<>>;

  std::vector<std::string> tokens_;
  wordpiece_options opt_;
  id_map vocab_;
  std::unordered_set<std::string, detail::wp::sv_hash, std::equal_to<>> never_split_;
  std::vector<std::pair<std::string, std::int32_t>> specials_;
  std::bitset<256> special_first_bytes_, never_split_first_bytes_;  // quick rejection before a hash lookup
  std::size_t max_token_bytes_ = 0;
  std::int32_t unk_ = 0, cls_ = 0, sep_ = 0, pad_ = 0;
  bool lower_ = true, strip_ = true;

  static void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (auto i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  }

  std::vector<std::string> to_tokens(const std::vector<std::int32_t>& ids) const;

  // HF splits the raw text on its special tokens first (longest match, leftmost first); they are never
  // lowercased or cleaned, so "hello[SEP]world" yields [SEP] and "[sep]" does not.
  template <class Special, class Chunk>
  void split_specials(std::string_view text, Special&& on_special, Chunk&& on_chunk) const;

  // The basic tokenizer on a chunk free of special tokens. Calls f(word, starts, whole) per word: its UTF-8,
  // the byte offset of each code point plus word.size(), and whether it is a never_split word.
  template <class F>
  void for_each_word(std::string_view chunk, F&& f) const;

  // Greedy longest-match-first: the longest vocabulary entry that prefixes the rest of the word ("##" after
  // the first piece); a word with any unmatched rest, or over max_input_chars_per_word, is one [UNK].
  void wordpiece(std::string_view word, std::span<const std::size_t> starts, std::vector<std::int32_t>& out) const;

  // Truncates like HF's truncate_sequences (right side), then adds the special tokens. Where HF would log an
  // error and return an over-long sequence (nothing left to cut from the chosen side), this throws instead;
  // longest_first may cut a sequence down to nothing, where HF refuses for a single sequence.
  encoding assemble(std::vector<std::int32_t> a, std::vector<std::int32_t>* b, const encode_options& opt) const;

  void pad(encoding& e, std::size_t length) const {  // on the right, as BERT's HF tokenizer
    while (e.size() < length) {
      e.input_ids.push_back(pad_), e.token_type_ids.push_back(0), e.attention_mask.push_back(0);
      e.tokens.push_back(tokens_[static_cast<std::size_t>(pad_)]);
    }
  }

  std::vector<encoding> pad_batch(std::vector<encoding> batch, const encode_options& opt) const;
};

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

namespace detail::wp {

using cp_t = utf8proc_int32_t;

// Decodes the code point at s[i] and advances i; an invalid or truncated sequence gives U+FFFD, one byte.
HYBRID_DECL cp_t next_cp(std::string_view s, std::size_t& i) {
  cp_t c = static_cast<unsigned char>(s[i]);
  utf8proc_ssize_t n = 1;
  if (c >= 0x80) {
    n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                         static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) c = 0xFFFD, n = 1;
  }
  i += static_cast<std::size_t>(n);
  return c;
}

HYBRID_DECL void append_utf8(std::string& s, cp_t c) {
  std::array<utf8proc_uint8_t, 4> b{};
  const auto n = utf8proc_encode_char(c, b.data());
  s.append(reinterpret_cast<const char*>(b.data()), static_cast<std::size_t>(n));
}

HYBRID_DECL int category(cp_t c) { return utf8proc_category(c); }

// HF _is_whitespace, plus U+2028/U+2029: HF keeps those through cleaning but Python's str.split() splits on them.
HYBRID_DECL bool is_space(cp_t c) {
  if (c < 0x80) return c == ' ' || c == '\t' || c == '\n' || c == '\r';
  const int k = category(c);
  return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

// HF _is_control: any C* category (Cc, Cf, Cs, Co and unassigned Cn) except tab, newline, carriage return.
HYBRID_DECL bool is_control(cp_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c < 0x80) return c < 0x20 || c == 0x7F;
  const int k = category(c);
  return k == UTF8PROC_CATEGORY_CN || k >= UTF8PROC_CATEGORY_CC;
}

// HF _is_punctuation: all non-alphanumeric printable ASCII (so $, +, ^ count too) and every P* category.
HYBRID_DECL bool is_punct(cp_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  const int k = category(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

// HF _is_chinese_char: the CJK Unified/Compatibility Ideographs blocks, not Hangul, kana or CJK punctuation.
HYBRID_DECL bool is_cjk(cp_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Replaces cps by their NFC (form = COMPOSE) or NFD (DECOMPOSE) through utf8proc, which wants UTF-8 in.
HYBRID_DECL void normalize(std::vector<cp_t>& cps, std::string& utf8, utf8proc_option_t form) {
  utf8.clear();
  for (cp_t c : cps) append_utf8(utf8, c);
  const auto opts = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | form);
  const auto* in = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
  const auto len = static_cast<utf8proc_ssize_t>(utf8.size());
  cps.resize(cps.size() + 4);
  auto n = utf8proc_decompose(in, len, cps.data(), static_cast<utf8proc_ssize_t>(cps.size()), opts);
  if (n > static_cast<utf8proc_ssize_t>(cps.size())) {  // decompositions can grow: retry with the size asked for
    cps.resize(static_cast<std::size_t>(n));
    n = utf8proc_decompose(in, len, cps.data(), n, opts);
  }
  if (n >= 0 && (form & UTF8PROC_COMPOSE)) n = utf8proc_normalize_utf32(cps.data(), n, opts);
  if (n < 0) throw std::runtime_error(std::string("wordpiece: utf8proc: ") + utf8proc_errmsg(n));
  cps.resize(static_cast<std::size_t>(n));
}
}  // namespace detail::wp

HYBRID_DECL std::vector<std::string> load_vocab(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::error_code ec;
  if (!in || std::filesystem::is_directory(file, ec))
    throw std::runtime_error("wordpiece: cannot read vocabulary file '" + file.string() + "'");
  std::vector<std::string> tokens;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // The tokens are matched against normalized UTF-8, so a malformed line could never match: report it.
    if (utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(line.data()),
                           static_cast<utf8proc_ssize_t>(line.size()), nullptr, 0, utf8proc_option_t{}) < 0)
      throw std::runtime_error("wordpiece: " + file.string() + ":" + std::to_string(tokens.size() + 1) +
                               ": token is not valid UTF-8");
    tokens.push_back(std::move(line));
  }
  if (in.bad())
    throw std::runtime_error("wordpiece: " + file.string() + ":" + std::to_string(tokens.size() + 1) +
                             ": read error");
  if (tokens.empty()) throw std::runtime_error("wordpiece: vocabulary file '" + file.string() + "' is empty");
  return tokens;
}

HYBRID_DECL wordpiece_tokenizer::wordpiece_tokenizer(std::vector<std::string> vocab, wordpiece_options opt)
    : tokens_(std::move(vocab)), opt_(std::move(opt)) {
  if (tokens_.size() > static_cast<std::size_t>(INT32_MAX))
    throw std::invalid_argument("wordpiece: vocabulary too large");
  vocab_.reserve(tokens_.size());
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    vocab_.insert_or_assign(tokens_[i], static_cast<std::int32_t>(i));  // a repeated token keeps its last id, as HF
    max_token_bytes_ = std::max(max_token_bytes_, tokens_[i].size());
  }
  auto required = [&](const std::string& t) {
    auto it = vocab_.find(t);
    if (it == vocab_.end())
      throw std::invalid_argument("wordpiece: special token '" + t + "' is not in the vocabulary");
    return it->second;
  };
  unk_ = required(opt_.unk_token), cls_ = required(opt_.cls_token), sep_ = required(opt_.sep_token),
  pad_ = required(opt_.pad_token);
  for (const auto* t : {&opt_.unk_token, &opt_.sep_token, &opt_.pad_token, &opt_.cls_token, &opt_.mask_token})
    if (auto it = vocab_.find(*t); it != vocab_.end() && !t->empty()) {
      specials_.emplace_back(*t, it->second);
      special_first_bytes_.set(static_cast<unsigned char>((*t)[0]));
      never_split_.insert(*t);
    }
  for (const auto& t : opt_.never_split) never_split_.insert(t);
  for (const auto& t : never_split_)
    if (!t.empty()) never_split_first_bytes_.set(static_cast<unsigned char>(t[0]));
  lower_ = opt_.lower_case;
  strip_ = opt_.strip_accents.value_or(opt_.lower_case);
}

HYBRID_DECL std::vector<std::string> wordpiece_tokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  split_specials(
      text, [&](std::int32_t id) { out.push_back(tokens_[static_cast<std::size_t>(id)]); },
      [&](std::string_view chunk) {
        for_each_word(chunk, [&](std::string_view w, std::span<const std::size_t>, bool) { out.emplace_back(w); });
      });
  return out;
}

HYBRID_DECL std::vector<std::int32_t> wordpiece_tokenizer::tokenize_ids(std::string_view text) const {
  std::vector<std::int32_t> ids;
  split_specials(
      text, [&](std::int32_t id) { ids.push_back(id); },
      [&](std::string_view chunk) {
        for_each_word(chunk, [&](std::string_view w, std::span<const std::size_t> starts, bool whole) {
          if (whole) ids.push_back(token_to_id(w));
          else wordpiece(w, starts, ids);
        });
      });
  return ids;
}

HYBRID_DECL encoding wordpiece_tokenizer::encode(std::string_view a, std::optional<std::string_view> b,
                                                 const encode_options& opt) const {
  auto ids_b = b ? std::optional(tokenize_ids(*b)) : std::nullopt;
  encoding e = assemble(tokenize_ids(a), ids_b ? &*ids_b : nullptr, opt);
  if (opt.padding == padding_strategy::max_length) pad(e, opt.max_length);
  return e;
}

HYBRID_DECL std::string wordpiece_tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens,
                                                    bool clean_up_tokenization_spaces) const {
  std::string s;
  bool first = true;
  for (auto id : ids) {
    if (skip_special_tokens && std::ranges::any_of(specials_, [&](const auto& sp) { return sp.second == id; }))
      continue;
    if (!std::exchange(first, false)) s += ' ';
    s += id_to_token(id);
  }
  replace_all(s, " ##", "");
  const auto begin = s.find_first_not_of(" \t\n\r\f\v");
  s = begin == std::string::npos ? std::string() : s.substr(begin, s.find_last_not_of(" \t\n\r\f\v") - begin + 1);
  if (clean_up_tokenization_spaces)
    for (auto [from, to] : {std::pair{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                            {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
      replace_all(s, from, to);
  return s;
}

HYBRID_DECL std::vector<std::string> wordpiece_tokenizer::to_tokens(const std::vector<std::int32_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto id : ids) out.push_back(id_to_token(id));
  return out;
}

template <class Special, class Chunk>
void wordpiece_tokenizer::split_specials(std::string_view text, Special&& on_special, Chunk&& on_chunk) const {
  std::size_t from = 0;
  for (std::size_t i = 0; i < text.size();) {
    const std::pair<std::string, std::int32_t>* best = nullptr;
    if (special_first_bytes_.test(static_cast<unsigned char>(text[i])))
      for (const auto& sp : specials_)
        if (text.substr(i).starts_with(sp.first) && (!best || sp.first.size() > best->first.size())) best = &sp;
    if (!best) { ++i; continue; }
    if (i > from) on_chunk(text.substr(from, i - from));
    on_special(best->second);
    from = i += best->first.size();
  }
  if (from < text.size()) on_chunk(text.substr(from));
}

template <class F>
void wordpiece_tokenizer::for_each_word(std::string_view chunk, F&& f) const {
  namespace wp = detail::wp;
  std::vector<wp::cp_t> cps, tok;
  cps.reserve(chunk.size() + 8);
  bool ascii = true;
  for (std::size_t i = 0; i < chunk.size();) {
    wp::cp_t c = wp::next_cp(chunk, i);
    // HF lowercases the text code point by code point before anything else (so no final-sigma rule);
    // Python's full lowercase mapping differs from utf8proc's simple one only for U+0130 ("i" + U+0307).
    if (lower_) {
      if (c == 0x130) cps.push_back('i'), c = 0x307;
      else c = c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : utf8proc_tolower(c);
    }
    if (c == 0 || c == 0xFFFD || wp::is_control(c)) continue;
    if (wp::is_space(c)) c = ' ';
    ascii = ascii && c < 0x80;
    if (opt_.tokenize_chinese_chars && wp::is_cjk(c)) cps.insert(cps.end(), {' ', c, ' '});
    else cps.push_back(c);
  }
  std::string word, scratch;
  std::vector<std::size_t> starts;
  if (!ascii) wp::normalize(cps, scratch, UTF8PROC_COMPOSE);  // HF: the same text in any form tokenizes alike

  auto emit = [&](std::span<const wp::cp_t> piece, bool whole) {
    word.clear(), starts.clear();
    for (wp::cp_t c : piece) starts.push_back(word.size()), wp::append_utf8(word, c);
    starts.push_back(word.size());
    if (!word.empty()) f(std::string_view(word), std::span<const std::size_t>(starts), whole);
  };
  for (std::size_t i = 0, j = 0; i < cps.size(); i = j) {
    if (cps[i] == ' ') { j = i + 1; continue; }
    for (j = i; j < cps.size() && cps[j] != ' ';) ++j;
    tok.assign(cps.begin() + static_cast<std::ptrdiff_t>(i), cps.begin() + static_cast<std::ptrdiff_t>(j));
    // A word can equal a never_split one only after cleaning (cased "[C\x01LS]"): keep it whole.
    word.clear();
    wp::append_utf8(word, tok[0]);
    if (never_split_first_bytes_.test(static_cast<unsigned char>(word[0]))) {
      for (std::size_t k = 1; k < tok.size(); ++k) wp::append_utf8(word, tok[k]);
      if (never_split_.contains(std::string_view(word))) {
        emit(tok, true);
        continue;
      }
    }
    if (strip_ && std::ranges::any_of(tok, [](wp::cp_t c) { return c >= 0x80; })) {
      wp::normalize(tok, scratch, UTF8PROC_DECOMPOSE);
      std::erase_if(tok, [](wp::cp_t c) { return wp::category(c) == UTF8PROC_CATEGORY_MN; });
    }
    std::size_t from = 0;
    for (std::size_t k = 0; k < tok.size(); ++k)
      if (opt_.split_on_punctuation && wp::is_punct(tok[k])) {
        emit(std::span(tok).subspan(from, k - from), false);
        emit(std::span(tok).subspan(k, 1), false);
        from = k + 1;
      }
    emit(std::span(tok).subspan(from), false);
  }
}

HYBRID_DECL void wordpiece_tokenizer::wordpiece(std::string_view word, std::span<const std::size_t> starts,
                                                std::vector<std::int32_t>& out) const {
  const std::size_t n = starts.size() - 1, mark = out.size();
  if (n > opt_.max_input_chars_per_word) {
    out.push_back(unk_);
    return;
  }
  std::string key;
  for (std::size_t start = 0, end = 0; start < n; start = end) {
    std::int32_t id = -1;
    for (end = n; end > start; --end) {
      const std::size_t len = starts[end] - starts[start];
      if (len + (start ? 2 : 0) > max_token_bytes_) continue;  // no entry is that long
      key.assign(start ? "##" : "").append(word.substr(starts[start], len));
      if (auto it = vocab_.find(key); it != vocab_.end()) { id = it->second; break; }
    }
    if (id < 0) {
      out.resize(mark);
      out.push_back(unk_);
      return;
    }
    out.push_back(id);
  }
}

HYBRID_DECL encoding wordpiece_tokenizer::assemble(std::vector<std::int32_t> a, std::vector<std::int32_t>* b,
                                                   const encode_options& opt) const {
  const std::size_t specials = opt.add_special_tokens ? (b ? 3 : 2) : 0;
  const std::size_t total = a.size() + (b ? b->size() : 0) + specials;
  if (opt.truncation != truncation_strategy::none && total > opt.max_length) {
    if (opt.max_length < specials)
      throw std::length_error("wordpiece: max_length " + std::to_string(opt.max_length) +
                              " leaves no room for the special tokens");
    const std::size_t remove = total - opt.max_length;
    auto cut = [](std::vector<std::int32_t>& v, std::size_t k) { v.resize(v.size() - std::min(k, v.size())); };
    if (opt.truncation == truncation_strategy::longest_first && b) {
      // HF's closed form of "drop one token from the longer, the second on ties, until it fits".
      const std::size_t la = a.size(), lb = b->size(), first = std::min(la > lb ? la - lb : lb - la, remove),
                        second = remove - first;
      cut(a, (la > lb ? first : 0) + second / 2);
      cut(*b, (la > lb ? 0 : first) + second - second / 2);
    } else {
      auto* v = opt.truncation == truncation_strategy::only_second ? b : &a;
      if (!v || v->size() < remove)
        throw std::length_error("wordpiece: cannot truncate to max_length " + std::to_string(opt.max_length) +
                                " by cutting only the " +
                                (opt.truncation == truncation_strategy::only_second ? "second" : "first") +
                                " sequence");
      cut(*v, remove);
    }
  }
  encoding e;
  auto put = [&](std::int32_t id, std::int32_t type) {
    e.input_ids.push_back(id), e.token_type_ids.push_back(type), e.attention_mask.push_back(1);
  };
  if (opt.add_special_tokens) put(cls_, 0);
  for (auto id : a) put(id, 0);
  if (opt.add_special_tokens) put(sep_, 0);
  if (b) {  // HF gives the second sequence type 1 only when it adds the special tokens
    for (auto id : *b) put(id, opt.add_special_tokens ? 1 : 0);
    if (opt.add_special_tokens) put(sep_, 1);
  }
  e.tokens = to_tokens(e.input_ids);
  return e;
}

HYBRID_DECL std::vector<encoding> wordpiece_tokenizer::pad_batch(std::vector<encoding> batch,
                                                                 const encode_options& opt) const {
  std::size_t length = 0;
  if (opt.padding == padding_strategy::max_length) length = opt.max_length;
  if (opt.padding == padding_strategy::longest)
    for (const auto& e : batch) length = std::max(length, e.size());
  for (auto& e : batch) pad(e, length);
  return batch;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
