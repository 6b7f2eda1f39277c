// conv_image encoder: the encoder contract, names, values against naive loops, gradients (double, tiny
// config), input shape errors, and a quick sanity training (fits random images to random labels).
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/conv_image.hpp>
#include <hybrid/ops/loss.hpp>
#include <map>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

static_assert(enc::encoder<enc::conv_image<enc::conv_image_config{.size = 32, .width = 256}>>);
static_assert(enc::conv_image<enc::conv_image_config{.size = 16, .width = 64}>::width == 64);
static_assert(!enc::conv_image<enc::conv_image_config{}>::sequence_output);

namespace {
using image = std::vector<double>;  // [C, H, W]

// 3x3, padding 1, then ReLU.
image conv_relu_ref(const image& x, index_t C, index_t S, const tensor<double>& w, const tensor<double>& b) {
  const index_t O = w.dim(0);
  image y(static_cast<std::size_t>(O * S * S));
  for (index_t o = 0; o < O; ++o)
    for (index_t i = 0; i < S; ++i)
      for (index_t j = 0; j < S; ++j) {
        double acc = b[o];
        for (index_t c = 0; c < C; ++c)
          for (index_t u = 0; u < 3; ++u)
            for (index_t v = 0; v < 3; ++v) {
              const index_t ih = i + u - 1, iw = j + v - 1;
              if (ih >= 0 && ih < S && iw >= 0 && iw < S) acc += x[std::size_t((c * S + ih) * S + iw)] * w(o, c, u, v);
            }
        y[std::size_t((o * S + i) * S + j)] = std::max(acc, 0.0);
      }
  return y;
}
image max_pool2_ref(const image& x, index_t C, index_t S) {
  const index_t H = S / 2;
  image y(static_cast<std::size_t>(C * H * H));
  for (index_t c = 0; c < C; ++c)
    for (index_t i = 0; i < H; ++i)
      for (index_t j = 0; j < H; ++j) {
        double m = -INFINITY;
        for (index_t u = 0; u < 2; ++u)
          for (index_t v = 0; v < 2; ++v) m = std::max(m, x[std::size_t((c * S + 2 * i + u) * S + 2 * j + v)]);
        y[std::size_t((c * H + i) * H + j)] = m;
      }
  return y;
}

enc::dense_input random_images(index_t B, index_t C, index_t S, std::mt19937& rng) {
  enc::dense_input in{tensor<float>({B, C, S, S})};
  fill_uniform(in.values, rng);
  return in;
}
}  // namespace

TEST_CASE("conv_image parameter names, count and output shape") {
  enc::conv_image<enc::conv_image_config{.size = 16, .channels = 3, .width = 10, .base = 4, .blocks = 3}> m;
  std::vector<std::string> names;
  m.visit("image", [&](const std::string& n, parameter<float>& p) {
    names.push_back(n);
    CHECK(p.name() == n.substr(6));  // assign_names ran with an empty prefix
  });
  const std::vector<std::string> want{
      "image.blocks.0.conv1.weight", "image.blocks.0.conv1.bias", "image.blocks.0.conv2.weight", "image.blocks.0.conv2.bias",
      "image.blocks.1.conv1.weight", "image.blocks.1.conv1.bias", "image.blocks.1.conv2.weight", "image.blocks.1.conv2.bias",
      "image.blocks.2.conv1.weight", "image.blocks.2.conv1.bias", "image.blocks.2.conv2.weight", "image.blocks.2.conv2.bias",
      "image.proj.weight",           "image.proj.bias"};
  CHECK(names == want);
  const index_t convs = (4 * 3 * 9 + 4) + (4 * 4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 8 * 9 + 8) + (16 * 8 * 9 + 16) +
                        (16 * 16 * 9 + 16);
  CHECK(count_parameters(m) == convs + 16 * 10 + 10);

  tape::current().reset();
  std::mt19937 rng(1);
  dropout_rng drng;
  auto out = m(random_images(5, 3, 16, rng), drng);
  CHECK_FALSE(out.sequence.valid());
  CHECK(out.pooled.shape() == hybrid::shape{5, 10});
}

TEST_CASE("conv_image forward matches naive loops") {
  tape::current().reset();
  const enc::conv_image_config cfg{.size = 6, .channels = 2, .width = 3, .base = 3, .blocks = 2};
  enc::conv_image_model<double> m(cfg);
  std::map<std::string, parameter<double>*> ps;
  m.visit("", [&](const std::string& n, parameter<double>& p) { ps[n] = &p; });
  std::mt19937 rng(2);
  const auto in = random_images(2, 2, 6, rng);
  dropout_rng drng;
  auto out = m(in, drng);
  for (index_t b = 0; b < 2; ++b) {
    image x(in.values.begin() + b * 72, in.values.begin() + (b + 1) * 72);
    index_t C = 2, S = 6;
    for (int blk = 0; blk < 2; ++blk) {
      const std::string p = "blocks." + std::to_string(blk);
      x = conv_relu_ref(x, C, S, ps[p + ".conv1.weight"]->value(), ps[p + ".conv1.bias"]->value());
      C = 3 << blk;
      x = conv_relu_ref(x, C, S, ps[p + ".conv2.weight"]->value(), ps[p + ".conv2.bias"]->value());
      x = max_pool2_ref(x, C, S);
      S /= 2;
    }
    const tensor<double>&w = ps["proj.weight"]->value(), &pb = ps["proj.bias"]->value();
    for (index_t o = 0; o < 3; ++o) {
      double y = pb[o];
      for (index_t c = 0; c < C; ++c) {
        double mean = 0;
        for (index_t i = 0; i < S * S; ++i) mean += x[std::size_t(c * S * S + i)] / double(S * S);
        y += w(o, c) * mean;
      }
      CHECK(out.pooled[b * 3 + o] == doctest::Approx(y).epsilon(1e-12));
    }
  }
}

TEST_CASE("conv_image gradients match finite differences (double, tiny config)") {
  enc::conv_image_model<double> m({.size = 4, .channels = 2, .width = 3, .base = 2, .blocks = 2});
  std::mt19937 rng(3);
  const std::vector<parameter<double>*> ps = test_util::randomized_parameters(m, rng);
  const auto in = random_images(3, 2, 4, rng);
  dropout_rng drng;
  auto r = check_gradients([&] { return m(in, drng).pooled; }, ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("conv_image takes the images as a var: the same outputs, and gradients reach the pixels") {
  enc::conv_image_model<double> m({.size = 4, .channels = 2, .width = 3, .base = 2, .blocks = 2});
  std::mt19937 rng(6);
  const std::vector<parameter<double>*> ps = test_util::randomized_parameters(m, rng);
  const auto in = random_images(3, 2, 4, rng);
  dropout_rng drng;
  parameter<double> pixels("pixels", in.values.shape());
  std::copy(in.values.begin(), in.values.end(), pixels.value().begin());
  tape::current().reset();
  CHECK(test_util::same_values(m(pixels.use(), drng).pooled.value(), m(in, drng).pooled.value()));
  std::vector<parameter<double>*> with_pixels = ps;
  with_pixels.push_back(&pixels);
  test_util::expect_gradients([&] { return m(pixels.use(), drng).pooled; }, with_pixels,
                               {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  tape::current().reset();
  parameter<double> wrong("w", {3, 2, 4, 5});
  CHECK_THROWS_WITH_AS(m(wrong.use(), drng), doctest::Contains("[3, 2, 4, 5]"), shape_error);
}

TEST_CASE("conv_image rejects images of the wrong shape, naming both shapes") {
  tape::current().reset();
  enc::conv_image_model<float> m({.size = 8, .channels = 3, .width = 4, .base = 2, .blocks = 2});
  std::mt19937 rng(4);
  dropout_rng drng;
  CHECK_THROWS_WITH_AS(m(random_images(2, 1, 8, rng), drng), doctest::Contains("[2, 1, 8, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(m(random_images(2, 3, 7, rng), drng), doctest::Contains("[2, 3, 8, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(m(enc::dense_input{tensor<float>({2, 192})}, drng), doctest::Contains("[2, 192]"), shape_error);
  CHECK_THROWS_AS(enc::conv_image_model<float>({.size = 4, .blocks = 3}), std::invalid_argument);
}

TEST_CASE("conv_image + a linear head fits 64 random 8x8 images to 4 random labels (SGD)") {
  enc::conv_image_model<float> m({.size = 8, .channels = 3, .width = 32, .base = 4, .blocks = 2});
  layers::linear<float> head(32, 4);
  std::mt19937 rng(5);
  head.init(rng);
  const auto in = random_images(64, 3, 8, rng);
  std::vector<std::int32_t> labels(64);
  for (auto& l : labels) l = static_cast<std::int32_t>(rng() % 4);
  std::vector<parameter<float>*> ps = parameters_of(m);
  for (auto* p : parameters_of(head)) ps.push_back(p);
  dropout_rng drng;
  double first_accuracy = -1, accuracy = 0;
  float first_loss = 0, loss_value = 0;
  int steps = 0;
  for (; steps < 400; ++steps) {
    tape::current().reset();
    for (auto* p : ps) p->zero_grad();
    var<float> logits = head(m(in, drng, true).pooled);
    int right = 0;
    for (index_t r = 0; r < 64; ++r) {
      const float* row = logits.data() + r * 4;
      right += std::max_element(row, row + 4) - row == labels[std::size_t(r)];
    }
    accuracy = right / 64.0;
    if (first_accuracy < 0) first_accuracy = accuracy;
    if (accuracy == 1.0) break;
    var<float> loss = cross_entropy(logits, labels);
    loss.backward();
    (steps == 0 ? first_loss : loss_value) = loss.item();
    for (auto* p : ps)
      for (index_t i = 0; i < p->numel(); ++i) p->value()[i] -= 0.2f * p->grad()[i];
  }
  MESSAGE("train accuracy " << first_accuracy << " -> " << accuracy << " after " << steps << " SGD steps, loss " << first_loss
                            << " -> " << loss_value);
  CHECK(accuracy == 1.0);
  CHECK(loss_value < first_loss);
}

}  // namespace HYBRID_TEST_UNIT
