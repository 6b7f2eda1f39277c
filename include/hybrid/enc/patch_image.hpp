// A ViT-style image encoder: patch embedding (a conv with kernel = stride = patch), a learned [CLS] token
// and position embeddings, pre-LN transformer blocks, a final LayerNorm. Names follow Hugging Face's ViTModel.
#pragma once
#include <vector>

#include "hybrid/autodiff/keep_result.hpp"
#include "hybrid/enc/conv_image.hpp"
#include "hybrid/layers/transformer_block.hpp"

namespace hybrid::enc {

struct patch_image_config {
  index_t size = 32;     // H = W of the input images
  index_t channels = 3;
  index_t patch = 4;     // patch side; size must be a multiple of it
  index_t width = 192;
  index_t layers = 6;
  index_t heads = 3;
  index_t ffn = 768;
  double layer_norm_eps = 1e-6;  // ViT's
  double dropout = 0.0;
  double attention_dropout = 0.0;
};

template <class T = float>
class patch_image_model {
 public:
  using value_type = T;
  using input_type = dense_input;

  patch_image_model() : patch_image_model(patch_image_config{}) {}
  explicit patch_image_model(const patch_image_config& c)
      : cfg_(c), patch_weight_("weight", {c.width, c.channels, c.patch, c.patch}), patch_bias_("bias", {c.width}),
        cls_("cls_token", {1, 1, c.width}), positions_("position_embeddings", {1, 1 + patches(c), c.width}),
        norm_(c.width, c.layer_norm_eps) {
    blocks_.reserve(static_cast<std::size_t>(c.layers));
    for (index_t i = 0; i < c.layers; ++i)
      blocks_.emplace_back(layers::transformer_block_config{.width = c.width, .heads = c.heads, .ffn = c.ffn, .pre_norm = true,
                                                            .layer_norm_eps = c.layer_norm_eps, .dropout = c.dropout,
                                                            .attention_dropout = c.attention_dropout});
    std::mt19937 rng(42);
    init(rng);
    assign_names(*this);
  }

  const patch_image_config& config() const { return cfg_; }
  index_t width() const { return cfg_.width; }
  index_t tokens() const { return 1 + patches(cfg_); }

  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "embeddings.cls_token"), cls_);
    f(join_name(prefix, "embeddings.position_embeddings"), positions_);
    f(join_name(prefix, "embeddings.patch_embeddings.projection.weight"), patch_weight_);
    f(join_name(prefix, "embeddings.patch_embeddings.projection.bias"), patch_bias_);
    for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i].visit(join_name(prefix, "encoder.layer." + std::to_string(i)), f);
    norm_.visit(join_name(prefix, "layernorm"), f);
  }
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    for (std::size_t i = 0; i < blocks_.size(); ++i) f(join_name(prefix, "encoder.layer." + std::to_string(i)), blocks_[i]);
    f(join_name(prefix, "layernorm"), norm_);
  }
  // ViT's recipe: N(0, stddev) for the patch projection, [CLS], positions and every linear weight,
  // zero biases, unit LayerNorm (Hugging Face truncates the normal at 2 sigma; this does not).
  void init(std::mt19937& rng, double stddev = 0.02) {
    init_normal(patch_weight_, rng, stddev);
    init_constant(patch_bias_, 0.0);
    init_normal(cls_, rng, stddev);
    init_normal(positions_, rng, stddev);
    for (auto& b : blocks_) b.init(rng, stddev);
    norm_.init();
  }

  // sequence [B, 1 + patches, width] (token 0 is [CLS]); pooled = the [CLS] token [B, width].
  encoded<T> operator()(const dense_input& in, dropout_rng& rng, bool training = false) const {
    const var<T> images = image_batch<T>("patch_image", in, cfg_.channels, cfg_.size);
    const index_t B = images.dim(0), W = cfg_.width, N = patches(cfg_), L = 1 + N;
    // [B, W, g, g] -> [B, N, W]: patch tokens in row-major patch order.
    const var<T> grid = conv2d(images, patch_weight_.use(), patch_bias_.use(), {.stride = cfg_.patch});
    const var<T> tokens = transpose(reshape(grid, {B, W, N}), 1, 2);
    // [CLS] repeated over the batch (take_rows sums its gradient back), then the position table added
    // as one [L * W] row broadcast over the batch.
    const std::vector<std::int32_t> zeros(static_cast<std::size_t>(B), 0);
    const var<T> cls = reshape(take_rows(reshape(cls_.use(), {1, W}), zeros), {B, 1, W});
    const var<T> e = reshape(var<T>(reshape(concat({cls, tokens}, 1), {B, L * W}) + reshape(positions_.use(), {L * W})), {B, L, W});
    var<T> x = dropout(e, cfg_.dropout, rng, training);
    for (const auto& block : blocks_) x = keep_result([&] { return block(x, rng, training); });  // see bert.hpp
    x = norm_(x);
    return {x, reshape(slice(x, 1, 0, 1), {B, W})};
  }

 private:
  static index_t patches(const patch_image_config& c) {
    if (c.patch < 1 || c.size < c.patch || c.size % c.patch != 0)
      throw std::invalid_argument("patch_image: size " + std::to_string(c.size) + " is not a positive multiple of patch " +
                                  std::to_string(c.patch));
    return (c.size / c.patch) * (c.size / c.patch);
  }

  patch_image_config cfg_;
  parameter<T> patch_weight_, patch_bias_, cls_, positions_;
  std::vector<layers::transformer_block<T>> blocks_;
  layers::layer_norm<T> norm_;
};

// The compile-time form: enc::patch_image<enc::patch_image_config{.size = 32, .patch = 4, .width = 192}>.
template <patch_image_config Config, class T = float>
class patch_image : public patch_image_model<T> {
 public:
  static constexpr index_t width = Config.width;
  static constexpr bool sequence_output = true;
  static constexpr patch_image_config config_value = Config;
  patch_image() : patch_image_model<T>(Config) {}
};

}  // namespace hybrid::enc
