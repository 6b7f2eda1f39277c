// The emoji experiments' fusion group, second half (see emoji_fusion.cpp): cross-modal attention, tensor
// and low-rank fusion, Bayesian late fusion.
#include <hybrid/fuse/bayes.hpp>
#include <hybrid/fuse/cross_attention.hpp>
#include <hybrid/fuse/low_rank.hpp>
#include <hybrid/fuse/tensor.hpp>

#include "emoji_experiments.hpp"

namespace emoji_exp {

void add_interaction_fusion_rows(table& t, const emoji_data& d, const settings& s) {
  const auto score = accuracy_with(d, all_modalities);
  add_row<emoji_net<fuse::cross_attention<width, fuse::cross_attention_config{.query = 0, .heads = 2}>>>(
      t, "cross-attention (text tokens query)", d, s, {}, score);
  add_row<emoji_net<fuse::tensor_fusion<width, 8>>>(t, "tensor fusion (P = 8)", d, s, {}, score);
  add_row<emoji_net<fuse::low_rank<width, 4>>>(t, "low-rank (R = 4)", d, s, {}, score);
  // The product of experts is the prediction itself: a head without a linear layer (see fuse/bayes.hpp).
  using bayes_head = head::classify<"category", categories, head::classify_options{.linear = false}>;
  add_row<emoji_net<fuse::bayes<categories>, heads<bayes_head>>>(t, "Bayesian late fusion", d, s, {}, score);
}

}  // namespace emoji_exp
