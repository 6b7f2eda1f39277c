#include <hybrid/train/mlm_pretrainer.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string>
#include <unistd.h>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() : path(fs::temp_directory_path() / ("hybrid_mlm_test_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
};

// ids: 0 [PAD], 1 [UNK], 2 [CLS], 3 [SEP], 4 [MASK], 5..(5 + words) "words".
constexpr index_t words = 24;
constexpr train::mlm_vocab vocab{.cls = 2, .sep = 3, .pad = 0, .mask = 4, .size = 5 + words};

enc::bert_config tiny_bert() {
  return {.vocab = vocab.size, .hidden = 64, .layers = 1, .heads = 2, .ffn = 128, .max_positions = 16,
          .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.0, .attention_dropout = 0.0, .pooler = false};
}

// Each sequence repeats one random word: a masked token is any of its neighbours, so the loss can fall far
// below the unigram entropy (log 24) only by attending to the context, which a tiny BERT learns in a few
// dozen updates.
std::vector<std::vector<std::int32_t>> repeat_corpus(index_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<std::int32_t>> out;
  for (index_t i = 0; i < n; ++i) {
    const index_t len = 4 + static_cast<index_t>(rng() % 9);
    const auto word = static_cast<std::int32_t>(5 + rng() % words);
    std::vector<std::int32_t> s{vocab.cls};
    s.insert(s.end(), static_cast<std::size_t>(len), word);
    s.push_back(vocab.sep);
    out.push_back(std::move(s));
  }
  return out;
}

train::mlm_options tiny_options(index_t steps) {
  return {.batch_size = 16, .steps = steps, .warmup = 5, .lr = 1e-2, .weight_decay = 0.01, .log_every = 10, .seed = 3};
}

std::vector<float> all_values(head::bert_for_masked_lm<float>& m) {
  std::vector<float> v;
  m.visit("", [&](const std::string&, parameter<float>& p) { v.insert(v.end(), p.value().begin(), p.value().end()); });
  return v;
}

}  // namespace

TEST_CASE("tokenize_for_mlm: [CLS] ... [SEP] windows; pad_batch: dynamic padding to the longest") {
  std::vector<std::string> v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e"};
  const io::wordpiece_tokenizer tok(v);
  const auto mv = train::mlm_vocab::of(tok);
  CHECK(mv.cls == 2);
  CHECK(mv.sep == 3);
  CHECK(mv.pad == 0);
  CHECK(mv.mask == 4);
  CHECK(mv.size == 10);
  const std::vector<std::string> texts = {"a b c d e a b c d e", "", "c"};
  const auto seqs = train::tokenize_for_mlm(tok, std::span<const std::string>(texts), 6);
  using S = std::vector<std::int32_t>;
  REQUIRE(seqs.size() == 4);  // 10 tokens -> windows of 4, 4, 2; the empty text is dropped
  CHECK(seqs[0] == S{2, 5, 6, 7, 8, 3});
  CHECK(seqs[1] == S{2, 9, 5, 6, 7, 3});
  CHECK(seqs[2] == S{2, 8, 9, 3});
  CHECK(seqs[3] == S{2, 7, 3});
  CHECK_THROWS_AS(train::tokenize_for_mlm(tok, std::span<const std::string>(texts), 2), std::invalid_argument);

  const std::vector<index_t> rows = {3, 0};
  const auto in = train::pad_batch(seqs, rows, 0);
  REQUIRE(in.ids.shape() == shape{2, 6});
  CHECK(std::vector<std::int32_t>(in.ids.begin(), in.ids.end()) == S{2, 7, 3, 0, 0, 0, 2, 5, 6, 7, 8, 3});
  CHECK(std::vector<float>(in.attention_mask.begin(), in.attention_mask.end()) ==
        std::vector<float>{1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  CHECK(in.token_types.empty());

  const io::wordpiece_tokenizer no_mask(std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"});
  CHECK_THROWS_AS(train::mlm_vocab::of(no_mask), std::invalid_argument);
}

TEST_CASE("mlm_pretrainer: a tiny BERT's loss falls within 100 updates; reports; evaluation") {
  head::bert_for_masked_lm<float> model(tiny_bert(), 1);
  const auto corpus = repeat_corpus(400, 1), held_out = repeat_corpus(100, 2);
  train::mlm_pretrainer<float> trainer(model, corpus, vocab, tiny_options(100));
  std::vector<train::mlm_metrics> reports;
  index_t steps_seen = 0;
  trainer.on_report([&](const train::mlm_metrics& m) { reports.push_back(m); });
  trainer.on_step([&](const train::mlm_metrics&) { ++steps_seen; });
  const auto before = trainer.evaluate(held_out);
  trainer.run();
  const auto after = trainer.evaluate(held_out);
  REQUIRE(reports.size() == 10);
  CHECK(steps_seen == 100);
  CHECK(reports.back().step == 100);
  CHECK(trainer.step_count() == 100);
  CHECK(trainer.skipped_updates() == 0);
  for (const auto& r : reports) {
    CHECK(std::isfinite(r.loss));
    CHECK(r.tokens > 0);
    CHECK(r.grad_norm > 0);
  }
  CHECK(reports.back().lr < reports.front().lr);  // linear decay to 0 at step 100
  CHECK(reports.back().eta_s == 0);
  MESSAGE("loss " << reports.front().loss << " -> " << reports.back().loss << "; held-out " << before.loss << " ("
                  << before.accuracy << ") -> " << after.loss << " (" << after.accuracy << ")");
  CHECK(before.loss > 3.0);  // about log(29) at initialisation
  CHECK(reports.back().loss < 0.5 * reports.front().loss);
  CHECK(after.loss < 0.5 * before.loss);
  CHECK(after.accuracy > 0.5);
  CHECK(after.masked > 0);
  // evaluate() is deterministic: fixed masks, no dropout.
  CHECK(trainer.evaluate(held_out).loss == after.loss);
}

TEST_CASE("mlm_pretrainer: checkpoint save -> load gives identical outputs; resume replays the same updates") {
  temp_dir tmp;
  const auto corpus = repeat_corpus(200, 3);
  head::bert_for_masked_lm<float> model(tiny_bert(), 2);
  train::mlm_pretrainer<float> trainer(model, corpus, vocab, tiny_options(40));
  for (int i = 0; i < 20; ++i) trainer.step();
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (index_t w = 0; w < words; ++w) {
    std::string t(1, 'w');  // not "w" + ...: GCC 12's false -Wstringop-overflow (PR 105329)
    tokens.push_back(t.append(std::to_string(w)));
  }
  trainer.save(tmp.path, tokens);
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "trainer_state.safetensors"})
    CHECK_MESSAGE(fs::exists(tmp.path / f), f);
  CHECK(io::load_vocab(tmp.path / "vocab.txt") == tokens);
  CHECK(io::read_bert_config(tmp.path).hidden == 64);

  SUBCASE("identical outputs after loading") {
    auto loaded = train::load_bert_for_masked_lm<float>(tmp.path);
    const auto in = train::pad_batch(corpus, std::vector<index_t>{0, 1, 2}, vocab.pad);
    dropout_rng drop{0, 0};
    no_grad ng;
    const auto a = model.all_logits(in, drop, false).value(), b = loaded.all_logits(in, drop, false).value();
    REQUIRE(a.shape() == b.shape());
    CHECK(std::equal(a.begin(), a.end(), b.begin()));
    // The file holds Hugging Face's names and no duplicate of the tied decoder.
    const auto r = io::safetensors_reader::open(tmp.path / "model.safetensors");
    CHECK(r.find("bert.embeddings.word_embeddings.weight"));
    CHECK(r.find("cls.predictions.transform.LayerNorm.weight"));
    CHECK(r.find("cls.predictions.bias"));
    CHECK_FALSE(r.find("cls.predictions.decoder.weight"));
    CHECK(r.metadata().at("format") == "pt");
    // The encoder alone loads as a BertModel (the cls.* tensors are reported, not an error).
    io::hf_bert_report rep;
    auto encoder = io::load_hf_bert_model<float>(tmp.path, &rep);
    CHECK(rep.prefix == "bert");
    CHECK_FALSE(encoder.config().pooler);
    CHECK(std::find(rep.unexpected.begin(), rep.unexpected.end(), "cls.predictions.bias") != rep.unexpected.end());
  }
  SUBCASE("a legacy file with a tied decoder copy and gamma/beta names loads too") {
    io::f32_tensors t;
    model.visit("", [&](const std::string& name, parameter<float>& p) {
      std::string n = name;
      if (n == "cls.predictions.transform.LayerNorm.weight") n = "cls.predictions.transform.LayerNorm.gamma";
      t.add(n, p.shape(), std::span<const float>(p.value().span()));
    });
    t.add("cls.predictions.decoder.weight", model.word_embeddings().shape(),
          std::span<const float>(model.word_embeddings().value().span()));
    io::save_safetensors(tmp.path / "legacy.safetensors", t.tensors(), {});
    head::bert_for_masked_lm<float> other(tiny_bert(), 9);
    train::load_bert_for_masked_lm(other, io::safetensors_reader::open(tmp.path / "legacy.safetensors"));
    CHECK(all_values(other) == all_values(model));
  }
  SUBCASE("a file without the head is an error naming the missing tensors") {
    io::save_hf_bert(model.bert(), tmp.path / "encoder_only");
    head::bert_for_masked_lm<float> other(tiny_bert(), 9);
    CHECK_THROWS_WITH_AS(
        train::load_bert_for_masked_lm(other, io::safetensors_reader::open(tmp.path / "encoder_only" / "model.safetensors")),
        doctest::Contains("predictions.bias"), io::checkpoint_error);
  }
  SUBCASE("resume: 20 + 20 updates equal 40 in one go") {
    for (int i = 0; i < 20; ++i) trainer.step();
    head::bert_for_masked_lm<float> resumed_model(tiny_bert(), 77);
    train::mlm_pretrainer<float> resumed(resumed_model, corpus, vocab, tiny_options(40));
    resumed.resume(tmp.path);
    CHECK(resumed.step_count() == 20);
    resumed.run();
    CHECK(resumed.step_count() == 40);
    CHECK(all_values(resumed_model) == all_values(model));
  }
}

TEST_CASE("mlm_pretrainer: non-finite updates are skipped, and a run of them stops training") {
  head::bert_for_masked_lm<float> model(tiny_bert(), 1);
  train::mlm_options o = tiny_options(20);
  o.max_consecutive_skips = 3;
  train::mlm_pretrainer<float> trainer(model, repeat_corpus(64, 1), vocab, o);
  trainer.step();
  // A NaN in the last parameter (the MLM head) makes every loss and gradient NaN from here on.
  parameter<float>* last = nullptr;
  model.visit("", [&](const std::string&, parameter<float>& p) { last = &p; });
  last->value().fill(std::numeric_limits<float>::quiet_NaN());
  const std::vector<float> before = all_values(model);
  const index_t opt_steps = trainer.optimizer().step_count();
  trainer.step();
  trainer.step();
  CHECK(trainer.skipped_updates() == 2);
  CHECK(trainer.optimizer().step_count() == opt_steps);
  const std::vector<float> after = all_values(model);
  CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);  // NaNs compare by bits
  CHECK_THROWS_WITH_AS(trainer.step(), doctest::Contains("3 consecutive steps with a non-finite loss or gradient"),
                       train::non_finite_error);
}

TEST_CASE("mlm_pretrainer: argument checks") {
  head::bert_for_masked_lm<float> model(tiny_bert(), 1);
  CHECK_THROWS_AS(train::mlm_pretrainer<float>(model, {}, vocab, tiny_options(10)), std::invalid_argument);
  auto wrong = vocab;
  wrong.size = 100;
  CHECK_THROWS_AS(train::mlm_pretrainer<float>(model, repeat_corpus(10, 1), wrong, tiny_options(10)),
                  std::invalid_argument);
  std::vector<std::vector<std::int32_t>> too_long = {std::vector<std::int32_t>(17, 5)};
  CHECK_THROWS_AS(train::mlm_pretrainer<float>(model, too_long, vocab, tiny_options(10)), shape_error);
}

}  // namespace HYBRID_TEST_UNIT
