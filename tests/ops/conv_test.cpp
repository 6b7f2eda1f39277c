// conv2d / conv1d: values against naive loops and PyTorch, gradients (finite differences, one and several
// chunks of images), serial vs tbb bitwise, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "../test_util.hpp"

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/conv.hpp>

#include "fixtures/torch_conv.inc"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;

namespace {
template <class T>
parameter<T> from_array(const char* name, hybrid::shape s, const double* v) {
  parameter<T> p(name, s);
  for (index_t i = 0; i < s.numel(); ++i) p.value()[i] = static_cast<T>(v[i]);
  return p;
}

// The definition: y[b, o, i, j] = bias[o] + sum_{c, u, v} x[b, c, i*s - p + u, j*s - p + v] w[o, c, u, v].
tensor<double> naive_conv2d(const tensor<double>& x, const tensor<double>& w, const tensor<double>* bias, index_t s,
                            index_t p) {
  const index_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const index_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1;
  tensor<double> y({B, O, Ho, Wo}, 0.0);
  for (index_t b = 0; b < B; ++b)
    for (index_t o = 0; o < O; ++o)
      for (index_t i = 0; i < Ho; ++i)
        for (index_t j = 0; j < Wo; ++j) {
          double acc = bias ? (*bias)[o] : 0.0;
          for (index_t c = 0; c < C; ++c)
            for (index_t u = 0; u < kh; ++u)
              for (index_t v = 0; v < kw; ++v) {
                const index_t ih = i * s - p + u, iw = j * s - p + v;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) acc += x(b, c, ih, iw) * w(o, c, u, v);
              }
          y(b, o, i, j) = acc;
        }
  return y;
}

template <class T>
void seed_backward(const var<T>& y) {
  for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = static_cast<T>(std::sin(0.37 * double(i)) + 0.1);
  tape::current().run_backward();
}

// conv(x, w, b) on uniform random float parameters of the given shapes, its output poisoned (an element a kernel
// leaves unwritten shows up as NaN), then a seeded backward pass: {output, dx, dw, db}.
template <class Conv>
std::vector<std::vector<float>> outputs_and_gradients(const hybrid::shape& xs, const hybrid::shape& ws,
                                                      unsigned seed, Conv&& conv) {
  tape::current().reset();
  std::mt19937 r(seed);
  parameter<float> x("x", xs), w("w", ws), b("b", {ws[0]});
  fill_uniform(x.value(), r);
  fill_uniform(w.value(), r);
  fill_uniform(b.value(), r);
  tape::current().set_poisoning(true);
  const var<float> y = conv(x.use(), w.use(), b.use());
  tape::current().set_poisoning(false);
  std::vector<std::vector<float>> out{{y.values().begin(), y.values().end()}};
  seed_backward(y);
  for (auto* p : {&x, &w, &b}) out.emplace_back(p->grad().begin(), p->grad().end());
  return out;
}
}  // namespace

TEST_CASE("conv2d values match naive loops (strides, paddings, odd and non-square kernels, several chunks)") {
  struct cfg {
    hybrid::shape x, w;
    index_t stride, padding;
    bool bias;
  };
  const cfg cases[] = {
      {{2, 3, 5, 5}, {4, 3, 3, 3}, 1, 1, true},  {{1, 2, 7, 6}, {3, 2, 3, 2}, 2, 0, false},
      {{3, 1, 6, 9}, {2, 1, 1, 4}, 3, 2, true},  {{2, 4, 4, 4}, {5, 4, 4, 4}, 1, 0, true},
      {{3, 2, 40, 41}, {3, 2, 3, 3}, 1, 1, true},  // P = 1640 positions: one image per chunk, 3 chunks
      {{5, 2, 16, 16}, {3, 2, 3, 3}, 1, 1, false}, // P = 256: chunks of 4 images and 1
      {{2, 1, 1, 1}, {2, 1, 3, 3}, 1, 1, true},    // every tap but the centre reads padding
      {{2, 2, 7, 5}, {3, 2, 5, 5}, 1, 2, true},    // "same" 5x5 on a non-square image
      {{1, 2, 2, 9}, {2, 2, 3, 3}, 1, 1, true},    // fewer rows than the kernel
  };
  std::mt19937 rng(1);
  for (const auto& c : cases) {
    CAPTURE(c.x.str());
    CAPTURE(c.w.str());
    tape::current().reset();
    auto x = random_param("x", c.x, rng);
    auto w = random_param("w", c.w, rng);
    auto b = random_param("b", {c.w[0]}, rng);
    var<double> y = conv2d(x.use(), w.use(), c.bias ? b.use() : var<double>{}, {.stride = c.stride, .padding = c.padding});
    const tensor<double> want = naive_conv2d(x.value(), w.value(), c.bias ? &b.value() : nullptr, c.stride, c.padding);
    REQUIRE(y.shape() == want.shape());
    double worst = 0;
    for (index_t i = 0; i < want.numel(); ++i) worst = std::max(worst, std::abs(y[i] - want[i]));
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("conv1d equals conv2d with H = 1") {
  tape::current().reset();
  std::mt19937 rng(2);
  auto x = random_param("x", {3, 4, 13}, rng);
  auto w = random_param("w", {5, 4, 3}, rng);
  auto b = random_param("b", {5}, rng);
  var<double> y = conv1d(x.use(), w.use(), b.use(), {.stride = 2, .padding = 1});
  // The reference: x padded along L by hand, a stride-1 conv2d with H = 1, every second column.
  tensor<double> xp({3, 4, 1, 15}, 0.0);
  for (index_t i = 0; i < 3 * 4; ++i)
    for (index_t l = 0; l < 13; ++l) xp[i * 15 + l + 1] = x.value()[i * 13 + l];
  const tensor<double> ref = naive_conv2d(xp, w.value().reshaped({5, 4, 1, 3}), &b.value(), 1, 0);
  REQUIRE(y.shape() == hybrid::shape{3, 5, 7});
  for (index_t bo = 0; bo < 15; ++bo)
    for (index_t l = 0; l < 7; ++l) CHECK(y[bo * 7 + l] == doctest::Approx(ref[bo * 13 + 2 * l]).epsilon(1e-12));
}

TEST_CASE("conv2d and conv1d match PyTorch (values and gradients)") {
  using namespace torch_conv;
  auto compare = [](std::span<const double> got, const double* want, std::size_t n) {
    REQUIRE(got.size() == n);
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    CHECK(worst < 1e-12);
  };
  {
    tape::current().reset();
    auto x = from_array<double>("x", {2, 3, 7, 6}, conv2d_in0);
    auto w = from_array<double>("w", {4, 3, 3, 2}, conv2d_in1);
    auto b = from_array<double>("b", {4}, conv2d_in2);
    var<double> y = conv2d(x.use(), w.use(), b.use(), {.stride = 2, .padding = 1});
    REQUIRE(y.shape() == hybrid::shape{2, 4, 4, 4});
    compare(y.values(), conv2d_out, std::size(conv2d_out));
    std::copy(std::begin(conv2d_upstream), std::end(conv2d_upstream), y.grad_data());
    tape::current().run_backward();
    compare(x.grad().span(), conv2d_grad0, std::size(conv2d_grad0));
    compare(w.grad().span(), conv2d_grad1, std::size(conv2d_grad1));
    compare(b.grad().span(), conv2d_grad2, std::size(conv2d_grad2));
  }
  {
    tape::current().reset();
    auto x = from_array<double>("x", {2, 3, 9}, conv1d_in0);
    auto w = from_array<double>("w", {5, 3, 4}, conv1d_in1);
    auto b = from_array<double>("b", {5}, conv1d_in2);
    var<double> y = conv1d(x.use(), w.use(), b.use(), {.stride = 1, .padding = 2});
    REQUIRE(y.shape() == hybrid::shape{2, 5, 10});
    compare(y.values(), conv1d_out, std::size(conv1d_out));
    std::copy(std::begin(conv1d_upstream), std::end(conv1d_upstream), y.grad_data());
    tape::current().run_backward();
    compare(x.grad().span(), conv1d_grad0, std::size(conv1d_grad0));
    compare(w.grad().span(), conv1d_grad1, std::size(conv1d_grad1));
    compare(b.grad().span(), conv1d_grad2, std::size(conv1d_grad2));
  }
}

TEST_CASE("conv gradients match finite differences") {
  std::mt19937 rng(3);
  // conv is linear in each argument, so central differences are exact up to rounding: a larger step
  // keeps the rounding of sums over thousands of outputs out of the comparison.
  auto check = [](auto&& f, std::vector<parameter<double>*> ps) {
    auto r = check_gradients(f, ps, {.eps = 1e-4});
    INFO(r.report());
    CHECK(r.ok);
  };
  SUBCASE("conv2d, padding and stride") {
    auto x = random_param("x", {2, 3, 5, 6}, rng);
    auto w = random_param("w", {4, 3, 3, 2}, rng);
    auto b = random_param("b", {4}, rng);
    for (index_t s : {1, 2})
      for (index_t p : {0, 1, 2}) {
        CAPTURE(s);
        CAPTURE(p);
        check([&] { return conv2d(x.use(), w.use(), b.use(), {.stride = s, .padding = p}); }, {&x, &w, &b});
      }
    check([&] { return conv2d(x.use(), w.use()); }, {&x, &w});
    check([&] { return conv2d(x.use(), w.use(), b.use(), {.padding = 1, .relu = true}); }, {&x, &w, &b});
    // "Same" convolutions (stride 1, output as wide as the input) take im2col's contiguous-band path.
    for (index_t k : {1, 3, 5}) {
      CAPTURE(k);
      auto ws = random_param("ws", {2, 3, k, k}, rng);
      check([&] { return conv2d(x.use(), ws.use(), {}, {.padding = k / 2}); }, {&x, &ws});
    }
  }
  SUBCASE("conv2d over several chunks (partial weight gradients summed)") {
    auto x = random_param("x", {5, 1, 16, 16}, rng);  // 256 positions: chunks of 4 images and 1
    auto w = random_param("w", {2, 1, 3, 3}, rng);
    auto b = random_param("b", {2}, rng);
    check([&] { return conv2d(x.use(), w.use(), b.use(), {.padding = 1}); }, {&x, &w, &b});
  }
  SUBCASE("conv1d") {
    auto x = random_param("x", {2, 3, 8}, rng);
    auto w = random_param("w", {2, 3, 3}, rng);
    auto b = random_param("b", {2}, rng);
    check([&] { return conv1d(x.use(), w.use(), b.use(), {.stride = 2, .padding = 1}); }, {&x, &w, &b});
    check([&] { return conv1d(x.use(), w.use(), b.use(), {.padding = 1}); }, {&x, &w, &b});
  }
  SUBCASE("frozen input or weight") {
    auto x = random_param("x", {2, 2, 4, 4}, rng);
    auto w = random_param("w", {3, 2, 2, 2}, rng);
    auto b = random_param("b", {3}, rng);
    x.set_trainable(false);
    check([&] { return conv2d(x.use(), w.use(), b.use()); }, {&x, &w, &b});
    x.set_trainable(true);
    w.set_trainable(false);
    check([&] { return conv2d(x.use(), w.use(), b.use()); }, {&x, &w, &b});
  }
}

TEST_CASE("conv2d: serial and tbb bitwise identical, forward and backward") {
  auto run = []<class Exec>(Exec) {
    tape::current().reset();
    std::mt19937 r(5);
    parameter<float> x("x", {6, 8, 32, 32}), w("w", {16, 8, 3, 3}), b("b", {16});
    fill_uniform(x.value(), r);
    fill_uniform(w.value(), r);
    fill_uniform(b.value(), r);
    var<float> y = conv2d<Exec>(x.use(), w.use(), b.use(), {.padding = 1});
    std::vector<float> out(y.values().begin(), y.values().end());
    seed_backward(y);
    out.insert(out.end(), x.grad().begin(), x.grad().end());
    out.insert(out.end(), w.grad().begin(), w.grad().end());
    out.insert(out.end(), b.grad().begin(), b.grad().end());
    return out;
  };
  const auto a = run(exec::serial{}), t = run(exec::tbb{});
  CHECK(a == t);
}

TEST_CASE("conv forward in float is close to the double reference") {
  tape::current().reset();
  std::mt19937 rng(6);
  auto xd = random_param("x", {4, 3, 17, 15}, rng);
  auto wd = random_param("w", {8, 3, 3, 3}, rng);
  parameter<float> x("x", xd.shape()), w("w", wd.shape());
  std::copy(xd.value().begin(), xd.value().end(), x.value().begin());
  std::copy(wd.value().begin(), wd.value().end(), w.value().begin());
  var<float> y = conv2d(x.use(), w.use(), {}, {.stride = 2, .padding = 1});
  const tensor<double> want = naive_conv2d(xd.value(), wd.value(), nullptr, 2, 1);
  double worst = 0;
  for (index_t i = 0; i < want.numel(); ++i) worst = std::max(worst, std::abs(double(y[i]) - want[i]));
  CHECK(worst < 1e-5);
}

namespace {
// gemm::fastest without takes_packed_operands(): float convolutions write im2col out and pack it (the generic path).
struct stored_im2col {
  template <class T, class Exec>
  static void run(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
                  index_t ldb, T beta, T* C, index_t ldc) {
    gemm::fastest::run<T, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
};
}  // namespace

// The AVX-512 paths against the stored im2col: 3x3 stride-1 convolutions with padding <= 2 run the direct kernels
// (ops/conv.hpp, direct_conv_applies), the rest pack im2col from the image. Both only with more than one chunk.
TEST_CASE("conv in float on the AVX-512 paths (direct 3x3, im2col from the image) equals the stored im2col") {
  MESSAGE("AVX-512 convolution paths here: " << gemm::fastest::takes_packed_operands());
#if HYBRID_GEMM_AVX512_COMPILED
  constexpr index_t one_k_block = gemm::avx512_detail::KC_MAX;
#else
  constexpr index_t one_k_block = 0;  // not built: both runs take the stored im2col
#endif
  struct cfg {
    hybrid::shape x, w;
    index_t padding;
    bool per_image_chunks;  // one image per chunk: the weight and bias gradients sum in the same order
  };
  const cfg cases[] = {
      {{3, 8, 32, 32}, {16, 8, 3, 3}, 1, true},     // direct; P = 1024: two column blocks of the kernel
      {{20, 3, 8, 8}, {5, 3, 3, 3}, 1, false},      // direct; chunks of 16 images and 4, O = 5: partial blocks
      {{5, 4, 16, 16}, {32, 4, 5, 5}, 2, false},    // from the image: 5x5 "same"
      {{13, 3, 9, 13}, {6, 3, 2, 4}, 0, false},     // from the image: Wo = 10, 16 columns span two output rows
      {{3, 2, 40, 41}, {3, 2, 3, 3}, 1, true},      // direct; Wo = 41: a partial vector per row
      {{17, 2, 6, 6}, {3, 2, 3, 3}, 3, false},      // from the image: padding wider than the kernel
      {{9, 64, 12, 12}, {8, 64, 3, 3}, 1, false},   // direct; K = 576: the GEMM sums two K blocks
      {{40, 4, 1, 37}, {6, 4, 1, 5}, 2, false},     // from the image: conv1d's shape (H = 1), odd length
      {{18, 5, 10, 10}, {7, 5, 3, 3}, 0, false},    // direct; no padding (dX pads dY by 2), O = 7
      {{5, 3, 20, 20}, {4, 3, 3, 3}, 2, false},     // direct; padding 2 (dX pads dY by 0), Wo = 22
      {{10, 64, 16, 16}, {64, 64, 3, 3}, 1, false}, // direct; the weight gradient in groups of 3 images, then 1
  };
  for (const auto& c : cases) {
    CAPTURE(c.x.str());
    CAPTURE(c.w.str());
    auto run = [&]<class Gemm>(Gemm) {
      return outputs_and_gradients(c.x, c.w, 11, [&](const var<float>& x, const var<float>& w, const var<float>& b) {
        return conv2d<exec::tbb, Gemm>(x, w, b, {.padding = c.padding});
      });
    };
    const auto fast = run(gemm::fastest{}), stored = run(stored_im2col{});
    const bool direct = c.w[2] == 3 && c.w[3] == 3 && c.padding <= 2;
    const index_t K = c.w[1] * c.w[2] * c.w[3];
    // Forward: every output sums its K terms in order, one FMA chain, as the GEMM does up to one K block.
    if (!direct || K <= one_k_block) CHECK(fast[0] == stored[0]);
    if (!direct) CHECK(fast[1] == stored[1]);  // dx: dcol = W^T dY per image, then the same col2im
    for (std::size_t k = 0; k < fast.size(); ++k) {
      CAPTURE(k);
      if (k >= 2 && c.per_image_chunks && !direct) CHECK(fast[k] == stored[k]);
      double worst = 0, scale = 0;
      for (std::size_t i = 0; i < stored[k].size(); ++i) {
        worst = std::max(worst, std::abs(double(fast[k][i]) - double(stored[k][i])));
        scale = std::max(scale, std::abs(double(stored[k][i])));
      }
      CHECK(worst <= 1e-5 * scale);
    }
  }
}

TEST_CASE("conv2d's relu option equals relu(conv2d), fused into the direct kernels: the same bits, forward and back") {
  struct cfg {
    hybrid::shape x, w;
    index_t padding, stride;
  };
  const cfg cases[] = {
      {{20, 3, 8, 8}, {5, 3, 3, 3}, 1, 1},     // direct (chunks of 16 images and 4), partial channel blocks
      {{3, 8, 32, 32}, {16, 8, 3, 3}, 1, 1},   // direct, one image per chunk
      {{18, 5, 10, 10}, {7, 5, 3, 3}, 0, 1},   // direct, no padding
      {{5, 4, 16, 16}, {6, 4, 5, 5}, 2, 1},    // from the image (5x5): ReLU as its own op
      {{4, 3, 9, 9}, {4, 3, 3, 3}, 1, 2},      // stride 2: the stored im2col, ReLU as its own op
  };
  for (const auto& c : cases) {
    CAPTURE(c.x.str());
    CAPTURE(c.w.str());
    auto run = [&](bool fused) {
      const conv_options o{.stride = c.stride, .padding = c.padding, .relu = fused};
      return outputs_and_gradients(c.x, c.w, 13, [&](const var<float>& x, const var<float>& w, const var<float>& b) {
        return fused ? conv2d(x, w, b, o) : var<float>(relu(conv2d(x, w, b, o)));
      });
    };
    const auto fused = run(true), separate = run(false);
    std::size_t zeros = 0;
    for (float v : separate[0]) zeros += v == 0.f;
    CHECK(zeros > 0);  // ReLU cut something
    for (std::size_t k = 0; k < fused.size(); ++k) {
      CAPTURE(k);
      CHECK(fused[k] == separate[k]);
    }
  }
}

// The direct kernels on their own, against double-precision loops (whatever path conv2d routes to): forward with and
// without bias, accumulation into existing values, the weight gradient over a group of images; non-finite pixels
// give the same Inf/NaN pattern (lanes past the output must contribute nothing, not 0 * Inf).
TEST_CASE("direct 3x3 kernels match double loops: partial blocks, accumulation, image groups, Inf pixels") {
#if HYBRID_GEMM_AVX512_COMPILED
  if (!gemm::fastest::takes_packed_operands()) {
    MESSAGE("no AVX-512 here: the direct kernels do not run");
    return;
  }
  struct cfg {
    index_t C, H, W, O, p;
  };
  for (const cfg c : {cfg{3, 5, 7, 5, 1}, cfg{4, 9, 17, 9, 0}, cfg{2, 6, 33, 3, 2}, cfg{5, 16, 16, 8, 1}}) {
    CAPTURE(c.C);
    CAPTURE(c.W);
    CAPTURE(c.p);
    const index_t Ho = c.H + 2 * c.p - 2, Wo = c.W + 2 * c.p - 2, K = c.C * 9, n = 3;
    std::mt19937 r(17);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(static_cast<std::size_t>(n * c.C * c.H * c.W)), w(static_cast<std::size_t>(c.O * K)),
        b(static_cast<std::size_t>(c.O)), dy(static_cast<std::size_t>(n * c.O * Ho * Wo));
    for (auto* v : {&x, &w, &b, &dy})
      for (float& e : *v) e = u(r);
    x[5] = std::numeric_limits<float>::infinity();  // image 0, channel 0, row 0 (or 1), near the left edge
    auto pixel = [&](index_t i, index_t ch, index_t yy, index_t xx) -> double {
      yy -= c.p;
      xx -= c.p;
      if (yy < 0 || yy >= c.H || xx < 0 || xx >= c.W) return 0.0;
      return x[static_cast<std::size_t>(((i * c.C + ch) * c.H + yy) * c.W + xx)];
    };
    auto same = [](float got, double want) {
      if (std::isnan(want)) return std::isnan(got);
      if (std::isinf(want)) return got == static_cast<float>(want);
      return std::abs(got - want) <= 1e-4 * std::max(1.0, std::abs(want));
    };
    std::vector<float> wt(static_cast<std::size_t>(K * c.O));  // [K][O]
    for (index_t o = 0; o < c.O; ++o)
      for (index_t k = 0; k < K; ++k) wt[static_cast<std::size_t>(k * c.O + o)] = w[static_cast<std::size_t>(o * K + k)];
    std::vector<float> pad(static_cast<std::size_t>(n * direct_conv::padded_planes::floats(c.C, c.H, c.W, c.p, c.p)));
    std::vector<const float*> ins, dys;
    direct_conv::padded_planes planes{};
    for (index_t i = 0; i < n; ++i) {
      float* buf = pad.data() + i * direct_conv::padded_planes::floats(c.C, c.H, c.W, c.p, c.p);
      planes = direct_conv::pad_planes(x.data() + i * c.C * c.H * c.W, c.C, c.H, c.W, c.p, c.p, buf);
      ins.push_back(buf);
      dys.push_back(dy.data() + i * c.O * Ho * Wo);
    }
    // Forward of image 1 with bias, and of image 0 accumulated onto 1s.
    std::vector<float> y1(static_cast<std::size_t>(c.O * Ho * Wo)), y0(y1.size(), 1.0f);
    direct_conv::conv3x3_image(ins[1], planes, wt.data(), c.O, b.data(), false, y1.data(), Ho, Wo);
    direct_conv::conv3x3_image(ins[0], planes, wt.data(), c.O, nullptr, true, y0.data(), Ho, Wo);
    bool ok1 = true, ok0 = true;
    for (index_t o = 0; o < c.O; ++o)
      for (index_t yy = 0; yy < Ho; ++yy)
        for (index_t xx = 0; xx < Wo; ++xx) {
          double s1 = 0, s0 = 0;
          for (index_t ch = 0; ch < c.C; ++ch)
            for (index_t t = 0; t < 9; ++t) {
              const double wv = w[static_cast<std::size_t>(o * K + ch * 9 + t)];
              s1 += wv * pixel(1, ch, yy + t / 3, xx + t % 3);
              s0 += wv * pixel(0, ch, yy + t / 3, xx + t % 3);
            }
          const auto at = static_cast<std::size_t>((o * Ho + yy) * Wo + xx);
          ok1 = ok1 && same(y1[at], s1 + b[static_cast<std::size_t>(o)]);
          ok0 = ok0 && same(y0[at], 1.0 + s0);
        }
    CHECK(ok1);
    CHECK(ok0);
    // Weight gradient over the three images, added to 0.5s.
    std::vector<float> gw(static_cast<std::size_t>(c.O * K), 0.5f);
    direct_conv::conv3x3_weight_grad(ins.data(), dys.data(), n, planes, c.O, Ho, Wo, gw.data());
    bool okw = true;
    for (index_t o = 0; o < c.O; ++o)
      for (index_t ch = 0; ch < c.C; ++ch)
        for (index_t t = 0; t < 9; ++t) {
          double s = 0.5;
          for (index_t i = 0; i < n; ++i)
            for (index_t yy = 0; yy < Ho; ++yy)
              for (index_t xx = 0; xx < Wo; ++xx)
                s += double(dy[static_cast<std::size_t>(((i * c.O + o) * Ho + yy) * Wo + xx)]) *
                     pixel(i, ch, yy + t / 3, xx + t % 3);
          okw = okw && same(gw[static_cast<std::size_t>(o * K + ch * 9 + t)], s);
        }
    CHECK(okw);
  }
#else
  MESSAGE("the direct kernels are not built with this compiler");
#endif
}

TEST_CASE("conv shape errors name both shapes") {
  tape::current().reset();
  parameter<float> x("x", {2, 3, 8, 8}), w("w", {4, 5, 3, 3}), w2("w2", {4, 3, 3, 3}), big("big", {4, 3, 11, 11}),
      b("b", {3}), x1("x1", {2, 3, 8}), w1("w1", {4, 2, 3});
  CHECK_THROWS_WITH_AS(conv2d(x.use(), w.use()), doctest::Contains("[2, 3, 8, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(conv2d(x.use(), w.use()), doctest::Contains("[4, 5, 3, 3]"), shape_error);
  CHECK_THROWS_WITH_AS(conv2d(x.use(), big.use(), {}, {.padding = 1}), doctest::Contains("[4, 3, 11, 11]"), shape_error);
  CHECK_NOTHROW(conv2d(x.use(), big.use(), {}, {.padding = 2}));
  CHECK_THROWS_WITH_AS(conv2d(x.use(), w2.use(), b.use()), doctest::Contains("bias [3]"), shape_error);
  CHECK_THROWS_WITH_AS(conv2d(x1.use(), w2.use()), doctest::Contains("[2, 3, 8]"), shape_error);
  CHECK_THROWS_WITH_AS(conv1d(x1.use(), w1.use()), doctest::Contains("[4, 2, 3]"), shape_error);
  CHECK_THROWS_AS(conv2d(x.use(), w2.use(), {}, {.stride = 0}), std::invalid_argument);
  CHECK_THROWS_AS(conv1d(x1.use(), w1.use(), {}, {.padding = -1}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
