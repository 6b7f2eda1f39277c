// embedding module: a [vocab, width] table looked up by integer ids (named `weight` as PyTorch).
#pragma once
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/embedding.hpp"

namespace hybrid::layers {

template <class T = float>
class embedding {
 public:
  using value_type = T;
  embedding() = default;
  embedding(index_t rows, index_t width) : weight_("weight", {rows, width}) {}
  index_t rows() const { return weight_.shape()[0]; }
  index_t width() const { return weight_.shape()[1]; }
  parameter<T>& weight() { return weight_; }
  const parameter<T>& weight() const { return weight_; }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "weight"), weight_);
  }
  void init_normal(std::mt19937& rng, double stddev = 0.02) { hybrid::init_normal(weight_, rng, stddev); }
  // ids laid out as `layout` (e.g. [B, T]) -> [layout..., width]
  var<T> operator()(std::span<const std::int32_t> ids, const hybrid::shape& layout) const {
    return hybrid::embedding(weight_.use(), ids, layout);
  }

 private:
  parameter<T> weight_;
};

}  // namespace hybrid::layers
