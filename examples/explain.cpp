// Explaining a prediction with the autodiff engine: trains a small text + image classifier on the emoji set
// (the emoji's name through a BERT, its 32x32 picture through a CNN, mean fusion, an 8-way category head),
// then, for two test emoji, computes
//   - gradient x input per token:  s_t = sum_h (d z_c / d e_{t,h}) * e_{t,h}, e_t = word embedding of token t,
//   - gradient x input per pixel:  s_{y,x} = sum_ch (d z_c / d p_{ch,y,x}) * p_{ch,y,x},
//   - the last BERT layer's attention, softmax(Q K^T / sqrt(d) + mask), averaged over the heads,
// where z_c is the logit of the predicted class, and draws them into one PNG. See docs/explain.md.
//
// The inputs are leaves of the tape: the word embeddings go into enc::bert_model as inputs_embeds and the pixels
// into enc::conv_image_model as a var, so their gradients land in the leaves' .grad(); the attention comes out of
// the same forward pass (enc::bert_trace, Hugging Face's output_attentions).
//
// Usage: explain [--epochs N] [--quick] [--seed S] [--items I,J] [--out FILE.png]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <hybrid/data/emoji.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/enc/conv_image.hpp>
#include <hybrid/io/wordpiece.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/optim/adam.hpp>

#include "../tools/raster.hpp"

using namespace hybrid;

namespace {

constexpr index_t width = 64, classes = 8, image_size = 32;
constexpr enc::bert_config text_cfg{.vocab = 30522, .hidden = width, .layers = 2, .heads = 2, .ffn = 128,
                                    .max_positions = 32, .dropout = 0.1, .attention_dropout = 0.1};
constexpr enc::conv_image_config image_cfg{.size = image_size, .channels = 3, .width = width, .base = 16, .blocks = 2};

// text (BERT, pooled [CLS]) and image (CNN) -> mean -> linear head.
class text_image_model {
 public:
  using value_type = float;

  text_image_model() : text_(text_cfg), image_(image_cfg), head_(width, classes) {
    std::mt19937 rng(7);
    head_.init(rng);
    assign_names(*this);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    text_.visit(join_name(prefix, "text"), f);
    image_.visit(join_name(prefix, "image"), f);
    head_.visit(join_name(prefix, "head"), f);
  }

  layers::embedding<float>& word_embeddings() { return text_.word_embeddings(); }

  // words: the word-embedding vectors [B, L, width] (inputs_embeds), or invalid to look them up from the ids;
  // pixels [B, 3, 32, 32]. trace, when given, receives the text encoder's hidden states and attention.
  var<float> logits(const enc::text_input& in, const var<float>& words, const var<float>& pixels, dropout_rng& rng,
                    bool training, enc::bert_trace<float>* trace = nullptr) const {
    const var<float> text = words.valid() ? text_(in, words, rng, training, trace).pooled
                                          : text_(in, rng, training, trace).pooled;
    return head_((text + image_(pixels, rng, training).pooled) * 0.5f);
  }

 private:
  enc::bert_model<float> text_;
  enc::conv_image_model<float> image_;
  layers::linear<float> head_;
};

struct text_batch {
  enc::text_input input;
  std::vector<std::vector<std::string>> tokens;
};

text_batch encode_names(const data::emoji_dataset& d, const io::wordpiece_tokenizer& tok, std::span<const index_t> ids) {
  std::vector<std::string> names;
  for (index_t i : ids) names.push_back(d.items[static_cast<std::size_t>(i)].name);
  const auto enc = tok.encode_batch(names, {.max_length = text_cfg.max_positions,
                                            .truncation = io::truncation_strategy::longest_first,
                                            .padding = io::padding_strategy::longest});
  const auto B = static_cast<index_t>(ids.size()), L = static_cast<index_t>(enc.front().size());
  text_batch out{{tensor<std::int32_t>({B, L}), {}, tensor<float>({B, L})}, {}};
  for (index_t r = 0; r < B; ++r) {
    const auto& e = enc[static_cast<std::size_t>(r)];
    for (index_t c = 0; c < L; ++c) {
      out.input.ids(r, c) = e.input_ids[static_cast<std::size_t>(c)];
      out.input.attention_mask(r, c) = static_cast<float>(e.attention_mask[static_cast<std::size_t>(c)]);
    }
    out.tokens.push_back(e.tokens);
  }
  return out;
}

// Everything one picture row shows.
struct explanation {
  index_t item = 0;
  std::string name, truth, predicted;
  float probability = 0;
  std::vector<std::string> tokens;     // without padding
  std::vector<float> token_saliency;   // per token
  tensor<float> image;                 // [3, 32, 32]
  std::vector<float> pixel_saliency;   // [32 * 32]
  tensor<float> attention;             // [L, L], mean over heads
};

explanation explain(text_image_model& m, const data::emoji_dataset& d, const io::wordpiece_tokenizer& tok, index_t item) {
  const index_t one[] = {item};
  const text_batch t = encode_names(d, tok, one);
  const index_t L = t.input.ids.dim(1);
  // The inputs as parameters: leaves of the tape whose gradients land in .grad().
  parameter<float> words("words", tensor<float>::zeros({1, L, width}));
  const tensor<float>& table = m.word_embeddings().weight().value();
  for (index_t l = 0; l < L; ++l)
    std::copy_n(table.data() + static_cast<index_t>(t.input.ids(0, l)) * width, width, words.value().data() + l * width);
  parameter<float> pixels("pixels", d.batch_images(one));
  enc::bert_trace<float> trace;  // the text encoder's attention probabilities, per layer
  dropout_rng rng{0};
  const var<float> z = m.logits(t.input, words.use(), pixels.use(), rng, false, &trace);
  const auto c = static_cast<index_t>(std::max_element(z.data(), z.data() + classes) - z.data());
  float denom = 0;
  for (index_t k = 0; k < classes; ++k) denom += std::exp(z.data()[k] - z.data()[c]);

  explanation e;
  e.item = item;
  e.name = d.items[static_cast<std::size_t>(item)].name;
  e.truth = d.categories[static_cast<std::size_t>(d.labels[static_cast<std::size_t>(item)])];
  e.predicted = d.categories[static_cast<std::size_t>(c)];
  e.probability = 1.0f / denom;
  slice(z, 1, c, 1).backward();  // d z_c / d (every leaf)

  e.tokens = t.tokens.front();
  for (index_t l = 0; l < L; ++l) {
    float s = 0;
    for (index_t h = 0; h < width; ++h) s += words.grad().data()[l * width + h] * words.value().data()[l * width + h];
    e.token_saliency.push_back(s);
  }
  e.image = tensor<float>::from({3, image_size, image_size}, std::span<const float>(pixels.value().data(),
                                                                                      static_cast<std::size_t>(3 * image_size * image_size)));
  constexpr index_t plane = image_size * image_size;
  e.pixel_saliency.assign(static_cast<std::size_t>(plane), 0.0f);
  for (index_t ch = 0; ch < 3; ++ch)
    for (index_t i = 0; i < plane; ++i)
      e.pixel_saliency[static_cast<std::size_t>(i)] += pixels.grad().data()[ch * plane + i] * pixels.value().data()[ch * plane + i];

  const tensor<float>& probs = trace.attentions.back();  // the last layer's [1, heads, L, L]
  const index_t heads = probs.dim(1);
  e.attention = tensor<float>::zeros({L, L});
  for (index_t h = 0; h < heads; ++h)
    for (index_t i = 0; i < L * L; ++i) e.attention.data()[i] += probs.data()[h * L * L + i] / static_cast<float>(heads);
  return e;
}

// One row of the picture per explanation: the image, its pixel saliency, the tokens with saliency bars,
// and the attention map. Saliencies are scaled by their largest magnitude (red positive, blue negative).
void draw(const std::vector<explanation>& rows, const std::string& file) {
  using namespace hybrid::raster;
  constexpr int zoom = 5, pic = image_size * zoom, row_h = pic + 60, margin = 16;
  constexpr int token_col = 10 * glyph_w, bar_max = 100, tokens_w = token_col + 2 * bar_max + 8 * glyph_w;
  constexpr int att_label = 10 * glyph_w, att_px = 150;
  const int W = margin + pic + margin + pic + 2 * margin + tokens_w + 2 * margin + std::max(att_label + att_px, 52 * glyph_w) + margin;
  const int H = 40 + static_cast<int>(rows.size()) * row_h + 24;
  canvas cv(W, H);
  cv.text(margin, 10, "Gradient × input and attention (examples/explain.cpp)", black, 2);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const explanation& e = rows[r];
    const int y0 = 44 + static_cast<int>(r) * row_h;
    cv.text(margin, y0, "\"" + e.name + "\": category " + e.truth + ", predicted " + e.predicted + " (p = " +
                            std::to_string(static_cast<int>(std::lround(100 * e.probability))) + "%)", black);
    const int yp = y0 + 16;
    // The picture and its saliency.
    int x = margin;
    for (int y = 0; y < image_size; ++y)
      for (int xx = 0; xx < image_size; ++xx) {
        const auto v = [&](int ch) {
          return static_cast<std::uint8_t>(std::lround(255 * std::clamp(e.image(ch, y, xx), 0.0f, 1.0f)));
        };
        cv.fill_rect(x + xx * zoom, yp + y * zoom, zoom, zoom, {v(0), v(1), v(2)});
      }
    cv.rect(x - 1, yp - 1, pic + 2, pic + 2, grey);
    cv.text(x, yp + pic + 6, "input picture", black);
    x += pic + margin;
    float smax = 1e-20f;
    for (float s : e.pixel_saliency) smax = std::max(smax, std::abs(s));
    for (int y = 0; y < image_size; ++y)
      for (int xx = 0; xx < image_size; ++xx)
        cv.fill_rect(x + xx * zoom, yp + y * zoom, zoom, zoom,
                     diverging(e.pixel_saliency[static_cast<std::size_t>(y * image_size + xx)] / smax));
    cv.rect(x - 1, yp - 1, pic + 2, pic + 2, grey);
    cv.text(x, yp + pic + 6, "grad x input, pixels", black);
    // Tokens with bars around a zero line.
    x += pic + 2 * margin;
    float tmax = 1e-20f;
    for (float s : e.token_saliency) tmax = std::max(tmax, std::abs(s));
    const int zero = x + token_col + bar_max, n = static_cast<int>(e.tokens.size());
    const int step = std::min(18, pic / std::max(1, n));
    for (int k = 0; k < n; ++k) {
      const int ty = yp + k * step;
      const float s = e.token_saliency[static_cast<std::size_t>(k)];
      cv.text(x, ty + (step - 8) / 2, e.tokens[static_cast<std::size_t>(k)].substr(0, 9), black);
      const int len = static_cast<int>(std::lround(bar_max * std::abs(s) / tmax));
      cv.fill_rect(s >= 0 ? zero : zero - len, ty + 2, len, step - 4, diverging(s >= 0 ? 0.8 : -0.8));
      char value[32];
      std::snprintf(value, sizeof value, "%+.3f", static_cast<double>(s));
      cv.text(zero + bar_max + 6, ty + (step - 8) / 2, value, grey);
    }
    cv.fill_rect(zero, yp, 1, n * step, grey);
    cv.text(x, yp + pic + 6, "grad x input, tokens", black);
    // Attention map: rows are queries, columns keys, both in token order.
    x += tokens_w + 2 * margin;
    // Shaded from white (0) to dark blue (the map's largest weight, written below it).
    const int cell = std::max(4, att_px / std::max(1, n));
    float amax = 1e-20f;
    for (index_t i = 0; i < e.attention.numel(); ++i) amax = std::max(amax, e.attention.data()[i]);
    for (int i = 0; i < n; ++i) {
      cv.text(x, yp + i * cell + (cell - 8) / 2, e.tokens[static_cast<std::size_t>(i)].substr(0, 9), black);
      for (int j = 0; j < n; ++j)
        cv.fill_rect(x + att_label + j * cell, yp + i * cell, cell, cell, sequential(e.attention(i, j) / amax));
    }
    cv.rect(x + att_label - 1, yp - 1, n * cell + 2, n * cell + 2, grey);
    char caption[96];
    std::snprintf(caption, sizeof caption, "last layer attention, mean of heads (darkest %.2f)", static_cast<double>(amax));
    cv.text(x, yp + pic + 6, caption, black);
  }
  cv.text(margin, H - 16,
          "gradient × input of the predicted class's logit: red raises it, blue lowers it (scaled to the largest |value|); "
          "attention: rows are queries, columns keys, in token order", grey);
  cv.save(file);
}

}  // namespace

int main(int argc, char** argv) {
  int epochs = 8;
  std::uint64_t seed = 1;
  std::string out = "explain.png";
  std::vector<index_t> items;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--epochs" && i + 1 < argc) epochs = std::atoi(argv[++i]);
    else if (a == "--quick") epochs = 1;
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "--items" && i + 1 < argc) {
      std::istringstream list(argv[++i]);
      for (std::string s; std::getline(list, s, ',');) items.push_back(std::stoll(s));
    } else {
      std::cerr << "usage: explain [--epochs N] [--quick] [--seed S] [--items I,J] [--out FILE.png]\n";
      return 2;
    }
  }
  try {
    const auto d = data::load_emoji();
    const auto tok = io::wordpiece_tokenizer::from_file(data::default_data_dir() / "bert-base-uncased" / "vocab.txt");
    text_image_model m;
    dropout_rng rng{seed};

    optim::adamw<float> opt(parameters_of(m), {.lr = 1e-3, .weight_decay = 0.01});
    std::vector<index_t> order = d.train;
    std::mt19937 shuffle_rng(static_cast<std::mt19937::result_type>(seed));
    for (int epoch = 0; epoch < epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      std::shuffle(order.begin(), order.end(), shuffle_rng);
      double total = 0;
      int steps = 0;
      for (std::size_t s = 0; s + 32 <= order.size(); s += 32, ++steps) {
        const std::span<const index_t> ids(order.data() + s, 32);
        const text_batch t = encode_names(d, tok, ids);
        const auto labels = d.batch_labels(ids);
        opt.zero_grad();
        var<float> loss = cross_entropy(m.logits(t.input, {}, constant(d.batch_images(ids)), rng, true), labels);
        total += loss.item();
        loss.backward();
        opt.step();
      }
      index_t correct = 0;
      {
        no_grad ng;
        for (std::size_t s = 0; s < d.test.size(); s += 64) {
          tape_scope scope;
          const std::span<const index_t> ids(d.test.data() + s, std::min<std::size_t>(64, d.test.size() - s));
          const var<float> z = m.logits(encode_names(d, tok, ids).input, {}, constant(d.batch_images(ids)), rng, false);
          for (std::size_t r = 0; r < ids.size(); ++r) {
            const float* row = z.data() + static_cast<index_t>(r) * classes;
            correct += std::max_element(row, row + classes) - row == d.labels[static_cast<std::size_t>(ids[r])];
          }
        }
      }
      std::printf("epoch %d/%d  loss %.4f  test accuracy %.1f%%  (%.1f s)\n", epoch + 1, epochs, total / steps,
                  100.0 * static_cast<double>(correct) / static_cast<double>(d.test.size()),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::fflush(stdout);
    }

    set_trainable(m, false);  // from here on only the inputs get gradients
    std::vector<explanation> rows;
    if (items.empty()) {  // the first correctly classified test emoji of two categories, with 2+ word pieces
      for (index_t i : d.test) {
        if (rows.size() == 2) break;
        if (!rows.empty() && d.labels[static_cast<std::size_t>(i)] == d.labels[static_cast<std::size_t>(rows[0].item)]) continue;
        explanation e = explain(m, d, tok, i);
        if (e.predicted == e.truth && e.tokens.size() >= 4) rows.push_back(std::move(e));
      }
    } else {
      for (index_t i : items) rows.push_back(explain(m, d, tok, i));
    }
    if (rows.empty()) throw std::runtime_error("no correctly classified test emoji with two or more word pieces");
    for (const explanation& e : rows) {
      std::printf("item %lld \"%s\" (%s): predicted %s, p %.2f\n  token saliency:", static_cast<long long>(e.item),
                  e.name.c_str(), e.truth.c_str(), e.predicted.c_str(), static_cast<double>(e.probability));
      for (std::size_t k = 0; k < e.tokens.size(); ++k)
        std::printf(" %s %+.3f", e.tokens[k].c_str(), static_cast<double>(e.token_saliency[k]));
      std::printf("\n");
    }
    draw(rows, out);
    std::printf("wrote %s\n", out.c_str());
  } catch (const std::exception& e) {
    std::cerr << "explain: " << e.what() << "\n";
    return 1;
  }
}
