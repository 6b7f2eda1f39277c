// End to end on real paired data: emoji names (text, BERT encoder) + emoji pictures (image, CNN),
// late concat fusion and an 8-way category head, trained with AdamW; then evaluated with both
// modalities and with one missing. Data: Debian ruby-gemojione (scripts/data/emoji.sh).
// Usage: emoji_text_image [--epochs N] [--quick]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <numeric>
#include <random>

#include <hybrid/data/emoji.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/enc/conv_image.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/io/wordpiece.hpp>
#include <hybrid/model.hpp>
#include <hybrid/optim/adam.hpp>

using namespace hybrid;

constexpr enc::bert_config text_cfg{.vocab = 30522, .hidden = 64, .layers = 2, .heads = 2, .ffn = 128,
                                    .max_positions = 32, .dropout = 0.1, .attention_dropout = 0.1};
constexpr enc::conv_image_config image_cfg{.size = 32, .channels = 3, .width = 64, .base = 16, .blocks = 2};
using net = model<encoders<modality<"text", enc::bert<text_cfg>>, modality<"image", enc::conv_image<image_cfg>>>,
                  fuse::concat, heads<head::classify<"category", 8>>>;

namespace {
batch make_batch(const data::emoji_dataset& d, const io::wordpiece_tokenizer& tok, std::span<const index_t> ids,
                 bool with_text, bool with_image) {
  batch b;
  b.size = static_cast<index_t>(ids.size());
  if (with_text) {
    std::vector<std::string> names;
    for (index_t i : ids) names.push_back(d.items[static_cast<std::size_t>(i)].name);
    const auto enc = tok.encode_batch(names, {.max_length = 32, .truncation = io::truncation_strategy::longest_first,
                                              .padding = io::padding_strategy::longest});
    const index_t L = static_cast<index_t>(enc.front().size());
    enc::text_input t{tensor<std::int32_t>({b.size, L}), {}, tensor<float>({b.size, L})};
    for (index_t r = 0; r < b.size; ++r)
      for (index_t c = 0; c < L; ++c) {
        t.ids(r, c) = enc[static_cast<std::size_t>(r)].input_ids[static_cast<std::size_t>(c)];
        t.attention_mask(r, c) = static_cast<float>(enc[static_cast<std::size_t>(r)].attention_mask[static_cast<std::size_t>(c)]);
      }
    b.inputs["text"] = {t, {}};
  }
  if (with_image) b.inputs["image"] = {enc::dense_input{d.batch_images(ids)}, {}};
  b.labels["category"] = {d.batch_labels(ids), {}, {}};
  return b;
}

double accuracy(net& m, const data::emoji_dataset& d, const io::wordpiece_tokenizer& tok, bool text, bool image) {
  no_grad ng;
  index_t correct = 0;
  for (std::size_t s = 0; s < d.test.size(); s += 64) {
    tape_scope scope;
    std::span<const index_t> ids(d.test.data() + s, std::min<std::size_t>(64, d.test.size() - s));
    const batch b = make_batch(d, tok, ids, text, image);
    const var<float> logits = m(b)["category"];
    for (index_t r = 0; r < b.size; ++r) {
      const float* row = logits.data() + r * 8;
      correct += std::max_element(row, row + 8) - row == d.labels[static_cast<std::size_t>(ids[static_cast<std::size_t>(r)])];
    }
  }
  return static_cast<double>(correct) / static_cast<double>(d.test.size());
}
}  // namespace

int main(int argc, char** argv) {
  int epochs = 12;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) epochs = 2;
    else {
      std::cerr << "usage: emoji_text_image [--epochs N] [--quick]\n";
      return 2;
    }
  }
  try {
    const auto d = data::load_emoji();
    const auto tok = io::wordpiece_tokenizer::from_file(data::default_data_dir() / "bert-base-uncased" / "vocab.txt");
    std::printf("emoji: %zu train, %zu test, %zu categories; text (BERT h%lld) + image (CNN) -> concat -> classify\n",
                d.train.size(), d.test.size(), d.categories.size(), static_cast<long long>(text_cfg.hidden));
    net m;
    optim::adamw<float> opt(parameters_of(m), {.lr = 1e-3, .weight_decay = 0.01});
    std::vector<index_t> order = d.train;
    std::mt19937 rng(1);
    for (int epoch = 0; epoch < epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      std::shuffle(order.begin(), order.end(), rng);
      double total = 0;
      int steps = 0;
      for (std::size_t s = 0; s + 32 <= order.size(); s += 32, ++steps) {
        const batch b = make_batch(d, tok, std::span<const index_t>(order.data() + s, 32), true, true);
        opt.zero_grad();
        auto loss = m.loss(m(b, true), b);
        total += loss.item();
        loss.backward();
        opt.step();
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("epoch %2d/%d  loss %.4f  test accuracy %.1f%%  (%.1f s)\n", epoch + 1, epochs, total / steps,
                  100 * accuracy(m, d, tok, true, true), secs);
      std::fflush(stdout);
    }
    std::printf("test accuracy: text + image %.1f%%, text only %.1f%%, image only %.1f%%\n",
                100 * accuracy(m, d, tok, true, true), 100 * accuracy(m, d, tok, true, false),
                100 * accuracy(m, d, tok, false, true));
  } catch (const std::exception& e) {
    std::cerr << "emoji_text_image: " << e.what() << "\n";
    return 1;
  }
}
