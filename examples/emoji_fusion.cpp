// The emoji experiments' fusion group (see emoji_experiments.cpp): text + image + audio through each fusion
// operator into the category head; the additive and attention-style operators here, the interaction-style
// ones in emoji_fusion_interactions.cpp (two translation units: each model type costs compile time).
#include <hybrid/fuse/attention_pool.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/fuse/film.hpp>
#include <hybrid/fuse/gated.hpp>

#include "emoji_experiments.hpp"

namespace emoji_exp {

table fusion_group(const emoji_data& d, const settings& s) {
  table t{"Fusion operators, text + image + audio (category accuracy, %)", {"accuracy"}, {}};
  const auto score = accuracy_with(d, all_modalities);
  add_row<emoji_net<fuse::concat>>(t, "concat", d, s, {}, score);
  add_row<emoji_net<fuse::mean<width>>>(t, "mean", d, s, {}, score);
  add_row<emoji_net<fuse::gated<width>>>(t, "gated (GMU, softmax gates)", d, s, {}, score);
  add_row<emoji_net<fuse::film<width, 0>>>(t, "FiLM (image, audio modulate text)", d, s, {}, score);
  add_row<emoji_net<fuse::attention_pool<width>>>(t, "attention pooling", d, s, {}, score);
  add_interaction_fusion_rows(t, d, s);
  return t;
}

}  // namespace emoji_exp
