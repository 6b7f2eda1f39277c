// Cross-modal attention: gradients, values against a naive multi-head reference with absent samples'
// keys masked, pooled-only modalities as one token, every subset of modalities.
#include <hybrid/fuse/cross_attention.hpp>

#include "fusion_testing.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace fusion_testing;

namespace {
constexpr fuse::cross_attention_config tiny{.heads = 2, .ffn = 6, .dropout = 0, .attention_dropout = 0};
constexpr fuse::cross_attention_config tiny_mean{.query = 1, .heads = 2, .ffn = 5, .pool = fuse::cross_pool::mean,
                                                 .dropout = 0, .attention_dropout = 0};

using row = std::vector<double>;
row affine(const parameter<double>& w, const parameter<double>& b, const row& x) {
  row y(static_cast<std::size_t>(w.shape()[0]));
  for (index_t o = 0; o < w.shape()[0]; ++o) {
    double s = b.value()[o];
    for (index_t i = 0; i < w.shape()[1]; ++i) s += w.value()(o, i) * x[static_cast<std::size_t>(i)];
    y[static_cast<std::size_t>(o)] = s;
  }
  return y;
}
row norm(const parameter<double>& g, const parameter<double>& b, const row& x) {
  double mu = 0, var = 0;
  for (double v : x) mu += v;
  mu /= double(x.size());
  for (double v : x) var += (v - mu) * (v - mu);
  var /= double(x.size());
  row y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    y[i] = (x[i] - mu) / std::sqrt(var + 1e-12) * g.value()[index_t(i)] + b.value()[index_t(i)];
  return y;
}
}  // namespace

static_assert(fuse::fusion_op<fuse::cross_attention<4, tiny>::op<double, 4, 3>, double>);

TEST_CASE("cross_attention: names and gradients (sequences, pooled-only keys, absent samples, both poolings)") {
  fuse::cross_attention<4, tiny>::op<double, 4, 2, 4> f;
  const auto names = names_of(f);
  CHECK(names.front() == "fusion.kv_proj.1.weight");
  CHECK(names[2] == "fusion.attention.self.query.weight");
  CHECK(names.back() == "fusion.output.LayerNorm.bias");
  CHECK(names.size() == 2 + 8 + 2 + 2 + 2 + 2);
  inputs<double> in(3, {4, 2, 4}, {3, 2, 0});
  in.present[1] = {1, 0, 1};
  in.present[2] = {1, 0, 0};  // sample 1 has no key at all
  in.present[0] = {1, 1, 0};  // sample 2 has no query modality
  std::mt19937 rng(7);  // weights larger than BERT's 0.02 init, so the attention is far from uniform
  for (auto* p : parameters_of(f)) fill_uniform(p->value(), rng, -0.5, 0.5);
  check_fusion_gradients(f, in);
  fuse::cross_attention<4, tiny_mean>::op<double, 3, 4> g;
  inputs<double> in2(2, {3, 4}, {2, 3});
  in2.present[0] = {0, 1};
  check_fusion_gradients(g, in2);
}

TEST_CASE("cross_attention: values against a naive multi-head reference") {
  fuse::cross_attention<4, tiny>::op<double, 4, 2, 4> f;
  std::mt19937 rng(3);
  for (auto* p : parameters_of(f)) fill_uniform(p->value(), rng, -0.7, 0.7);
  inputs<double> in(3, {4, 2, 4}, {3, 2, 0}, 8);
  in.present[1] = {1, 0, 1};
  in.present[2] = {1, 0, 0};
  tape::current().reset();
  no_grad ng;
  const tensor<double> got = run(f, in).value();
  auto ps = parameters_of(f);
  // kv_proj.1 (w, b), query, key, value, output.dense, attention LN, intermediate, output, output LN.
  const auto &pw = *ps[0], &pb = *ps[1], &qw = *ps[2], &qb = *ps[3], &kw = *ps[4], &kb = *ps[5], &vw = *ps[6],
             &vb = *ps[7], &ow = *ps[8], &ob = *ps[9], &n1g = *ps[10], &n1b = *ps[11], &iw = *ps[12], &ib = *ps[13],
             &fw = *ps[14], &fb = *ps[15], &n2g = *ps[16], &n2b = *ps[17];
  for (index_t b = 0; b < 3; ++b) {
    row x(4);  // the first query token (what the pooling keeps; queries do not interact)
    for (index_t c = 0; c < 4; ++c) x[std::size_t(c)] = in.sequence[0].value()(b, 0, c);
    std::vector<row> keys;  // modality 1's two tokens projected, then modality 2's pooled vector
    std::vector<bool> keep;
    for (index_t t = 0; t < 2; ++t) {
      keys.push_back(affine(pw, pb, {in.sequence[1].value()(b, t, 0), in.sequence[1].value()(b, t, 1)}));
      keep.push_back(in.present[1][std::size_t(b)] != 0);
    }
    row k2(4);
    for (index_t c = 0; c < 4; ++c) k2[std::size_t(c)] = in.pooled[2].value()(b, c);
    keys.push_back(k2);
    keep.push_back(in.present[2][std::size_t(b)] != 0);
    const row q = affine(qw, qb, x);
    row ctx(4, 0.0);
    for (int h = 0; h < 2; ++h) {
      std::vector<double> w(keys.size(), 0.0);
      double top = -1e300, total = 0;
      for (std::size_t j = 0; j < keys.size(); ++j) {
        if (!keep[j]) continue;
        const row k = affine(kw, kb, keys[j]);
        w[j] = (q[std::size_t(2 * h)] * k[std::size_t(2 * h)] + q[std::size_t(2 * h + 1)] * k[std::size_t(2 * h + 1)]) /
               std::sqrt(2.0);
        top = std::max(top, w[j]);
      }
      for (std::size_t j = 0; j < keys.size(); ++j) total += keep[j] ? std::exp(w[j] - top) : 0.0;
      for (std::size_t j = 0; j < keys.size(); ++j) {
        if (!keep[j]) continue;
        const row v = affine(vw, vb, keys[j]);
        const double p = std::exp(w[j] - top) / total;
        for (int d = 0; d < 2; ++d) ctx[std::size_t(2 * h + d)] += p * v[std::size_t(2 * h + d)];
      }
    }
    row a = affine(ow, ob, ctx);  // sample 1 has no key at all: a zero context
    for (std::size_t c = 0; c < 4; ++c) a[c] += x[c];
    const row h1 = norm(n1g, n1b, a);
    row inter = affine(iw, ib, h1);
    for (double& v : inter) v = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    row out = affine(fw, fb, inter);
    for (std::size_t c = 0; c < 4; ++c) out[c] += h1[c];
    const row want = norm(n2g, n2b, out);
    for (index_t c = 0; c < 4; ++c) CHECK(got(b, c) == doctest::Approx(want[std::size_t(c)]).epsilon(1e-10));
  }
}

TEST_CASE("cross_attention: every subset of modalities gives a valid output that ignores absent inputs") {
  fuse::cross_attention<4, tiny>::op<float, 4, 3, 4> f;
  inputs<float> in(8, {4, 3, 4}, {3, 2, 0});
  check_subsets_and_invariance(f, in);
  fuse::cross_attention<4, tiny_mean>::op<float, 2, 4, 4> g;
  inputs<float> in2(8, {2, 4, 4}, {0, 3, 2});
  check_subsets_and_invariance(g, in2);
}

TEST_CASE("cross_attention: dropout in training is deterministic from the dropout stream") {
  constexpr fuse::cross_attention_config drop{.heads = 2, .ffn = 6, .dropout = 0.3, .attention_dropout = 0.2};
  fuse::cross_attention<4, drop>::op<float, 4, 4> f;
  inputs<float> in(2, {4, 4}, {3, 2});
  tape::current().reset();
  no_grad ng;
  const tensor<float> a = run(f, in, true, 5).value(), b = run(f, in, true, 5).value(), c = run(f, in, false).value();
  bool differs = false;
  for (index_t i = 0; i < a.numel(); ++i) {
    CHECK(a[i] == b[i]);
    differs = differs || a[i] != c[i];
  }
  CHECK(differs);
}

}  // namespace HYBRID_TEST_UNIT
