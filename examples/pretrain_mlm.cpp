// Pre-trains a small BERT (hidden 128, 2 layers, the real bert-base-uncased vocabulary) with masked-LM on
// WordNet glosses + fortunes; writes a BertForMaskedLM checkpoint directory, metrics.csv and TensorBoard scalars.
// Usage: pretrain_mlm [--steps N] [--quick] [--out DIR] [--batch B] [--lr X] [--layers N] [--seed S] [--dropout P] [--save-every N]
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <hybrid/io/csv_log.hpp>
#include <hybrid/io/tensorboard.hpp>
#include <hybrid/train/mlm_pretrainer.hpp>

#include "wordnet_text.hpp"

namespace {

int usage() {
  std::cerr << "usage: pretrain_mlm [--steps N] [--quick] [--out DIR] [--batch B] [--lr X] [--layers N] [--seed S] [--dropout P] [--save-every N]\n"
               "  --steps N   updates (default 1500: about 4 minutes on 2 cores)\n"
               "  --quick     60 updates on a tenth of the corpus (a smoke test)\n"
               "  --out DIR   checkpoint directory (default runs/mlm): config.json, model.safetensors, vocab.txt,\n"
               "              trainer_state.safetensors, metrics.csv, tb/ (TensorBoard)\n"
               "  --save-every N  also save DIR/step-N every N updates\n"
               "  --dropout P     dropout while pre-training (default 0)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace hybrid;
  train::mlm_options o{.batch_size = 64, .steps = 1500, .lr = 1e-3, .log_every = 50};
  std::filesystem::path out = "runs/mlm";
  enc::bert_config cfg = wordnet_text::small_bert();
  // No dropout in pre-training: a short run underfits rather than overfits (as in "Cramming", Geiping &
  // Goldstein 2022). Fine-tuning turns it back on.
  cfg.dropout = cfg.attention_dropout = 0;
  bool quick = false;
  index_t save_every = 0;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* a = argv[i];
    const char* v = nullptr;
    if (!std::strcmp(a, "--quick")) quick = true;
    else if (!std::strcmp(a, "--steps") && (v = next())) o.steps = std::atoll(v);
    else if (!std::strcmp(a, "--out") && (v = next())) out = v;
    else if (!std::strcmp(a, "--batch") && (v = next())) o.batch_size = std::atoll(v);
    else if (!std::strcmp(a, "--lr") && (v = next())) o.lr = std::atof(v);
    else if (!std::strcmp(a, "--layers") && (v = next())) cfg.layers = std::atoll(v);
    else if (!std::strcmp(a, "--seed") && (v = next())) o.seed = std::strtoull(v, nullptr, 10);
    else if (!std::strcmp(a, "--save-every") && (v = next())) save_every = std::atoll(v);
    else if (!std::strcmp(a, "--dropout") && (v = next())) cfg.dropout = cfg.attention_dropout = std::atof(v);
    else return usage();
  }
  if (quick) {
    o.steps = 60;
    o.log_every = 10;
  }
  if (o.steps <= 0 || o.batch_size <= 0 || cfg.layers <= 0) return usage();
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const auto tok = io::wordpiece_tokenizer::from_file(wordnet_text::vocab_file());
    const auto wn = wordnet_text::load_wordnet();
    data::text_corpus corpus = wn.glosses.subset(wn.split.train);
    const data::text_corpus fortunes = data::load_fortunes(wordnet_text::data_dir() / "text" / "fortunes");
    std::vector<std::string> texts = std::move(corpus.texts);
    texts.insert(texts.end(), fortunes.texts.begin(), fortunes.texts.end());
    if (quick) texts.resize(texts.size() / 10);
    auto seqs = train::tokenize_for_mlm(tok, std::span<const std::string>(texts), cfg.max_positions);
    // 1% of the sequences (seeded) are held out to measure MLM loss / accuracy on unseen text.
    std::vector<std::int32_t> zeros(seqs.size(), 0);
    const auto split = data::stratified_split(zeros, 0.01, 0, 99);
    std::vector<std::vector<std::int32_t>> train_seqs, eval_seqs;
    for (index_t i : split.train) train_seqs.push_back(std::move(seqs[static_cast<std::size_t>(i)]));
    for (index_t i : split.test) eval_seqs.push_back(std::move(seqs[static_cast<std::size_t>(i)]));
    index_t tokens = 0;
    for (const auto& s : train_seqs) tokens += static_cast<index_t>(s.size());
    std::printf("corpus: %zu WordNet glosses (held-out test glosses excluded) + %zu fortunes -> %zu sequences, "
                "%lld tokens (%.1f s)\n",
                wn.split.train.size(), fortunes.texts.size(), train_seqs.size(), static_cast<long long>(tokens),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    head::bert_for_masked_lm<float> model(cfg, static_cast<unsigned>(o.seed));
    std::printf("model: BERT hidden %lld, %lld layers, %lld heads, ffn %lld, vocab %lld, max length %lld: "
                "%lld parameters (decoder tied to the word embeddings)\n",
                static_cast<long long>(cfg.hidden), static_cast<long long>(cfg.layers),
                static_cast<long long>(cfg.heads), static_cast<long long>(cfg.ffn), static_cast<long long>(cfg.vocab),
                static_cast<long long>(cfg.max_positions), static_cast<long long>(count_parameters(model)));
    std::printf("training: %lld updates of %lld sequences, AdamW lr %g (warmup 6%%, linear decay), 15%% masked "
                "(80/10/10), clip 1.0\n",
                static_cast<long long>(o.steps), static_cast<long long>(o.batch_size), o.lr);

    std::filesystem::create_directories(out);
    io::csv_log csv(out / "metrics.csv", {"step", "loss", "masked_accuracy", "lr", "grad_norm", "tokens_per_s",
                                          "elapsed_s", "eval_loss", "eval_masked_accuracy"});
    io::summary_writer tb(out / "tb");
    train::mlm_pretrainer<float> trainer(model, std::move(train_seqs), train::mlm_vocab::of(tok), o);
    std::vector<std::string> vocab;
    for (std::size_t i = 0; i < tok.vocab_size(); ++i) vocab.push_back(tok.id_to_token(static_cast<std::int32_t>(i)));
    auto evaluate = [&](index_t step) {
      const auto e = trainer.evaluate(eval_seqs);
      tb.add_scalar("eval/loss", e.loss, step);
      tb.add_scalar("eval/masked_accuracy", e.accuracy, step);
      tb.flush();
      return e;
    };
    const auto e0 = evaluate(0);
    std::printf("held-out (%zu sequences) before training: loss %.3f, masked accuracy %.1f%%\n", eval_seqs.size(),
                e0.loss, 100 * e0.accuracy);
    csv.log(0, {{"eval_loss", e0.loss}, {"eval_masked_accuracy", e0.accuracy}});
    trainer.on_report([&](const train::mlm_metrics& m) {
      std::printf("\rstep %5lld/%lld  loss %6.3f  masked acc %5.1f%%  lr %.2e  %6.0f tok/s  elapsed %s  ETA %s\n",
                  static_cast<long long>(m.step), static_cast<long long>(o.steps), m.loss, 100 * m.accuracy, m.lr,
                  m.tokens_per_second, wordnet_text::clock_text(m.elapsed_s).c_str(),
                  wordnet_text::clock_text(m.eta_s).c_str());
      std::fflush(stdout);
      csv.log(m.step, {{"loss", m.loss}, {"masked_accuracy", m.accuracy}, {"lr", m.lr}, {"grad_norm", m.grad_norm},
                       {"tokens_per_s", m.tokens_per_second}, {"elapsed_s", m.elapsed_s}});
      tb.add_scalar("train/loss", m.loss, m.step);
      tb.add_scalar("train/masked_accuracy", m.accuracy, m.step);
      tb.add_scalar("train/lr", m.lr, m.step);
      tb.add_scalar("train/tokens_per_s", m.tokens_per_second, m.step);
      tb.flush();
      if (save_every > 0 && m.step % save_every == 0 && m.step < o.steps) {
        const auto e = evaluate(m.step);
        csv.log(m.step, {{"eval_loss", e.loss}, {"eval_masked_accuracy", e.accuracy}});
        const auto dir = out / ("step-" + std::to_string(m.step));
        trainer.save(dir, vocab);
        std::printf("held-out: loss %.3f, masked accuracy %.1f%%; saved %s\n", e.loss, 100 * e.accuracy,
                    dir.string().c_str());
      }
    });
    // The live line, overwritten in place after every update; the report above keeps one line per log_every.
    trainer.on_step([&](const train::mlm_metrics& m) {
      std::printf("\rstep %5lld/%lld  loss %6.3f  masked acc %5.1f%%  %6.0f tok/s  ETA %s   ",
                  static_cast<long long>(m.step), static_cast<long long>(o.steps), m.loss, 100 * m.accuracy,
                  m.tokens_per_second, wordnet_text::clock_text(m.eta_s).c_str());
      std::fflush(stdout);
    });
    trainer.run();
    const auto e1 = evaluate(o.steps);
    std::printf("held-out after %lld updates: loss %.3f, masked accuracy %.1f%% (before: %.3f, %.1f%%)\n",
                static_cast<long long>(o.steps), e1.loss, 100 * e1.accuracy, e0.loss, 100 * e0.accuracy);
    csv.log(o.steps, {{"eval_loss", e1.loss}, {"eval_masked_accuracy", e1.accuracy}});
    trainer.save(out, vocab);
    std::printf("saved %s/{config.json, model.safetensors, vocab.txt, trainer_state.safetensors}, metrics.csv, tb/ "
                "(total %.0f s)\n",
                out.string().c_str(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } catch (const std::exception& e) {
    std::cerr << "pretrain_mlm: " << e.what() << "\n(run scripts/setup.sh and scripts/fetch_data.sh first)\n";
    return 1;
  }
}
