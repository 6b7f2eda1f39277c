// Few-shot WordNet gloss -> lexicographer class (the 26 noun classes, or all 45 with --all): a BERT encoder
// (mean-pooled) + linear head, trained on K labels per class, in three set-ups on the same labels and seeds:
//   pretrained    the encoder of pretrain_mlm's checkpoint, every parameter fine-tuned
//   frozen        the same, with the embeddings and the first --freeze layers frozen
//   scratch       the same architecture from a random (BERT) initialisation
// Reports accuracy and macro-F1 on a fixed held-out test set (glosses pre-training never saw).
// Usage: finetune_wordnet [--model DIR] [--per-class K] [--epochs N] [--seeds S] [--all] [--freeze N] [--lr X]
//                         [--scratch-lr X] [--only pretrained|frozen|scratch|probe] [--dropout P] [--quick]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <numeric>
#include <string>

#include <hybrid/io/hf_bert.hpp>
#include <hybrid/io/wordpiece.hpp>
#include <hybrid/optim/adam.hpp>
#include <hybrid/optim/clip.hpp>
#include <hybrid/optim/schedule.hpp>
#include <hybrid/train/mlm_pretrainer.hpp>

#include "wordnet_text.hpp"

namespace {

using namespace hybrid;

// BERT + masked mean pooling over the real tokens + dropout + linear classifier (HF-style names
// "bert.*", "classifier.*"). Mean pooling rather than [CLS]: MLM-only pre-training never trains the
// last layer's [CLS] output (it is never predicted), while every other position's output is.
struct gloss_classifier {
  using value_type = float;
  enc::bert_model<float> bert;
  layers::linear<float> classifier;

  gloss_classifier(enc::bert_model<float> encoder, index_t classes, unsigned seed)
      : bert(std::move(encoder)), classifier(bert.width(), classes) {
    std::mt19937 rng(seed);
    classifier.init_bert(rng);
    assign_names(*this);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    bert.visit(join_name(prefix, "bert"), f);
    classifier.visit(join_name(prefix, "classifier"), f);
  }
  var<float> operator()(const enc::text_input& in, dropout_rng& rng, bool training) const {
    const index_t B = in.ids.dim(0), L = in.ids.dim(1), H = bert.width();
    tensor<float> w({B, 1, L});
    for (index_t b = 0; b < B; ++b) {
      float n = 0;
      for (index_t t = 0; t < L; ++t) n += in.attention_mask[b * L + t];
      for (index_t t = 0; t < L; ++t) w[b * L + t] = in.attention_mask[b * L + t] / n;
    }
    var<float> pooled = reshape(matmul(constant(w), bert(in, rng, training).sequence), {B, H});
    return classifier(dropout(pooled, 0.1, rng, training));
  }
};

struct labelled {
  std::vector<std::vector<std::int32_t>> ids;
  std::vector<std::int32_t> labels;
};
labelled encode(const io::wordpiece_tokenizer& tok, const data::text_corpus& c, index_t max_length) {
  labelled out{{}, c.labels};
  for (const std::string& t : c.texts) {
    std::vector<std::int32_t> ids = tok.tokenize_ids(t);
    ids.resize(std::min<std::size_t>(ids.size(), static_cast<std::size_t>(max_length - 2)));
    ids.insert(ids.begin(), tok.cls_id());
    ids.push_back(tok.sep_id());
    out.ids.push_back(std::move(ids));
  }
  return out;
}

struct scores {
  double accuracy = 0, macro_f1 = 0;
};
scores evaluate(const gloss_classifier& m, const labelled& test, index_t classes, std::int32_t pad) {
  no_grad ng;
  std::vector<index_t> tp(static_cast<std::size_t>(classes)), fp(tp), fn(tp);
  index_t correct = 0;
  const auto n = static_cast<index_t>(test.ids.size());
  // Batches of similar lengths: less padding (the order does not change the scores).
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return test.ids[static_cast<std::size_t>(a)].size() < test.ids[static_cast<std::size_t>(b)].size();
  });
  for (index_t b = 0; b < n; b += 256) {
    tape_scope scope;
    const std::vector<index_t> rows(order.begin() + b, order.begin() + std::min<index_t>(n, b + 256));
    dropout_rng rng{0, 0};
    var<float> logits = m(train::pad_batch(test.ids, rows, pad), rng, false);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const float* row = logits.data() + static_cast<index_t>(i) * classes;
      const auto pred = static_cast<std::size_t>(std::max_element(row, row + classes) - row);
      const auto truth = static_cast<std::size_t>(test.labels[static_cast<std::size_t>(rows[i])]);
      if (pred == truth) ++correct, ++tp[pred];
      else ++fp[pred], ++fn[truth];
    }
  }
  double f1 = 0;
  index_t counted = 0;
  for (std::size_t c = 0; c < tp.size(); ++c) {
    if (tp[c] + fn[c] == 0) continue;  // no test items of this class
    ++counted;
    f1 += tp[c] ? 2.0 * double(tp[c]) / double(2 * tp[c] + fp[c] + fn[c]) : 0.0;
  }
  return {double(correct) / double(std::max<index_t>(n, 1)), counted ? f1 / double(counted) : 0};
}

struct recipe {
  index_t epochs = 30, batch = 32;
  double lr = 5e-4, weight_decay = 0.01;
};

// Fine-tunes the trainable parameters of m on `train` (AdamW, 10% warmup + linear decay, clip 1.0).
void fit(gloss_classifier& m, const labelled& train_set, const recipe& r, unsigned seed, std::int32_t pad) {
  std::vector<parameter<float>*> trainable;
  for (parameter<float>* p : parameters_of(m))
    if (p->trainable()) trainable.push_back(p);
  optim::adamw<float> opt(optim::weight_decay_groups(trainable), {.lr = r.lr, .weight_decay = r.weight_decay});
  const auto n = static_cast<index_t>(train_set.ids.size());
  const index_t per_epoch = (n + r.batch - 1) / r.batch, total = per_epoch * r.epochs;
  const auto sched = optim::linear_schedule_with_warmup(total / 10, total);
  dropout_rng drop{seed, 0};
  index_t step = 0;
  for (index_t e = 0; e < r.epochs; ++e) {
    // A seeded shuffle; within windows of 8 batches, sorted by length (less padding), batches in random order.
    auto order = data::shuffled_indices(n, seed * 1000003ull + static_cast<std::uint64_t>(e));
    for (index_t w = 0; w < n; w += 8 * r.batch)
      std::stable_sort(order.begin() + w, order.begin() + std::min(n, w + 8 * r.batch), [&](index_t a, index_t b) {
        return train_set.ids[static_cast<std::size_t>(a)].size() < train_set.ids[static_cast<std::size_t>(b)].size();
      });
    const auto batch_order = data::shuffled_indices(per_epoch, seed * 7919ull + static_cast<std::uint64_t>(e));
    for (index_t k : batch_order) {
      const index_t b = k * r.batch;
      const std::span<const index_t> rows(order.data() + b, static_cast<std::size_t>(std::min(r.batch, n - b)));
      std::vector<std::int32_t> y;
      for (index_t i : rows) y.push_back(train_set.labels[static_cast<std::size_t>(i)]);
      opt.zero_grad();
      var<float> loss = cross_entropy(m(train::pad_batch(train_set.ids, rows, pad), drop, true),
                                      std::span<const std::int32_t>(y));
      loss.backward();
      optim::clip_grad_norm(opt, 1.0);
      opt.scale_lr(sched(step++));
      opt.step();
    }
  }
}

int usage() {
  std::cerr << "usage: finetune_wordnet [--model DIR] [--per-class K] [--epochs N] [--seeds S] [--all] [--freeze N]\n"
               "                        [--lr X] [--scratch-lr X] [--only pretrained|frozen|scratch|probe] [--dropout P] [--quick]\n"
               "  --model DIR   checkpoint of pretrain_mlm (default runs/mlm)\n"
               "  --per-class K labelled glosses per class (default 32)\n"
               "  --all         all 45 lexicographer classes instead of the 26 noun classes\n"
               "  --freeze N    the 'frozen' run freezes the embeddings and the first N layers (default 1)\n"
               "  --seeds S     repeats with seeds 1..S (few-shot draw, head init, dropout, order); default 3\n"
               "  --dropout P   encoder dropout while fine-tuning (default 0.1)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path model_dir = "runs/mlm";
  index_t per_class = 32, seeds = 3, freeze = 1;
  recipe r;
  double scratch_lr = -1, dropout = 0.1;
  bool all = false;
  std::vector<std::string> only;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* a = argv[i];
    const char* v = nullptr;
    if (!std::strcmp(a, "--all")) all = true;
    else if (!std::strcmp(a, "--quick")) seeds = 1, r.epochs = 3;
    else if (!std::strcmp(a, "--model") && (v = next())) model_dir = v;
    else if (!std::strcmp(a, "--per-class") && (v = next())) per_class = std::atoll(v);
    else if (!std::strcmp(a, "--epochs") && (v = next())) r.epochs = std::atoll(v);
    else if (!std::strcmp(a, "--seeds") && (v = next())) seeds = std::atoll(v);
    else if (!std::strcmp(a, "--freeze") && (v = next())) freeze = std::atoll(v);
    else if (!std::strcmp(a, "--lr") && (v = next())) r.lr = std::atof(v);
    else if (!std::strcmp(a, "--scratch-lr") && (v = next())) scratch_lr = std::atof(v);
    else if (!std::strcmp(a, "--only") && (v = next())) only.emplace_back(v);
    else if (!std::strcmp(a, "--dropout") && (v = next())) dropout = std::atof(v);
    else return usage();
  }
  if (per_class <= 0 || seeds <= 0 || r.epochs <= 0 || freeze < 0) return usage();
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const auto tok = io::wordpiece_tokenizer::from_file(wordnet_text::vocab_file());
    enc::bert_config cfg = io::read_bert_config(model_dir);
    cfg.dropout = cfg.attention_dropout = dropout;  // pre-training ran without; every set-up gets the same
    const auto wn = wordnet_text::load_wordnet();
    std::vector<std::int32_t> classes(all ? 45 : data::wordnet_noun_classes);
    std::iota(classes.begin(), classes.end(), all ? 0 : data::wordnet_first_noun_class);
    const data::text_corpus pool = wn.glosses.subset(wn.split.train).select_classes(classes);
    const data::text_corpus test_corpus = wn.glosses.subset(wn.split.test).select_classes(classes);
    const labelled test = encode(tok, test_corpus, cfg.max_positions);
    const auto C = static_cast<index_t>(classes.size());
    std::printf("WordNet %s: %lld classes, %lld labels per class for training, %lld held-out test glosses "
                "(min(100, 25%%) per class, seed %llu)\n",
                all ? "all lexicographer files" : "noun lexicographer files", static_cast<long long>(C),
                static_cast<long long>(per_class), static_cast<long long>(test_corpus.size()),
                static_cast<unsigned long long>(wordnet_text::split_seed));
    std::printf("encoder: %s (hidden %lld, %lld layers); recipe: %lld epochs, batch %lld, AdamW lr %g "
                "(scratch %g), wd %g, mean pooling\n",
                model_dir.string().c_str(), static_cast<long long>(cfg.hidden), static_cast<long long>(cfg.layers),
                static_cast<long long>(r.epochs), static_cast<long long>(r.batch), r.lr,
                scratch_lr > 0 ? scratch_lr : r.lr, r.weight_decay);

    struct variant {
      const char* name;
      const char* what;
    };
    const std::vector<variant> variants = {
        {"pretrained", "pre-trained encoder, full fine-tuning"},
        {"frozen", "pre-trained, embeddings + first layers frozen"},
        {"probe", "pre-trained, whole encoder frozen (linear probe)"},
        {"scratch", "same architecture, random init"}};
    std::map<std::string, std::vector<scores>> results;
    for (index_t seed = 1; seed <= seeds; ++seed) {
      const std::vector<index_t> few =
          data::sample_per_class(pool.labels, [&] {
            std::vector<index_t> all_rows(static_cast<std::size_t>(pool.size()));
            std::iota(all_rows.begin(), all_rows.end(), 0);
            return all_rows;
          }(), per_class, static_cast<std::uint64_t>(seed));
      const labelled train_set = encode(tok, pool.subset(few), cfg.max_positions);
      for (const variant& v : variants) {
        const std::string name = v.name;
        if (only.empty() ? name == "probe" : std::find(only.begin(), only.end(), name) == only.end()) continue;
        const auto t1 = std::chrono::steady_clock::now();
        enc::bert_model<float> encoder(cfg);
        if (name == "scratch") {
          std::mt19937 rng(static_cast<unsigned>(seed));
          encoder.init_bert(rng);
        } else {
          io::load_hf_bert(encoder, model_dir);
        }
        gloss_classifier m(std::move(encoder), C, static_cast<unsigned>(seed));
        if (name == "frozen" || name == "probe") {
          m.bert.visit("", [&](const std::string& pname, parameter<float>& p) {
            bool frozen = name == "probe" || pname.starts_with("embeddings.");
            for (index_t l = 0; l < freeze; ++l) frozen = frozen || pname.starts_with("encoder.layer." + std::to_string(l) + ".");
            if (frozen) p.set_trainable(false);
          });
        }
        recipe rv = r;
        if (name == "scratch" && scratch_lr > 0) rv.lr = scratch_lr;
        if (name == "probe") rv.lr = 1e-2;
        fit(m, train_set, rv, static_cast<unsigned>(seed), tok.pad_id());
        const scores s = evaluate(m, test, C, tok.pad_id());
        results[name].push_back(s);
        std::printf("seed %lld  %-10s  accuracy %5.1f%%  macro-F1 %5.1f%%  (%lld trainable parameters, %.0f s)\n",
                    static_cast<long long>(seed), v.name, 100 * s.accuracy, 100 * s.macro_f1,
                    static_cast<long long>(count_parameters(m, true)),
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
        std::fflush(stdout);
      }
    }
    std::printf("\n%-10s  %-48s  %-16s  %-16s\n", "set-up", "", "accuracy", "macro-F1");
    for (const variant& v : variants) {
      const auto it = results.find(v.name);
      if (it == results.end()) continue;
      auto stats = [&](double scores::*f) {
        double mean = 0, var = 0;
        for (const scores& s : it->second) mean += s.*f;
        mean /= double(it->second.size());
        for (const scores& s : it->second) var += (s.*f - mean) * (s.*f - mean);
        const double sd = it->second.size() > 1 ? std::sqrt(var / double(it->second.size() - 1)) : 0;
        char buf[64];
        std::snprintf(buf, sizeof buf, "%5.1f%% +- %4.1f", 100 * mean, 100 * sd);
        return std::string(buf);
      };
      std::printf("%-10s  %-48s  %-16s  %-16s\n", v.name, v.what, stats(&scores::accuracy).c_str(),
                  stats(&scores::macro_f1).c_str());
    }
    std::printf("(mean +- sd over %lld seeds; %.0f s in all)\n", static_cast<long long>(seeds),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } catch (const std::exception& e) {
    std::cerr << "finetune_wordnet: " << e.what() << "\n(run scripts/fetch_data.sh, then pretrain_mlm)\n";
    return 1;
  }
}
