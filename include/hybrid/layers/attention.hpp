// Multi-head attention (queries from one sequence, keys/values from another; self-attention when
// they are the same), with an additive padding mask. Parameter names follow BERT's BertAttention.
#pragma once
#include "hybrid/layers/linear.hpp"
#include "hybrid/ops/attention.hpp"
#include "hybrid/ops/shape_ops.hpp"

namespace hybrid::layers {

// [B, T, heads*d] -> [B, heads, T, d]
template <class T>
var<T> split_heads(const var<T>& x, index_t heads) {
  const index_t B = x.dim(0), L = x.dim(1), H = x.dim(2);
  return permute(reshape(x, {B, L, heads, H / heads}), {0, 2, 1, 3});
}
// [B, heads, T, d] -> [B, T, heads*d]
template <class T>
var<T> merge_heads(const var<T>& x) {
  const index_t B = x.dim(0), NH = x.dim(1), L = x.dim(2), D = x.dim(3);
  return reshape(permute(x, {0, 2, 1, 3}), {B, L, NH * D});
}

// BERT's extended attention mask: [B, T] of 1 (keep) / 0 (pad) -> additive [B, 1, 1, T] of 0 / -10000.
template <class T>
var<T> additive_padding_mask(std::span<const float> keep, index_t batch, index_t len) {
  if (static_cast<index_t>(keep.size()) != batch * len)
    throw shape_error("additive_padding_mask: " + std::to_string(keep.size()) + " mask values for [" +
                      std::to_string(batch) + ", " + std::to_string(len) + "]");
  var<T> m = make_result<T>({batch, 1, 1, len}, false);
  for (index_t i = 0; i < batch * len; ++i) m.data()[i] = keep[static_cast<std::size_t>(i)] != 0 ? T(0) : T(-10000);
  return m;
}

template <class T = float>
class attention {
 public:
  using value_type = T;
  attention() = default;
  attention(index_t width, index_t heads, double dropout = 0.1)
      : heads_(heads), dropout_(dropout), query_(width, width), key_(width, width), value_(width, width),
        output_(width, width) {
    if (heads <= 0 || width % heads != 0)
      throw std::invalid_argument("attention: width " + std::to_string(width) + " is not a multiple of heads " +
                                  std::to_string(heads));
  }
  index_t width() const { return query_.in_features(); }
  index_t heads() const { return heads_; }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    query_.visit(join_name(prefix, "self.query"), f);
    key_.visit(join_name(prefix, "self.key"), f);
    value_.visit(join_name(prefix, "self.value"), f);
    output_.visit(join_name(prefix, "output.dense"), f);
  }
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    f(join_name(prefix, "self.query"), query_);
    f(join_name(prefix, "self.key"), key_);
    f(join_name(prefix, "self.value"), value_);
    f(join_name(prefix, "output.dense"), output_);
  }
  void init_bert(std::mt19937& rng) {
    for (auto* l : {&query_, &key_, &value_, &output_}) l->init_bert(rng);
  }

  // queries [B, Tq, W], keys_values [B, Tk, W], mask additive, broadcast to [B, heads, Tq, Tk] (or empty).
  // Returns the output projection of the context, plus `residual` when given (the block's skip connection, added
  // inside the projection's product in inference), before any LayerNorm. `probabilities`, when given, receives
  // the attention probabilities [B, heads, Tq, Tk] (before dropout).
  var<T> operator()(const var<T>& queries, const var<T>& keys_values, const var<T>& mask, dropout_rng& rng,
                    bool training, tensor<T>* probabilities = nullptr, const var<T>* residual = nullptr) const {
    if (queries.rank() != 3 || keys_values.rank() != 3 || queries.dim(0) != keys_values.dim(0))
      throw shape_error("attention", "queries", queries.shape(), "keys/values", keys_values.shape(),
                        "need [B, T, width] with equal B");
    const var<T> q = query_(queries, rng, training), k = key_(keys_values, rng, training),
                 v = value_(keys_values, rng, training);
    return output_.apply(scaled_dot_product_attention(q, k, v, heads_, mask, dropout_, rng, training, probabilities),
                         activation::identity, &rng, training, residual);
  }

 private:
  index_t heads_ = 1;
  double dropout_ = 0.1;
  linear<T> query_, key_, value_, output_;
};

}  // namespace hybrid::layers
