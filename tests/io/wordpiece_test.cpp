// Tests for hybrid/io/wordpiece.hpp against the real bert-base-uncased vocabulary (scripts/fetch_data.sh)
// and a fixture from an independent Python re-implementation of Hugging Face's BertTokenizer.
#include <doctest/doctest.h>

#include <hybrid/io/wordpiece.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <list>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid::io;
using ids = std::vector<std::int32_t>;

namespace {
const std::filesystem::path vocab_file = HYBRID_DATA_DIR "/bert-base-uncased/vocab.txt";

const wordpiece_tokenizer& bert(wordpiece_options opt = {}) {
  static std::list<std::pair<std::pair<bool, std::optional<bool>>, wordpiece_tokenizer>> cache;  // stable refs
  const auto key = std::pair{opt.lower_case, opt.strip_accents};
  for (auto& [k, tok] : cache)
    if (k == key) return tok;
  if (!std::filesystem::exists(vocab_file))
    FAIL("missing " << vocab_file << ": run scripts/fetch_data.sh (recipe scripts/data/bert_vocab.sh)");
  return cache.emplace_back(key, wordpiece_tokenizer::from_file(vocab_file, opt)).second;
}

std::string unhex(const std::string& h) {
  std::string s;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) s += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}

std::filesystem::path write_temp(const std::string& name, const std::string& content) {
  auto p = std::filesystem::temp_directory_path() / ("hybrid_wordpiece_" + name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

// A tiny vocabulary for checking the algorithm where the real one has no suitable entries.
wordpiece_tokenizer tiny(wordpiece_options opt = {}) {
  return wordpiece_tokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##a",
                              "aa", "[FOO]", "runner", "run", "##ner", ".", "!", "##!"},
                             std::move(opt));
}
}  // namespace

TEST_CASE("hand-checked bert-base-uncased ids") {
  const auto& tok = bert();
  CHECK(tok.vocab_size() == 30522);
  CHECK(tok.mask_id() == 103);  // [MASK]
  CHECK(tok.encode("hello world").input_ids == ids{101, 7592, 2088, 102});
  CHECK(tok.tokenize("Hello, World!") == std::vector<std::string>{"hello", ",", "world", "!"});
  CHECK(tok.tokenize_ids("Hello, World!") == ids{7592, 1010, 2088, 999});
  // "unaffable" is not in this vocabulary; greedy longest-first gives una + ##ffa + ##ble.
  CHECK(tok.tokenize("unaffable") == std::vector<std::string>{"una", "##ffa", "##ble"});
  CHECK(tok.tokenize("I can't") == std::vector<std::string>{"i", "can", "'", "t"});
  CHECK(tok.tokenize_ids("I can't") == ids{1045, 2064, 1005, 1056});
  // Accents stripped, CJK split per ideograph (字 is not in the vocabulary).
  CHECK(tok.tokenize("Café 中文字") == std::vector<std::string>{"cafe", "中", "文", "[UNK]"});
  CHECK(tok.tokenize_ids("中文") == ids{1746, 1861});
  CHECK(tok.id_to_token(7592) == "hello");
  CHECK(tok.token_to_id("world") == 2088);
  CHECK(tok.token_to_id("no-such-token") == tok.unk_id());
  CHECK(tok.id_to_token(-1) == "[UNK]");
  CHECK(tok.id_to_token(30522) == "[UNK]");
  CHECK(tok.id_to_token(1) == "[unused0]");
}

TEST_CASE("fixture from the Python reference implementation") {
  const auto path = std::filesystem::path(HYBRID_SOURCE_DIR) / "tests/io/fixtures/wordpiece/cases.json";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "missing fixture " << path);
  const auto doc = nlohmann::json::parse(in);
  REQUIRE(doc["cases"].size() >= 30);
  for (const auto& c : doc["cases"]) {
    const std::string a = c.contains("a_hex") ? unhex(c["a_hex"]) : c["a"].get<std::string>();
    wordpiece_options wo;
    wo.lower_case = c.value("lower_case", true);
    if (c.contains("strip_accents")) wo.strip_accents = c["strip_accents"].get<bool>();
    encode_options eo;
    eo.max_length = c.value("max_length", std::size_t{512});
    const auto tr = c.value("truncation", std::string("none"));
    eo.truncation = tr == "longest_first" ? truncation_strategy::longest_first
                    : tr == "only_first"  ? truncation_strategy::only_first
                    : tr == "only_second" ? truncation_strategy::only_second
                                          : truncation_strategy::none;
    eo.padding = c.value("padding", std::string("none")) == "max_length" ? padding_strategy::max_length
                                                                         : padding_strategy::none;
    std::optional<std::string> b;
    if (c.contains("b")) b = c["b"].get<std::string>();
    CAPTURE(c.dump());
    const auto& tok = bert(wo);
    const auto e = tok.encode(a, b ? std::optional<std::string_view>(*b) : std::nullopt, eo);
    CHECK(e.tokens == c["tokens"].get<std::vector<std::string>>());
    CHECK(e.input_ids == c["input_ids"].get<ids>());
    CHECK(e.token_type_ids == c["token_type_ids"].get<ids>());
    CHECK(e.attention_mask == c["attention_mask"].get<ids>());
    CHECK(tok.decode(e.input_ids) == c["decoded"].get<std::string>());
    CHECK(tok.decode(e.input_ids, true) == c["decoded_skip_special"].get<std::string>());
  }
}

TEST_CASE("pairs, truncation, padding and attention mask") {
  const auto& tok = bert();
  const auto e = tok.encode("How old are you?", "I am 6 years old.");
  CHECK(e.tokens == std::vector<std::string>{"[CLS]", "how", "old", "are", "you", "?", "[SEP]", "i", "am", "6", "years",
                                             "old", ".", "[SEP]"});
  CHECK(e.token_type_ids == ids{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1});
  CHECK(e.attention_mask == ids(14, 1));

  // longest_first: first equalize the lengths (6 vs 2), then cut alternately, the second sequence first.
  const encode_options cut{.max_length = 7, .truncation = truncation_strategy::longest_first};
  CHECK(tok.encode("a b c d e f", "x y", cut).tokens ==
        std::vector<std::string>{"[CLS]", "a", "b", "[SEP]", "x", "y", "[SEP]"});
  CHECK(tok.encode("a b c", "x y z", {.max_length = 6, .truncation = truncation_strategy::longest_first}).tokens ==
        std::vector<std::string>{"[CLS]", "a", "b", "[SEP]", "x", "[SEP]"});
  CHECK(tok.encode("a b c", {}, {.max_length = 2, .truncation = truncation_strategy::longest_first}).input_ids ==
        ids{101, 102});
  CHECK_THROWS_AS(tok.encode("a b", "c", {.max_length = 2, .truncation = truncation_strategy::longest_first}),
                  std::length_error);
  CHECK_THROWS_AS(tok.encode("a b", "c", {.max_length = 4, .truncation = truncation_strategy::only_second}),
                  std::length_error);
  // No truncation asked: max_length does not cut, and padding::max_length never shortens.
  CHECK(tok.encode("a b c", {}, {.max_length = 3, .padding = padding_strategy::max_length}).size() == 5);

  const auto p = tok.encode("hello", "world", {.max_length = 8, .padding = padding_strategy::max_length});
  CHECK(p.input_ids == ids{101, 7592, 102, 2088, 102, 0, 0, 0});
  CHECK(p.token_type_ids == ids{0, 0, 0, 1, 1, 0, 0, 0});
  CHECK(p.attention_mask == ids{1, 1, 1, 1, 1, 0, 0, 0});
  CHECK(p.tokens.back() == "[PAD]");

  const auto raw = tok.encode("hello", "world", {.add_special_tokens = false});
  CHECK(raw.input_ids == ids{7592, 2088});
  CHECK(raw.token_type_ids == ids{0, 0});  // as HF: types are 0 without the special tokens
}

TEST_CASE("batches pad to the longest") {
  const auto& tok = bert();
  const auto batch = tok.encode_batch({"hello world", "hello", ""});
  REQUIRE(batch.size() == 3);
  for (const auto& e : batch) CHECK(e.size() == 4);
  CHECK(batch[1].input_ids == ids{101, 7592, 102, 0});
  CHECK(batch[1].attention_mask == ids{1, 1, 1, 0});
  CHECK(batch[2].input_ids == ids{101, 102, 0, 0});

  const std::vector<std::string> texts{"hello world", "hello"};
  const auto fixed = tok.encode_batch(texts, {.max_length = 3, .truncation = truncation_strategy::longest_first,
                                              .padding = padding_strategy::max_length});
  CHECK(fixed[0].input_ids == ids{101, 7592, 102});
  CHECK(fixed[1].input_ids == ids{101, 7592, 102});
  CHECK(tok.encode_batch(texts, {})[1].size() == 3);  // padding::none

  const std::vector<std::string_view> second{"world", "a b c"};
  const auto pairs = tok.encode_batch(texts, second);
  CHECK(pairs[0].input_ids == ids{101, 7592, 2088, 102, 2088, 102, 0});
  CHECK(pairs[1].token_type_ids == ids{0, 0, 0, 1, 1, 1, 1});
  CHECK_THROWS_AS(tok.encode_batch(texts, std::vector<std::string>{"x"}), std::invalid_argument);
}

TEST_CASE("basic tokenizer details") {
  const auto& tok = bert();
  CHECK(tok.basic_tokenize("Héllo, WORLD!") == std::vector<std::string>{"hello", ",", "world", "!"});
  // Special tokens are split out of the raw text even without spaces and are not lowercased...
  CHECK(tok.basic_tokenize("x[MASK]y [cls]") == std::vector<std::string>{"x", "[MASK]", "y", "[", "cls", "]"});
  // ...and a word that becomes one only after cleaning is kept whole too (HF's never_split), unless it was
  // lowercased first: HF lowercases everything but exact special tokens before cleaning.
  CHECK(bert({.lower_case = false}).tokenize_ids(std::string("[SE\x01P]")) == ids{102});
  CHECK(tok.tokenize(std::string("[SE\x01P]")) == std::vector<std::string>{"[", "sep", "]"});
  CHECK(tok.basic_tokenize("a\xe2\x80\xa8" "b\xe3\x80\x80" "c") == std::vector<std::string>{"a", "b", "c"});
  CHECK(tok.basic_tokenize("\xe4\xb8\xad\xe6\x96\x87x") ==  // CJK ideographs stand alone
        std::vector<std::string>{"\xe4\xb8\xad", "\xe6\x96\x87", "x"});
  // Python lowercases U+0130 to "i" + U+0307, which accent stripping then removes.
  CHECK(tok.basic_tokenize("\xc4\xb0stanbul") == std::vector<std::string>{"istanbul"});
  CHECK(tok.tokenize("").empty());
  CHECK(tok.tokenize(" \t\r\n ").empty());
  CHECK(tok.encode("").input_ids == ids{101, 102});
  CHECK(tok.decode(ids{101, 7592, 2088, 102}) == "[CLS] hello world [SEP]");
  CHECK(tok.decode(ids{101, 7592, 1010, 2088, 999, 102}, true) == "hello, world!");
  CHECK(tok.decode(tok.tokenize_ids("unaffable")) == "unaffable");
  CHECK(tok.decode(ids{}) == "");
}

TEST_CASE("strip_accents and lower_case options") {
  // Lowercase without stripping: NFC keeps é whole, whichever form the input used.
  const auto& keep = bert({.strip_accents = false});
  CHECK(keep.basic_tokenize("H\xc3\xa9llo") == std::vector<std::string>{"h\xc3\xa9llo"});
  CHECK(keep.basic_tokenize("He\xcc\x81llo") == std::vector<std::string>{"h\xc3\xa9llo"});
  CHECK(keep.tokenize("H\xc3\xa9llo hello") == std::vector<std::string>{"[UNK]", "hello"});
  CHECK(keep.basic_tokenize("\xc4\xb0") == std::vector<std::string>{"i\xcc\x87"});
  // Cased: no lowering, and strip_accents defaults to lower_case.
  const auto& cased = bert({.lower_case = false});
  CHECK(cased.basic_tokenize("H\xc3\xa9llo World") == std::vector<std::string>{"H\xc3\xa9llo", "World"});
  CHECK(bert({.lower_case = false, .strip_accents = true}).basic_tokenize("H\xc3\xa9llo") ==
        std::vector<std::string>{"Hello"});
}

TEST_CASE("invalid UTF-8 is replaced, then cleaned away") {
  const auto& tok = bert();
  // A stray byte, a bad continuation, a truncated sequence, a surrogate, an overlong form, > U+10FFFF, a cut emoji.
  const std::string bad =
      "hello\xff" "world \xc3\x28 ok \xe2\x82 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 end\xf0\x9f\x98";
  const auto first = tok.tokenize(bad);
  CHECK(first == std::vector<std::string>{"hello", "##world", "(", "ok", "end"});
  CHECK(tok.tokenize(bad) == first);
  // Truncated at every byte, and random bytes: no crash, ids in range, same answer twice.
  for (std::size_t n = 0; n <= bad.size(); ++n) CHECK_NOTHROW(tok.tokenize_ids(bad.substr(0, n)));
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::string s(rng() % 40, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() % 4 ? rng() % 256 : 0x80 + rng() % 64);
    const auto v = tok.tokenize_ids(s);
    for (auto id : v) REQUIRE((id >= 0 && id < 30522));
    REQUIRE(tok.tokenize_ids(s) == v);
  }
}

TEST_CASE("WordPiece on a tiny vocabulary") {
  const auto tok = tiny();
  CHECK(tok.tokenize("unaffable") == std::vector<std::string>{"un", "##aff", "##able"});
  CHECK(tok.tokenize("runner running") == std::vector<std::string>{"runner", "[UNK]"});  // no ##ning: whole word
  CHECK(tok.tokenize("aaa") == std::vector<std::string>{"aa", "##a"});                  // longest match first
  CHECK(tok.tokenize(std::string(100, 'a')).size() == 99);  // aa + 98 x ##a
  CHECK(tok.tokenize(std::string(101, 'a')) == std::vector<std::string>{"[UNK]"});
  CHECK(tiny({.max_input_chars_per_word = 3}).tokenize("aaaa aaa") == std::vector<std::string>{"[UNK]", "aa", "##a"});
  CHECK(tok.tokenize("run!") == std::vector<std::string>{"run", "!"});  // punctuation splits before WordPiece
  CHECK(tiny({.split_on_punctuation = false}).tokenize("run!") == std::vector<std::string>{"run", "##!"});
  CHECK(tok.tokenize("[FOO] x") == std::vector<std::string>{"[UNK]", "[UNK]", "[UNK]", "[UNK]"});
  CHECK(tiny({.lower_case = false, .never_split = {"[FOO]"}}).tokenize("[FOO]") == std::vector<std::string>{"[FOO]"});
  CHECK(tok.decode(tok.tokenize_ids("unaffable run.")) == "unaffable run.");
  CHECK_THROWS_AS(wordpiece_tokenizer({"[CLS]", "[SEP]", "[PAD]"}), std::invalid_argument);
  CHECK(tok.mask_id() == 4);
  CHECK(wordpiece_tokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]"}).mask_id() == -1);  // no [MASK]: none
}

TEST_CASE("vocabulary files") {
  CHECK_THROWS_WITH_AS(load_vocab("/nonexistent/vocab.txt"), doctest::Contains("/nonexistent/vocab.txt"),
                       std::runtime_error);
  CHECK_THROWS_AS(load_vocab(std::filesystem::temp_directory_path()), std::runtime_error);
  CHECK_THROWS_WITH_AS(load_vocab(write_temp("empty.txt", "")), doctest::Contains("empty"), std::runtime_error);
  CHECK_THROWS_WITH_AS(load_vocab(write_temp("bad.txt", "a\nb\n\xff\n")), doctest::Contains("bad.txt:3:"),
                       std::runtime_error);
  CHECK(load_vocab(write_temp("crlf.txt", "[PAD]\r\nhello\r\n")) == std::vector<std::string>{"[PAD]", "hello"});
  CHECK(load_vocab(write_temp("nofinal.txt", "[PAD]\nhello")) == std::vector<std::string>{"[PAD]", "hello"});
  CHECK(load_vocab(write_temp("blank.txt", "a\n\nb\n")) == std::vector<std::string>{"a", "", "b"});  // ids kept
}

}  // namespace HYBRID_TEST_UNIT
