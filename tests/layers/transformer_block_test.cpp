// transformer_block: pre-LN against a naive re-statement, post-LN with generic names identical to BertLayer
// names, cross-attention, gradients (finite differences, both norms, both activations, with masks), errors.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/layers/transformer_block.hpp>
#include <hybrid/ops/shape_ops.hpp>
#include <limits>
#include <map>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
using mat = std::vector<std::vector<double>>;  // [rows][cols]

mat linear_ref(const mat& x, const tensor<double>& w, const tensor<double>& b) {
  mat y(x.size(), std::vector<double>(static_cast<std::size_t>(w.dim(0))));
  for (std::size_t r = 0; r < x.size(); ++r)
    for (index_t o = 0; o < w.dim(0); ++o) {
      double s = b[o];
      for (index_t i = 0; i < w.dim(1); ++i) s += x[r][static_cast<std::size_t>(i)] * w(o, i);
      y[r][static_cast<std::size_t>(o)] = s;
    }
  return y;
}
mat layer_norm_ref(const mat& x, const tensor<double>& g, const tensor<double>& b, double eps) {
  mat y = x;
  for (std::size_t r = 0; r < x.size(); ++r) {
    const double n = double(x[r].size());
    double mu = 0, var = 0;
    for (double v : x[r]) mu += v / n;
    for (double v : x[r]) var += (v - mu) * (v - mu) / n;
    for (std::size_t c = 0; c < x[r].size(); ++c)
      y[r][c] = (x[r][c] - mu) / std::sqrt(var + eps) * g[index_t(c)] + b[index_t(c)];
  }
  return y;
}
mat add(mat a, const mat& b) {
  for (std::size_t r = 0; r < a.size(); ++r)
    for (std::size_t c = 0; c < a[r].size(); ++c) a[r][c] += b[r][c];
  return a;
}

// The pre-LN block on one sequence x [T][W], written out from the definition; keep[t] masks keys.
mat pre_ln_block_ref(const mat& x, std::map<std::string, parameter<double>*>& p, index_t heads, double eps,
                     const std::vector<float>& keep) {
  auto P = [&](const std::string& n) -> const tensor<double>& { return p.at(n)->value(); };
  const mat h1 = layer_norm_ref(x, P("norm1.weight"), P("norm1.bias"), eps);
  const mat q = linear_ref(h1, P("attention.self.query.weight"), P("attention.self.query.bias"));
  const mat k = linear_ref(h1, P("attention.self.key.weight"), P("attention.self.key.bias"));
  const mat v = linear_ref(h1, P("attention.self.value.weight"), P("attention.self.value.bias"));
  const std::size_t T = x.size(), W = x[0].size(), D = W / std::size_t(heads);
  mat ctx(T, std::vector<double>(W, 0.0));
  for (std::size_t hd = 0; hd < std::size_t(heads); ++hd)
    for (std::size_t i = 0; i < T; ++i) {
      std::vector<double> s(T);
      double mx = -1e300, z = 0;
      for (std::size_t j = 0; j < T; ++j) {
        double d = 0;
        for (std::size_t c = 0; c < D; ++c) d += q[i][hd * D + c] * k[j][hd * D + c];
        s[j] = d / std::sqrt(double(D)) + (keep[j] != 0 ? 0.0 : -10000.0);
        mx = std::max(mx, s[j]);
      }
      for (double& e : s) z += (e = std::exp(e - mx));
      for (std::size_t j = 0; j < T; ++j)
        for (std::size_t c = 0; c < D; ++c) ctx[i][hd * D + c] += s[j] / z * v[j][hd * D + c];
    }
  const mat h = add(linear_ref(ctx, P("attention.output.dense.weight"), P("attention.output.dense.bias")), x);
  mat a = linear_ref(layer_norm_ref(h, P("norm2.weight"), P("norm2.bias"), eps), P("mlp.fc1.weight"), P("mlp.fc1.bias"));
  for (auto& row : a)
    for (double& e : row) e = 0.5 * e * (1 + std::erf(e / std::sqrt(2.0)));
  return add(linear_ref(a, P("mlp.fc2.weight"), P("mlp.fc2.bias")), h);
}

template <class M>
std::map<std::string, parameter<double>*> randomize(M& m, std::mt19937& rng, double scale = 0.8) {
  std::map<std::string, parameter<double>*> ps;
  m.visit("", [&](const std::string& n, parameter<double>& p) {
    fill_uniform(p.value(), rng, -scale, scale);
    ps[n] = &p;
  });
  return ps;
}
std::vector<parameter<double>*> values_of(const std::map<std::string, parameter<double>*>& m) {
  std::vector<parameter<double>*> v;
  for (auto& [n, p] : m) v.push_back(p);
  return v;
}
}  // namespace

TEST_CASE("transformer_block parameter names and count") {
  layers::transformer_block<float> b({.width = 8, .heads = 2, .ffn = 12});
  std::vector<std::string> names;
  b.visit("blocks.0", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  const std::vector<std::string> want{"blocks.0.norm1.weight", "blocks.0.norm1.bias",
                                      "blocks.0.attention.self.query.weight", "blocks.0.attention.self.query.bias",
                                      "blocks.0.attention.self.key.weight", "blocks.0.attention.self.key.bias",
                                      "blocks.0.attention.self.value.weight", "blocks.0.attention.self.value.bias",
                                      "blocks.0.attention.output.dense.weight", "blocks.0.attention.output.dense.bias",
                                      "blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight",
                                      "blocks.0.mlp.fc1.bias", "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias"};
  CHECK(names == want);
  CHECK(count_parameters(b) == 4 * 8 + 4 * (8 * 8 + 8) + (12 * 8 + 12) + (8 * 12 + 8));
  std::vector<std::string> modules;
  b.visit_modules("blocks.0", [&](const std::string& n, auto&) { modules.push_back(n); });
  CHECK(modules == std::vector<std::string>{"blocks.0.norm1", "blocks.0.attention", "blocks.0.norm2", "blocks.0.mlp.fc1",
                                            "blocks.0.mlp.fc2"});
}

TEST_CASE("pre-LN block matches a naive re-statement (with a padding mask)") {
  tape::current().reset();
  layers::transformer_block<double> blk({.width = 6, .heads = 2, .ffn = 10, .pre_norm = true, .layer_norm_eps = 1e-6});
  std::mt19937 rng(1);
  auto ps = randomize(blk, rng);
  parameter<double> x("x", {2, 4, 6});
  fill_uniform(x.value(), rng, -2, 2);
  const std::vector<float> keep{1, 1, 1, 1, 1, 1, 0, 0};
  dropout_rng drng;
  var<double> y = blk(x.use(), layers::additive_padding_mask<double>(keep, 2, 4), drng, false);
  REQUIRE(y.shape() == hybrid::shape{2, 4, 6});
  for (index_t b = 0; b < 2; ++b) {
    mat xb(4, std::vector<double>(6));
    for (index_t t = 0; t < 4; ++t)
      for (index_t c = 0; c < 6; ++c) xb[std::size_t(t)][std::size_t(c)] = x.value()(b, t, c);
    const mat want = pre_ln_block_ref(xb, ps, 2, 1e-6, std::vector<float>(keep.begin() + b * 4, keep.begin() + b * 4 + 4));
    for (index_t t = 0; t < 4; ++t)
      for (index_t c = 0; c < 6; ++c)
        CHECK(y[(b * 4 + t) * 6 + c] == doctest::Approx(want[std::size_t(t)][std::size_t(c)]).epsilon(1e-12));
  }
}

TEST_CASE("post-LN block with BertLayer names (enc::bert's block): same outputs as with generic names") {
  tape::current().reset();
  const enc::bert_config bc{.hidden = 8, .heads = 2, .ffn = 12, .layer_norm_eps = 1e-12};
  enc::bert_block<double> bert(enc::bert_block_config(bc));
  std::vector<std::string> bert_names;
  bert.visit("", [&](const std::string& n, parameter<double>&) { bert_names.push_back(n); });
  CHECK(bert_names == std::vector<std::string>{"attention.self.query.weight", "attention.self.query.bias",
                                               "attention.self.key.weight", "attention.self.key.bias",
                                               "attention.self.value.weight", "attention.self.value.bias",
                                               "attention.output.dense.weight", "attention.output.dense.bias",
                                               "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                                               "intermediate.dense.weight", "intermediate.dense.bias",
                                               "output.dense.weight", "output.dense.bias",
                                               "output.LayerNorm.weight", "output.LayerNorm.bias"});
  layers::transformer_block<double> blk(
      {.width = 8, .heads = 2, .ffn = 12, .pre_norm = false, .layer_norm_eps = 1e-12, .dropout = 0.1, .attention_dropout = 0.1});
  std::mt19937 rng(2);
  auto ours = randomize(blk, rng);
  const std::map<std::string, std::string> from_bert{
      {"attention.output.LayerNorm", "norm1"}, {"intermediate.dense", "mlp.fc1"}, {"output.dense", "mlp.fc2"},
      {"output.LayerNorm", "norm2"}};
  int copied = 0;
  bert.visit("", [&](const std::string& n, parameter<double>& p) {
    std::string mine = n;
    for (auto& [b, o] : from_bert)
      if (n.rfind(b + ".", 0) == 0) mine = o + n.substr(b.size());
    REQUIRE(ours.count(mine) == 1);
    p.value() = ours.at(mine)->value().clone();
    ++copied;
  });
  CHECK(copied == 16);
  parameter<double> x("x", {2, 5, 8});
  fill_uniform(x.value(), rng, -2, 2);
  const std::vector<float> keep{1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  const var<double> mask = layers::additive_padding_mask<double>(keep, 2, 5);
  for (bool training : {false, true}) {
    CAPTURE(training);
    dropout_rng r1{7}, r2{7};
    var<double> a = blk(x.use(), mask, r1, training), b = bert(x.use(), mask, r2, training);
    CHECK(std::equal(a.values().begin(), a.values().end(), b.values().begin()));
  }
}

TEST_CASE("transformer_block gradients match finite differences") {
  std::mt19937 rng(3);
  parameter<double> x("x", {2, 3, 4});
  fill_uniform(x.value(), rng, -2, 2);
  const std::vector<float> keep{1, 1, 1, 1, 1, 0};
  for (bool pre : {true, false})
    for (auto act : {layers::activation::gelu, layers::activation::relu}) {
      CAPTURE(pre);
      CAPTURE(int(act));
      layers::transformer_block<double> blk({.width = 4, .heads = 2, .ffn = 5, .pre_norm = pre, .act = act});
      auto ps = values_of(randomize(blk, rng));
      ps.push_back(&x);
      dropout_rng drng;
      auto r = check_gradients([&] { return blk(x.use(), layers::additive_padding_mask<double>(keep, 2, 3), drng, false); },
                               ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
      INFO(r.report());
      CHECK(r.ok);
    }
}

TEST_CASE("transformer_block as a cross-attention block: memory = x is self-attention (post-LN); masked memory "
          "tokens are as if absent; gradients") {
  tape::current().reset();
  std::mt19937 rng(5);
  for (bool pre : {true, false}) {
    CAPTURE(pre);
    layers::transformer_block<double> blk({.width = 4, .heads = 2, .ffn = 6, .pre_norm = pre});
    auto ps = values_of(randomize(blk, rng));
    parameter<double> x("x", {2, 3, 4}), memory("memory", {2, 5, 4});
    fill_uniform(x.value(), rng, -2, 2);
    fill_uniform(memory.value(), rng, -2, 2);
    dropout_rng drng;
    {
      no_grad ng;
      // Post-LN: memory = x is exactly self-attention. (Pre-LN normalises the queries only, so there
      // self-attention reads norm1(x) as memory, cross-attention the memory as given.)
      const var<double> self = blk(x.use(), drng, false), cross = blk(x.use(), x.use(), var<double>{}, drng, false);
      if (!pre) CHECK(std::equal(self.values().begin(), self.values().end(), cross.values().begin()));
      // -inf on memory tokens 3 and 4 == a memory of tokens 0..2 only.
      const std::vector<float> keep{1, 1, 1, 0, 0, 1, 1, 1, 0, 0};
      tensor<double> mask({2, 1, 1, 5});
      for (index_t i = 0; i < 10; ++i) mask[i] = keep[std::size_t(i)] ? 0.0 : -std::numeric_limits<double>::infinity();
      const var<double> masked = blk(x.use(), memory.use(), constant(mask), drng, false);
      const var<double> shorter = blk(x.use(), slice(memory.use(), 1, 0, 3), var<double>{}, drng, false);
      REQUIRE(masked.shape() == hybrid::shape{2, 3, 4});
      for (index_t i = 0; i < masked.numel(); ++i) CHECK(masked.data()[i] == doctest::Approx(shorter.data()[i]).epsilon(1e-12));
    }
    ps.push_back(&x);
    ps.push_back(&memory);
    auto r = check_gradients([&] { return blk(x.use(), memory.use(), var<double>{}, drng, false); }, ps,
                             {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
    INFO(r.report());
    CHECK(r.ok);
  }
}

TEST_CASE("transformer_block: dropout only in training; errors") {
  tape::current().reset();
  layers::transformer_block<float> blk({.width = 8, .heads = 2, .ffn = 16, .dropout = 0.5});
  std::mt19937 rng(4);
  blk.init(rng);
  parameter<float> x("x", {2, 3, 8});
  fill_uniform(x.value(), rng);
  dropout_rng drng{1};
  var<float> e1 = blk(x.use(), drng, false), e2 = blk(x.use(), drng, false), t = blk(x.use(), drng, true);
  CHECK(std::equal(e1.values().begin(), e1.values().end(), e2.values().begin()));
  CHECK(drng.counter == 2);  // two dropout sites drew masks in the one training call
  CHECK_FALSE(std::equal(e1.values().begin(), e1.values().end(), t.values().begin()));

  parameter<float> bad("bad", {2, 3, 6});
  CHECK_THROWS_WITH_AS(blk(bad.use(), drng, false), doctest::Contains("[2, 3, 6]"), shape_error);
  CHECK_THROWS_AS(layers::transformer_block<float>({.width = 6, .heads = 4}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
