#include <hybrid/data/text_corpus.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::index_t;
using namespace hybrid::data;

namespace {

const fs::path text_dir = fs::path(HYBRID_DATA_DIR) / "text";

void require_data() {
  REQUIRE_MESSAGE(fs::exists(text_dir / "wordnet" / "data.noun"),
                  (text_dir / "wordnet" / "data.noun").string() << " is missing: run scripts/fetch_data.sh");
  REQUIRE_MESSAGE(fs::exists(text_dir / "fortunes" / "fortunes"),
                  (text_dir / "fortunes").string() << " is missing: run scripts/fetch_data.sh");
}

}  // namespace

TEST_CASE("parse_wordnet_line: lexicographer file, part of speech, gloss") {
  const auto s = parse_wordnet_line(
      "00003993 03 n 01 congener 0 001 @ 00003553 n 0000 | a whole (a thing or person) of the same kind or category "
      "as another; \"lard was also used, though its congener, butter, was more frequently employed\"  ");
  REQUIRE(s);
  CHECK(s->offset == "00003993");
  CHECK(s->lexname == 3);
  CHECK(wordnet_lexnames[static_cast<std::size_t>(s->lexname)] == "noun.Tops");
  CHECK(s->pos == 'n');
  CHECK(s->gloss ==
        "a whole (a thing or person) of the same kind or category as another; \"lard was also used, though its "
        "congener, butter, was more frequently employed\"");
  const auto v = parse_wordnet_line("00011093 43 v 01 snow 0 001 @ 00010000 v 0000 01 + 01 00 | fall as snow  \r");
  REQUIRE(v);
  CHECK(v->lexname == 43);
  CHECK(v->pos == 'v');
  CHECK(v->gloss == "fall as snow");
  CHECK_FALSE(parse_wordnet_line("  1 This software and database is being provided to you, the LICENSEE, by  "));
  CHECK_FALSE(parse_wordnet_line(""));
  CHECK_THROWS_AS(parse_wordnet_line("00011093 99 v 01 snow | x"), std::runtime_error);  // lex_filenum > 44
  CHECK_THROWS_AS(parse_wordnet_line("00011093 03 q 01 snow | x"), std::runtime_error);  // bad ss_type
  CHECK_THROWS_AS(parse_wordnet_line("00011093 03 n 01 snow 0 000"), std::runtime_error);  // no gloss
  CHECK_THROWS_AS(parse_wordnet_line("00011093"), std::runtime_error);
}

TEST_CASE("parse_fortunes: items between lines of '%', empty items dropped") {
  CHECK(parse_fortunes("a\nb\n%\nc\n%\n%\n  \n%\nd") == std::vector<std::string>{"a\nb", "c", "d"});
  CHECK(parse_fortunes("x\r\n%\r\ny\r\n") == std::vector<std::string>{"x", "y"});  // CRLF files
  CHECK(parse_fortunes("100% sure\n%\n") == std::vector<std::string>{"100% sure"});  // only a bare % separates
  CHECK(parse_fortunes("").empty());
}

TEST_CASE("lexnames: the 45 lexicographer files of lexnames(5)") {
  CHECK(wordnet_lexnames.size() == 45);
  CHECK(wordnet_lexnames[0] == "adj.all");
  CHECK(wordnet_lexnames[3] == "noun.Tops");
  CHECK(wordnet_lexnames[28] == "noun.time");
  CHECK(wordnet_lexnames[29] == "verb.body");
  CHECK(wordnet_lexnames[43] == "verb.weather");
  CHECK(wordnet_lexnames[44] == "adj.ppl");
  for (int i = wordnet_first_noun_class; i < wordnet_first_noun_class + wordnet_noun_classes; ++i)
    CHECK(wordnet_lexnames[static_cast<std::size_t>(i)].starts_with("noun."));
  CHECK(std::set<std::string_view>(wordnet_lexnames.begin(), wordnet_lexnames.end()).size() == 45);
}

TEST_CASE("WordNet 3.0: 117,659 glosses in the four files, labels = lexicographer files") {
  require_data();
  const text_corpus all = load_wordnet_glosses(text_dir / "wordnet");
  CHECK(all.size() == 117659);
  CHECK(all.classes() == 45);
  CHECK(all.texts.front() ==
        "that which is perceived or known or inferred to have its own distinct existence (living or nonliving)");
  CHECK(all.labels.front() == 3);
  for (const std::string& t : all.texts) REQUIRE_FALSE(t.empty());
  const auto n = all.class_counts();
  for (index_t c : n) CHECK(c > 0);  // every lexicographer file is used
  CHECK(n[3] == 51);    // noun.Tops
  CHECK(n[16] == 42);   // noun.motive, the smallest
  CHECK(n[6] == 11587); // noun.artifact, the largest noun class
  CHECK(n[43] == 81);   // verb.weather
  CHECK(n[0] == 14435); // adj.all (with satellites)

  struct file_count {
    wordnet_options o;
    index_t n;
    int first, last;  // label range
  };
  for (const auto& f : {file_count{{true, false, false, false}, 82115, 3, 28},
                        file_count{{false, true, false, false}, 13767, 29, 43},
                        file_count{{false, false, true, false}, 18156, 0, 44},
                        file_count{{false, false, false, true}, 3621, 2, 2}}) {
    const text_corpus c = load_wordnet_glosses(text_dir / "wordnet", f.o);
    CHECK(c.size() == f.n);
    CHECK(c.classes() == 45);
    for (std::int32_t y : c.labels) REQUIRE((y >= f.first && y <= f.last));
  }

  SUBCASE("the 26 noun classes, relabelled") {
    std::vector<std::int32_t> nouns(wordnet_noun_classes);
    for (int i = 0; i < wordnet_noun_classes; ++i) nouns[static_cast<std::size_t>(i)] = wordnet_first_noun_class + i;
    const text_corpus nc = all.select_classes(nouns);
    CHECK(nc.size() == 82115);
    CHECK(nc.classes() == 26);
    CHECK(nc.label_names.front() == "noun.Tops");
    CHECK(nc.label_names.back() == "noun.time");
    CHECK(nc.class_counts()[13] == 42);  // noun.motive
    CHECK_THROWS_AS(all.select_classes(std::vector<std::int32_t>{3, 3}), std::invalid_argument);
  }
}

TEST_CASE("fortunes: 15,217 items in 43 files (Debian fortunes + fortunes-min)") {
  require_data();
  const text_corpus f = load_fortunes(text_dir / "fortunes");
  CHECK(f.classes() == 43);
  CHECK(f.size() == 15217);
  CHECK(std::is_sorted(f.label_names.begin(), f.label_names.end()));
  const auto n = f.class_counts();
  auto count_of = [&](const std::string& name) {
    const auto it = std::find(f.label_names.begin(), f.label_names.end(), name);
    REQUIRE(it != f.label_names.end());
    return n[static_cast<std::size_t>(it - f.label_names.begin())];
  };
  CHECK(count_of("fortunes") == 431);  // fortunes-min
  CHECK(count_of("riddles") == 128);   // fortunes-min
  CHECK(count_of("people") == 1251);
  for (const std::string& t : f.texts) {
    REQUIRE(t.find_first_not_of(" \t\r\n") != std::string::npos);
    REQUIRE(t.back() != '\n');
  }
  CHECK_THROWS_AS(load_fortunes(text_dir / "no-such-dir"), std::runtime_error);
}

TEST_CASE("shuffled_indices: a permutation fixed by the seed on every platform") {
  const auto p = shuffled_indices(10, 42);
  std::vector<index_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 10; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
  CHECK(p == shuffled_indices(10, 42));
  CHECK(p != shuffled_indices(10, 43));
  // mt19937_64's outputs are fixed by the standard, so is this permutation (pinned).
  CHECK(p == std::vector<index_t>{1, 7, 9, 0, 3, 8, 4, 2, 5, 6});
  CHECK(shuffled_indices(0, 1).empty());
  CHECK(shuffled_indices(1, 1) == std::vector<index_t>{0});
}

TEST_CASE("stratified_split and sample_per_class: deterministic, disjoint, per-class sizes") {
  std::vector<std::int32_t> labels;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 10 + 30 * c; ++i) labels.push_back(c);  // 10, 40, 70, 100 items
  std::mt19937 rng(3);
  std::shuffle(labels.begin(), labels.end(), rng);
  const auto s = stratified_split(labels, 0.25, 20, 7);
  std::vector<index_t> test_per(4), both = s.train;
  for (index_t i : s.test) ++test_per[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
  CHECK(test_per == std::vector<index_t>{2, 10, 17, 20});  // min(floor(0.25 n), 20)
  both.insert(both.end(), s.test.begin(), s.test.end());
  std::sort(both.begin(), both.end());
  CHECK(both.size() == labels.size());
  CHECK(std::adjacent_find(both.begin(), both.end()) == both.end());
  CHECK(std::is_sorted(s.train.begin(), s.train.end()));
  const auto again = stratified_split(labels, 0.25, 20, 7), other = stratified_split(labels, 0.25, 20, 8);
  CHECK(again.test == s.test);
  CHECK(other.test != s.test);
  CHECK(stratified_split(labels, 0.5, 0, 1).test.size() == 5 + 20 + 35 + 50);  // no cap
  CHECK_THROWS_AS(stratified_split(labels, 1.5, 0, 1), std::invalid_argument);

  const auto few = sample_per_class(labels, s.train, 5, 11);
  std::vector<index_t> per(4);
  for (index_t i : few) {
    ++per[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])];
    CHECK(std::binary_search(s.train.begin(), s.train.end(), i));
  }
  CHECK(per == std::vector<index_t>{5, 5, 5, 5});
  CHECK(sample_per_class(labels, s.train, 5, 11) == few);
  CHECK(sample_per_class(labels, s.train, 5, 12) != few);
  CHECK(sample_per_class(labels, s.train, 1000, 1).size() == s.train.size());  // capped by what the pool has
}

}  // namespace HYBRID_TEST_UNIT
