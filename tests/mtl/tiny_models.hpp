// Tiny encoders and batches for the multi-task and head tests: fast to compile and to run, so every
// test can train or gradient-check a whole model.
#pragma once
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>
#include <hybrid/ops/reduce.hpp>

namespace tiny {
using namespace hybrid;

template <class T>
var<T> input_of(const enc::dense_input& in) {
  tensor<T> x(in.values.shape());
  std::copy(in.values.begin(), in.values.end(), x.begin());
  return constant(x);
}

// pooled = tanh(x W^T + b), x [B, In]; no sequence.
template <index_t In, index_t Width, class T = double>
struct dense_encoder {
  using value_type = T;
  using input_type = enc::dense_input;
  static constexpr index_t width = Width;
  static constexpr bool sequence_output = false;
  layers::linear<T> proj{In, Width};
  dense_encoder() {
    std::mt19937 rng(In * 31 + Width);
    proj.init(rng);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    proj.visit(join_name(prefix, "proj"), f);
  }
  enc::encoded<T> operator()(const enc::dense_input& in, dropout_rng&, bool) const {
    return {{}, proj(input_of<T>(in), [](const auto& z) { return tanh(z); })};
  }
};

// sequence = tanh(x W^T + b) for x [B, L, In]; pooled = its mean over L.
template <index_t In, index_t Width, class T = double>
struct sequence_encoder {
  using value_type = T;
  using input_type = enc::dense_input;
  static constexpr index_t width = Width;
  static constexpr bool sequence_output = true;
  layers::linear<T> proj{In, Width};
  sequence_encoder() {
    std::mt19937 rng(In * 37 + Width);
    proj.init(rng);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    proj.visit(join_name(prefix, "proj"), f);
  }
  enc::encoded<T> operator()(const enc::dense_input& in, dropout_rng&, bool) const {
    var<T> seq = proj(input_of<T>(in), [](const auto& z) { return tanh(z); });
    return {seq, mean(seq, 1)};
  }
};

inline tensor<float> random_tensor(const shape& s, unsigned seed, double lo = -1, double hi = 1) {
  tensor<float> t(s);
  std::mt19937 rng(seed);
  fill_uniform(t, rng, lo, hi);
  return t;
}

template <class M>
void randomize(M& m, unsigned seed, double scale = 0.5) {
  std::mt19937 rng(seed);
  for (auto* p : parameters_of(m))
    if (p->trainable()) fill_uniform(p->value(), rng, -scale, scale);
}

// The largest absolute difference between two sets of gradients.
template <class T>
double max_abs_difference(const std::vector<std::vector<T>>& a, const std::vector<std::vector<T>>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) d = std::max(d, double(std::abs(a[i][j] - b[i][j])));
  return d;
}

template <class M>
std::vector<std::vector<typename M::value_type>> gradients_of(M& m) {
  std::vector<std::vector<typename M::value_type>> g;
  for (auto* p : parameters_of(m)) g.emplace_back(p->grad().begin(), p->grad().end());
  return g;
}

// Two modalities, two tasks (3-way classification and 2-output regression); Options... are the model's
// weighting and tower options.
template <class... Options>
using two_task = model<encoders<modality<"a", dense_encoder<4, 5>>, modality<"b", dense_encoder<3, 3>>>, fuse::concat,
                       heads<head::classify<"topic", 3>, head::regress<"score", 2>>, Options...>;

// A learnable batch: topic = the argmax of a fixed projection of a, score = fixed smooth functions of b.
inline batch two_task_batch(index_t n, unsigned seed) {
  batch b;
  b.size = n;
  const tensor<float> xa = random_tensor({n, 4}, seed), xb = random_tensor({n, 3}, seed + 1);
  b.inputs["a"] = {enc::dense_input{xa}, {}};
  b.inputs["b"] = {enc::dense_input{xb}, {}};
  head::task_labels topic, score;
  score.values = tensor<float>({n, 2});
  for (index_t i = 0; i < n; ++i) {
    const float z[3] = {xa(i, 0) + xa(i, 1), xa(i, 2) - xa(i, 0), 0.5f * xa(i, 3)};
    topic.classes.push_back(static_cast<std::int32_t>(std::max_element(z, z + 3) - z));
    score.values(i, 0) = std::sin(2 * xb(i, 0)) + 0.5f * xb(i, 1);
    score.values(i, 1) = xb(i, 2) * xb(i, 1);
  }
  b.labels["topic"] = topic;
  b.labels["score"] = score;
  return b;
}

}  // namespace tiny
