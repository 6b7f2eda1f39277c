// The emoji experiments' missing-modality group (see emoji_experiments.cpp): a fusion trained on all three
// modalities, with and without modality dropout (fuse::with_missing: dropout + learned placeholders),
// evaluated on every non-empty subset of the modalities.
#include <hybrid/fuse/attention_pool.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/fuse/missing.hpp>

#include "emoji_experiments.hpp"

namespace emoji_exp {

table missing_group(const emoji_data& d, const settings& s) {
  // All three first, then the pairs, then the single modalities.
  constexpr unsigned subsets[] = {7, 3, 5, 6, 1, 2, 4};
  table t{"Missing modalities at test time (category accuracy, %, by modalities given)", {}, {}};
  for (unsigned m : subsets) t.columns.push_back(subset_name(m));
  const auto score = [&](auto& net) {
    std::vector<double> acc;
    for (unsigned m : subsets) acc.push_back(evaluate(net, d, m).accuracy);
    return acc;
  };
  constexpr fuse::missing_options dropout{.dropout = 0.3};
  add_row<emoji_net<fuse::concat>>(t, "concat", d, s, {}, score);
  add_row<emoji_net<fuse::with_missing<fuse::concat, dropout>>>(t, "concat + modality dropout 0.3", d, s, {}, score);
  add_row<emoji_net<fuse::attention_pool<width>>>(t, "attention pooling", d, s, {}, score);
  add_row<emoji_net<fuse::with_missing<fuse::attention_pool<width>, dropout>>>(
      t, "attention pooling + modality dropout 0.3", d, s, {}, score);
  return t;
}

}  // namespace emoji_exp
