// scaled_dot_product_attention: equal to the unfused composition (values, probabilities, gradients, dropout),
// finite differences, serial == tbb bitwise, shape errors.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../test_util.hpp"

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/layers/attention.hpp>
#include <hybrid/ops/attention.hpp>
#include <hybrid/ops/matmul.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;

namespace {
// The same attention as separate ops: heads split and merged by copies, scores materialised.
template <class T>
var<T> unfused(const var<T>& q, const var<T>& k, const var<T>& v, index_t heads, const var<T>& mask, double p,
               dropout_rng& rng, bool training, tensor<T>* probabilities) {
  const var<T> qh = layers::split_heads(q, heads), kh = layers::split_heads(k, heads), vh = layers::split_heads(v, heads);
  const T scale = T(1) / std::sqrt(static_cast<T>(qh.dim(3)));
  const var<T> scores = matmul(qh, kh, {.b = true}) * scale;
  const var<T> before_dropout = softmax(scores, mask);
  *probabilities = before_dropout.value();
  const var<T> probs = dropout(before_dropout, p, rng, training);
  return layers::merge_heads(matmul(probs, vh));
}

// [B, 1, 1, Tk] of 0 / -10000 with the last `pad` keys of every second row masked.
var<double> padding_mask(index_t B, index_t Tk, index_t pad) {
  std::vector<float> keep(static_cast<std::size_t>(B * Tk), 1.f);
  for (index_t b = 1; b < B; b += 2)
    for (index_t t = Tk - pad; t < Tk; ++t) keep[static_cast<std::size_t>(b * Tk + t)] = 0.f;
  return layers::additive_padding_mask<double>(keep, B, Tk);
}
}  // namespace

TEST_CASE("scaled_dot_product_attention equals the unfused ops: values, probabilities and gradients, masks, dropout") {
  struct cfg {
    index_t B, Tq, Tk, heads, D;
    double p;
    int mask;  // 0 none, 1 padding [B, 1, 1, Tk], 2 causal-like [Tq, Tk]
  };
  const cfg cases[] = {{2, 5, 5, 2, 3, 0.0, 1}, {3, 4, 7, 3, 2, 0.0, 0}, {2, 6, 6, 2, 4, 0.4, 1},
                       {1, 3, 5, 1, 8, 0.0, 2}, {2, 9, 9, 4, 2, 0.25, 2}};
  for (const auto& c : cases) {
    CAPTURE(c.B);
    CAPTURE(c.Tq);
    CAPTURE(c.Tk);
    CAPTURE(c.heads);
    CAPTURE(c.p);
    CAPTURE(c.mask);
    const index_t W = c.heads * c.D;
    auto run = [&](bool fused) {
      tape::current().reset();
      std::mt19937 r(7);
      auto q = random_param("q", {c.B, c.Tq, W}, r);
      auto k = random_param("k", {c.B, c.Tk, W}, r);
      auto v = random_param("v", {c.B, c.Tk, W}, r);
      var<double> mask;
      if (c.mask == 1) mask = padding_mask(c.B, c.Tk, 2);
      if (c.mask == 2) {
        tensor<double> m({c.Tq, c.Tk}, 0.0);
        for (index_t i = 0; i < c.Tq; ++i)
          for (index_t j = 0; j < c.Tk; ++j) m(i, j) = j > i ? -10000.0 : 0.0;
        mask = constant(m);
      }
      dropout_rng rng{5};
      tensor<double> probs;  // the attention probabilities handed out (before dropout)
      var<double> y = fused ? scaled_dot_product_attention(q.use(), k.use(), v.use(), c.heads, mask, c.p, rng, true, &probs)
                            : unfused(q.use(), k.use(), v.use(), c.heads, mask, c.p, rng, true, &probs);
      CHECK(probs.shape() == hybrid::shape{c.B, c.heads, c.Tq, c.Tk});
      std::vector<double> out(y.values().begin(), y.values().end());
      out.insert(out.end(), probs.begin(), probs.end());
      for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = std::sin(0.7 * double(i)) + 0.2;
      tape::current().run_backward();
      for (auto* p : {&q, &k, &v}) out.insert(out.end(), p->grad().begin(), p->grad().end());
      out.push_back(double(rng.counter));  // one dropout key per call on both sides
      return out;
    };
    const auto fused = run(true), reference = run(false);
    REQUIRE(fused.size() == reference.size());
    double worst = 0;
    for (std::size_t i = 0; i < fused.size(); ++i) worst = std::max(worst, std::abs(fused[i] - reference[i]));
    CHECK(worst < 1e-12);
  }
}

TEST_CASE("scaled_dot_product_attention gradients match finite differences (unwritten outputs show as NaN)") {
  std::mt19937 r(8);
  auto q = random_param("q", {2, 4, 6}, r);
  auto k = random_param("k", {2, 5, 6}, r);
  auto v = random_param("v", {2, 5, 6}, r);
  for (double p : {0.0, 0.3}) {
    CAPTURE(p);
    const auto res = check_gradients(
        [&] {
          dropout_rng rng{11};  // the same dropout mask on every evaluation
          return scaled_dot_product_attention(q.use(), k.use(), v.use(), 3, padding_mask(2, 5, 1), p, rng, true);
        },
        {&q, &k, &v});
    INFO(res.report());
    CHECK(res.ok);
  }
  // Only some inputs needing a gradient (keys frozen).
  k.set_trainable(false);
  const auto res = check_gradients(
      [&] {
        dropout_rng rng{3};
        return scaled_dot_product_attention(q.use(), k.use(), v.use(), 2, var<double>{}, 0.0, rng, true);
      },
      {&q, &k, &v});
  INFO(res.report());
  CHECK(res.ok);
}

TEST_CASE("scaled_dot_product_attention: serial and tbb bitwise identical; inference keeps nothing") {
  auto run = []<class Exec>(Exec) {
    tape::current().reset();
    std::mt19937 r(9);
    parameter<float> q("q", {4, 32, 64}), k("k", {4, 32, 64}), v("v", {4, 32, 64});
    for (auto* p : {&q, &k, &v}) fill_uniform(p->value(), r);
    dropout_rng rng{2};
    var<float> y = scaled_dot_product_attention<Exec>(q.use(), k.use(), v.use(), 4, var<float>{}, 0.1, rng, true);
    std::vector<float> out(y.values().begin(), y.values().end());
    for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = static_cast<float>(std::cos(0.3 * double(i)));
    tape::current().run_backward();
    for (auto* p : {&q, &k, &v}) out.insert(out.end(), p->grad().begin(), p->grad().end());
    return out;
  };
  CHECK(run(exec::serial{}) == run(exec::tbb{}));

  tape::current().reset();
  parameter<float> q("q", {2, 16, 32});
  no_grad ng;
  dropout_rng rng{1};
  const std::size_t before = tape::current().memory().bytes_in_use();
  const var<float> y = scaled_dot_product_attention(q.use(), q.use(), q.use(), 2, var<float>{}, 0.1, rng, false);
  // The result only: the scores were scratch, released when the op returned.
  CHECK(tape::current().memory().bytes_in_use() - before < 2 * sizeof(float) * static_cast<std::size_t>(y.numel()) + 1024);
  CHECK(rng.counter == 0);  // no dropout in inference, no key drawn
}

TEST_CASE("scaled_dot_product_attention: shape errors name both shapes") {
  tape::current().reset();
  parameter<float> q("q", {2, 4, 6}), k("k", {2, 5, 6}), v("v", {2, 5, 4}), k3("k3", {3, 5, 6});
  dropout_rng rng;
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q.use(), k.use(), v.use(), 2, {}, 0.0, rng, false),
                       doctest::Contains("[2, 5, 4]"), shape_error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q.use(), k3.use(), k3.use(), 2, {}, 0.0, rng, false),
                       doctest::Contains("[3, 5, 6]"), shape_error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q.use(), k.use(), k.use(), 4, {}, 0.0, rng, false),
                       doctest::Contains("heads"), shape_error);
  parameter<float> bad_mask("m", {2, 1, 1, 4});
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q.use(), k.use(), k.use(), 2, constant(bad_mask.value()), 0.0, rng, false),
                       doctest::Contains("[2, 1, 1, 4]"), shape_error);
  CHECK_THROWS_AS(scaled_dot_product_attention(q.use(), k.use(), k.use(), 2, bad_mask.use(), 0.0, rng, false),
                  std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
