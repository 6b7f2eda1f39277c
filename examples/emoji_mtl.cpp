// The emoji experiments' multi-task group (see emoji_experiments.cpp): text + image + audio, concat fusion,
// two heads sharing it (8-way category, 32 keywords multilabel); single-task baselines (the same model
// given one task's labels), equal weighting, uncertainty weighting, PCGrad; Delta_p against the baselines.
#include <cmath>
#include <limits>

#include <hybrid/fuse/concat.hpp>
#include <hybrid/mtl/metrics.hpp>
#include <hybrid/mtl/pcgrad.hpp>
#include <hybrid/mtl/surgery.hpp>
#include <hybrid/mtl/weighting.hpp>

#include "emoji_experiments.hpp"

namespace emoji_exp {

table mtl_group(const emoji_data& d, const settings& s) {
  using tasks = heads<category_head, keyword_head>;
  using equal_net = emoji_net<fuse::concat, tasks>;
  using uncertainty_net = emoji_net<fuse::concat, tasks, mtl::uncertainty_weighting>;
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  table t{"Multi-task: category + keywords (category accuracy %, keyword micro-F1 %, Delta_p %)",
          {"category accuracy", "keyword micro-F1", "Δp"}, {}};
  const auto score = [&](auto& net) {
    const scores r = evaluate(net, d, all_modalities);
    return std::vector<double>{r.accuracy, r.keyword_f1, nan};
  };
  add_row<equal_net>(t, "single-task: category", d, s, {.category = true, .keywords = false}, score);
  add_row<equal_net>(t, "single-task: keywords", d, s, {.category = false, .keywords = true}, score);
  const run_options both{.category = true, .keywords = true};
  add_row<equal_net>(t, "equal weighting", d, s, both, score);
  add_row<uncertainty_net>(t, "uncertainty weighting", d, s, both, score);
  // PCGrad on the shared parameters (encoders + fusion), exact per-task gradients (one forward, 2 backward).
  add_row<equal_net>(t, "PCGrad (equal weights)", d, s, both, score, [](std::uint64_t seed) {
    return [pc = mtl::surgery<mtl::pcgrad>(mtl::pcgrad(seed))](equal_net& m, const auto& out, const batch& b) mutable {
      pc.backward(m, out, b);
    };
  });

  // Delta_p per seed against the same seed's single-task runs (category from one, keywords from the other);
  // the single-task rows' other task is untrained, so their cells for it are left out.
  const auto find = [&](const std::string& label) -> table::row* {
    for (auto& r : t.rows)
      if (r.label == label) return &r;
    return nullptr;
  };
  table::row *st_cat = find("single-task: category"), *st_kw = find("single-task: keywords");
  if (st_cat)
    for (auto& run : st_cat->runs) run[1] = nan;
  if (st_kw)
    for (auto& run : st_kw->runs) run[0] = nan;
  if (st_cat && st_kw)
    for (auto& r : t.rows) {
      if (&r == st_cat || &r == st_kw) continue;
      for (std::size_t i = 0; i < r.runs.size(); ++i) {
        const mtl::task_metric m[] = {{r.runs[i][0], st_cat->runs[i][0], false}, {r.runs[i][1], st_kw->runs[i][1], false}};
        if (m[0].single_task > 0 && m[1].single_task > 0) r.runs[i][2] = mtl::delta_p(m);  // else undefined
      }
    }
  return t;
}

}  // namespace emoji_exp
