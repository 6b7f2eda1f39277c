// The numbers of docs/results.md's emoji section: text (BERT) + image (CNN) + speech (log-mel CNN) on the
// gemojione emoji set, category accuracy of each single modality, of each fusion operator, with modalities
// missing at test time (with and without modality dropout), and multi-task learning (category + keywords).
// Usage: emoji_experiments --group modality|fusion|missing|mtl|all [--epochs N] [--seed S | --seeds 1,2,3]
//                          [--only LABEL] [--quick]
// Prints one markdown table per group on stdout; per-run progress on stderr.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include <hybrid/fuse/concat.hpp>

#include "emoji_experiments.hpp"

namespace emoji_exp {

// Each modality alone: a model with that one encoder, "concat" of one vector (the identity) and the head.
table modality_group(const emoji_data& d, const settings& s) {
  table t{"Single modalities (category accuracy, %)", {"accuracy"}, {}};
  const auto single = [&]<class Encoder, fixed_string Name>(unsigned bit) {
    using net = model<encoders<modality<Name, Encoder>>, fuse::concat, heads<category_head>>;
    add_row<net>(t, subset_name(bit) + " only", d, s, {.modalities = bit}, accuracy_with(d, bit));
  };
  single.template operator()<text_encoder, "text">(text_bit);
  single.template operator()<image_encoder, "image">(image_bit);
  single.template operator()<audio_encoder, "audio">(audio_bit);
  return t;
}

}  // namespace emoji_exp

int main(int argc, char** argv) {
  using namespace emoji_exp;
  std::string group = "all";
  settings s;
  const auto usage = [] {
    std::cerr << "usage: emoji_experiments --group modality|fusion|missing|mtl|all [--epochs N] [--seed S | --seeds 1,2,3]"
                 " [--only LABEL] [--quick]\n";
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const bool more = i + 1 < argc;
    if (!std::strcmp(argv[i], "--group") && more) group = argv[++i];
    else if (!std::strcmp(argv[i], "--epochs") && more) s.epochs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seed") && more) s.seeds = {std::strtoull(argv[++i], nullptr, 10)};
    else if (!std::strcmp(argv[i], "--seeds") && more) {
      s.seeds.clear();
      std::stringstream list(argv[++i]);
      for (std::string x; std::getline(list, x, ',');) s.seeds.push_back(std::strtoull(x.c_str(), nullptr, 10));
    } else if (!std::strcmp(argv[i], "--only") && more) s.only = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) {  // a smoke run: one short epoch's worth, one seed
      s.epochs = 1;
      s.seeds = {1};
    } else return usage();
  }
  if (s.epochs < 1 || s.seeds.empty()) return usage();
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const emoji_data d = load_data();
    std::fprintf(stderr, "emoji: %zu train, %zu test items, %zu voices; loaded with speech features in %.1f s\n",
                 d.set.train.size(), d.set.test.size(), d.voices, d.load_seconds);
    bool any = false;
    const auto run = [&](const char* name, table (*fn)(const emoji_data&, const settings&)) {
      if (group != "all" && group != name) return;
      any = true;
      std::fprintf(stderr, "group %s: %d epochs, %zu seed(s)\n", name, s.epochs, s.seeds.size());
      print_markdown(fn(d, s));
    };
    run("modality", modality_group);
    run("fusion", fusion_group);
    run("missing", missing_group);
    run("mtl", mtl_group);
    if (!any) return usage();
    std::fprintf(stderr, "total %.0f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } catch (const std::exception& e) {
    std::cerr << "emoji_experiments: " << e.what() << "\n";
    return 1;
  }
}
