// Whole-model benchmarks of issue 7, hybrid's side (bench/torch_models.py is PyTorch's):
//   bert_train      BERT-mini (vocab 30522, hidden 256, 4 layers, 4 heads, ffn 1024, dropout 0.1) + a 2-class
//                   head on the pooled output (pipeline::sequence_classifier), cross-entropy, backward, AdamW
//                   step; batch 16, seq 128, random token ids, full attention mask.
//   bert_infer_b1   the same encoder (sequence output + pooler), no_grad, weights prepacked, batch 1, seq 128.
//   bert_infer_b16  the same at batch 16.
//   multimodal      model<encoders<text: 2-layer BERT of the same width, image: conv_image on 32x32x3>,
//                   fuse::gated<256>, heads<classify<"cls", 10>, regress<"reg", 1>>>: one training step
//                   (forward, summed losses, backward, AdamW); batch 32, text seq 32.
//
// One process measures one case at one thread count, so its peak RSS is that configuration's:
//   model_bench --case=bert_train --threads=1 [--warmup=2] [--reps=7] [--impl=LABEL (default hybrid)]
// prints a `RESULT ...` line (and a human-readable summary on stderr). bench/run.sh collects the lines of
// both sides and hands them to
//   model_bench --report --peak1=GFLOPS --peak-all=GFLOPS < results
// which prints one Markdown table per case, and after it the case's alternating pairs (RESULT lines with pair=K:
// run.sh runs hybrid's default configuration and PyTorch's fastest row, which `model_bench --fastest < results`
// names, one right after the other a few times, so a slow or fast minute of the VM hits both sides), then a
// summary of both readings. 1-thread rows are judged by thread CPU time, 2-thread rows by wall time (see
// bench_util.hpp and docs/performance.md).
#include <tbb/global_control.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <hybrid/backend/gemm.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/enc/conv_image.hpp>
#include <hybrid/fuse/gated.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/optim/adam.hpp>
#include <hybrid/pipeline/text_classifier.hpp>

#include "bench_util.hpp"

using namespace hybrid;
namespace hb = hybrid::bench;

namespace {

// ---- the configurations (bench/torch_models.py mirrors them) ---------------------------------------------

constexpr enc::bert_config bert_mini{.vocab = 30522, .hidden = 256, .layers = 4, .heads = 4, .ffn = 1024,
                                     .max_positions = 512, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                                     .attention_dropout = 0.1, .pooler = true};
constexpr index_t bert_seq = 128, bert_train_batch = 16;

constexpr enc::bert_config mm_text{.vocab = 30522, .hidden = 256, .layers = 2, .heads = 4, .ffn = 1024,
                                   .max_positions = 512, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                                   .attention_dropout = 0.1, .pooler = true};
constexpr enc::conv_image_config mm_image{.size = 32, .channels = 3, .width = 256, .base = 32, .blocks = 2,
                                          .dropout = 0.0};
constexpr index_t mm_batch = 32, mm_seq = 32;

using multimodal_net = model<encoders<modality<"text", enc::bert<mm_text>>, modality<"image", enc::conv_image<mm_image>>>,
                             fuse::gated<256>, heads<head::classify<"cls", 10>, head::regress<"reg", 1>>>;

constexpr double adamw_lr = 1e-4, adamw_wd = 0.01;

// ---- analytic FLOP counts (multiply-adds of matrix products and convolutions, 2 flops each) ---------------

// Forward matmul flops of a BERT encoder: per layer Q, K, V, output projection (4 H^2 per token),
// the FFN (2 H F per token), scores and context (2 T H per token), all x2 for multiply + add; plus the pooler.
double bert_forward_flops(const enc::bert_config& c, double B, double T) {
  const double H = double(c.hidden), F = double(c.ffn);
  const double per_token_layer = 2 * (4 * H * H + 2 * H * F + 2 * T * H);
  return double(c.layers) * B * T * per_token_layer + (c.pooler ? 2 * B * H * H : 0.0);
}
double conv_image_forward_flops(const enc::conv_image_config& c, double B) {
  double flops = 0, in = double(c.channels), hw = double(c.size * c.size);
  for (index_t b = 0; b < c.blocks; ++b) {
    const double out = double(c.base << b);
    flops += 2 * B * hw * out * in * 9 + 2 * B * hw * out * out * 9;  // conv1, conv2 (3x3, same size)
    in = out;
    hw /= 4;  // max pool 2
  }
  return flops + 2 * B * in * double(c.width);  // projection
}

struct case_info {
  const char* name;
  const char* title;
  const char* unit;  // what items/s counts
  double items;      // per call
  double gflop;      // per call (training: 3x forward)
  double speed_target = 0;  // issue 7: hybrid at least this many times faster than PyTorch's best
  double rss_target = 0;    // issue 7: hybrid's peak RSS at most this fraction of PyTorch's best's (0: none)
};

std::vector<case_info> cases() {
  const double H = 256;
  const double train_fwd = bert_forward_flops(bert_mini, bert_train_batch, bert_seq) + 2.0 * bert_train_batch * H * 2;
  const double mm_fwd = bert_forward_flops(mm_text, mm_batch, mm_seq) + conv_image_forward_flops(mm_image, mm_batch) +
                        2.0 * mm_batch * (2 * H * H) +  // GMU projections
                        2.0 * mm_batch * (2 * H) * (2 * H) +  // GMU gate
                        2.0 * mm_batch * H * (10 + 1);        // heads
  return {
      {"bert_train", "BERT-mini training step (batch 16, seq 128, AdamW)", "tokens", double(bert_train_batch * bert_seq),
       3 * train_fwd * 1e-9, 1.5, 0.7},
      {"bert_infer_b1", "BERT-mini inference (batch 1, seq 128)", "tokens", double(bert_seq),
       bert_forward_flops(bert_mini, 1, bert_seq) * 1e-9, 1.5},
      {"bert_infer_b16", "BERT-mini inference (batch 16, seq 128)", "tokens", double(16 * bert_seq),
       bert_forward_flops(bert_mini, 16, bert_seq) * 1e-9, 1.5},
      {"multimodal", "Multimodal multi-task training step (batch 32: text seq 32, 2-layer BERT; 32x32x3 CNN; gated fusion; 10-class + regression heads; AdamW)",
       "samples", double(mm_batch), 3 * mm_fwd * 1e-9, 2.0},
  };
}
std::optional<case_info> find_case(const std::string& name) {
  for (const auto& c : cases())
    if (name == c.name) return c;
  return std::nullopt;
}

// ---- inputs -----------------------------------------------------------------------------------------------

enc::text_input random_text(index_t B, index_t T, std::mt19937& rng) {
  std::uniform_int_distribution<std::int32_t> tok(0, std::int32_t(bert_mini.vocab) - 1);
  tensor<std::int32_t> ids({B, T});
  for (auto& v : ids) v = tok(rng);
  tensor<float> mask({B, T});
  for (auto& v : mask) v = 1.0f;
  return {std::move(ids), {}, std::move(mask)};
}
void fill_random(tensor<float>& t, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  for (auto& v : t) v = d(rng);
}
std::vector<std::int32_t> random_labels(index_t n, int classes, std::mt19937& rng) {
  std::uniform_int_distribution<std::int32_t> d(0, classes - 1);
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (auto& v : y) v = d(rng);
  return y;
}

// ---- the measured step of each case: a callable run once per repetition -----------------------------------

// Time of the phases of one step (forward, backward, optimizer; inference: all in forward), in ms of the clock
// that judges the row: thread CPU time on 1 thread, wall time otherwise.
struct phase_clock {
  bool cpu = true;
  double t = 0;
  std::array<double, 3> ms{};
  double now() const {
    return cpu ? hb::thread_cpu_ms()
               : std::chrono::duration<double, std::milli>(hb::clock::now().time_since_epoch()).count();
  }
  void start() { t = now(); }
  void lap(int phase) {
    const double n = now();
    ms[static_cast<std::size_t>(phase)] = n - t;
    t = n;
  }
};

struct runner {
  std::function<void(phase_clock&)> step;
  std::function<double()> check;  // a number from the last step (loss or an output sum), printed so the work is used
};

// The end of a training step, each phase timed: forward done (lap 0), backward (lap 1), the AdamW step (lap 2).
void backward_and_step(const var<float>& loss, optim::adamw<float>& opt, double& last, phase_clock& pc) {
  last = loss.item();
  pc.lap(0);
  loss.backward();
  pc.lap(1);
  opt.step();
  pc.lap(2);
}

runner make_bert_train(std::mt19937& rng) {
  auto net = std::make_shared<pipeline::sequence_classifier<float>>(bert_mini, 2);
  auto opt = std::make_shared<optim::adamw<float>>(parameters_of(*net),
                                                   optim::adamw_options{.lr = adamw_lr, .weight_decay = adamw_wd});
  auto in = std::make_shared<enc::text_input>(random_text(bert_train_batch, bert_seq, rng));
  auto y = std::make_shared<std::vector<std::int32_t>>(random_labels(bert_train_batch, 2, rng));
  auto drop = std::make_shared<dropout_rng>(dropout_rng{1, 0});
  auto last = std::make_shared<double>(0);
  return {[=](phase_clock& pc) {
            pc.start();
            opt->zero_grad();
            const var<float> logits = (*net)(*in, *drop, true);
            const var<float> loss = cross_entropy(logits, std::span<const std::int32_t>(*y));
            backward_and_step(loss, *opt, *last, pc);
          },
          [=] { return *last; }};
}

runner make_bert_infer(index_t B, std::mt19937& rng) {
  auto net = std::make_shared<enc::bert_model<float>>(bert_mini);
  auto in = std::make_shared<enc::text_input>(random_text(B, bert_seq, rng));
  auto drop = std::make_shared<dropout_rng>(dropout_rng{1, 0});
  auto last = std::make_shared<double>(0);
  // Served as a deployment would: weights packed once for the GEMM kernel, for as long as the runner lives
  // (PyTorch's counterpart: the torch-mkldnn row).
  auto packed = std::make_shared<gemm::prepacked_weights>();
  return {[=](phase_clock& pc) {
            (void)packed;
            pc.start();
            no_grad ng;
            tape_scope scope;
            const auto out = (*net)(*in, *drop, false);
            *last = double(out.sequence.data()[0]) + double(out.pooled.data()[0]);
            pc.lap(0);
          },
          [=] { return *last; }};
}

runner make_multimodal(std::mt19937& rng) {
  auto net = std::make_shared<multimodal_net>(std::uint64_t{1});
  auto opt = std::make_shared<optim::adamw<float>>(parameters_of(*net),
                                                   optim::adamw_options{.lr = adamw_lr, .weight_decay = adamw_wd});
  auto b = std::make_shared<batch>();
  b->size = mm_batch;
  b->inputs["text"] = {random_text(mm_batch, mm_seq, rng), {}};
  tensor<float> images({mm_batch, mm_image.channels, mm_image.size, mm_image.size});
  fill_random(images, rng, 0.0f, 1.0f);
  b->inputs["image"] = {enc::dense_input{std::move(images)}, {}};
  b->labels["cls"] = {random_labels(mm_batch, 10, rng), {}, {}};
  tensor<float> target({mm_batch, 1});
  fill_random(target, rng, -1.0f, 1.0f);
  b->labels["reg"] = {{}, std::move(target), {}};
  auto last = std::make_shared<double>(0);
  return {[=](phase_clock& pc) {
            pc.start();
            opt->zero_grad();
            const auto out = (*net)(*b, true);
            const var<float> loss = net->loss(out, *b);
            backward_and_step(loss, *opt, *last, pc);
          },
          [=] { return *last; }};
}

double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-3;
}

int run_case(const case_info& c, int threads, int warmup, int reps, const std::string& impl) {
  // Before any TBB work: the arena never grows beyond `threads` (1: everything runs on this thread).
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  std::mt19937 rng(2024);
  const std::string name = c.name;
  runner r = name == "bert_train"       ? make_bert_train(rng)
             : name == "bert_infer_b1"  ? make_bert_infer(1, rng)
             : name == "bert_infer_b16" ? make_bert_infer(16, rng)
                                        : make_multimodal(rng);
  phase_clock pc{.cpu = threads == 1};
  for (int i = 0; i < warmup; ++i) r.step(pc);
  hb::samples wall, cpu, proc;
  std::array<hb::samples, 3> phase;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = hb::clock::now();
    const double c0 = hb::thread_cpu_ms(), p0 = process_cpu_ms();
    r.step(pc);
    wall.add(hb::ms_since(t0));
    cpu.add(hb::thread_cpu_ms() - c0);
    proc.add(process_cpu_ms() - p0);
    for (std::size_t k = 0; k < 3; ++k) phase[k].add(pc.ms[k]);
  }
  const auto& mem = tape::current().memory();
  const double check = r.check();
  if (!std::isfinite(check)) {
    std::cerr << "model_bench: " << name << " gave a non-finite result\n";
    return 1;
  }
  std::printf("RESULT case=%s impl=%s threads=%d reps=%d wall_med=%.3f wall_min=%.3f cpu_med=%.3f cpu_min=%.3f "
              "proc_cpu_med=%.3f rss_mib=%.1f fwd_med=%.3f bwd_med=%.3f opt_med=%.3f arena_high_mib=%.1f "
              "arena_capacity_mib=%.1f check=%.6g gemm=%s\n",
              c.name, impl.c_str(), threads, reps, wall.median(), wall.min(), cpu.median(), cpu.min(), proc.median(),
              hb::peak_rss_mib(), phase[0].median(), phase[1].median(), phase[2].median(),
              double(mem.high_water()) / 1048576.0, double(mem.capacity()) / 1048576.0, check, gemm::fastest::chosen());
  std::fflush(stdout);
  std::cerr << "hybrid " << c.name << ' ' << threads << "T: wall " << hb::ms_cell(wall) << " ms, thread CPU "
            << hb::ms_cell(cpu) << " ms, process CPU " << hb::fixed(proc.median()) << " ms, peak RSS "
            << hb::fixed(hb::peak_rss_mib(), 0) << " MiB; phases forward " << hb::fixed(phase[0].median())
            << ", backward " << hb::fixed(phase[1].median()) << ", optimizer " << hb::fixed(phase[2].median())
            << " ms; tape arena high water " << hb::fixed(double(mem.high_water()) / 1048576.0, 0)
            << " MiB; float products on " << gemm::fastest::chosen() << '\n';
  return 0;
}

// ---- the report: RESULT lines of both sides in, one table per case out ------------------------------------

struct result {
  std::string impl;
  int threads = 1;
  int reps = 0;
  double wall_med = 0, wall_min = 0, cpu_med = 0, cpu_min = 0, rss = 0;
  std::array<double, 3> phases{};  // forward, backward, optimizer (medians, same clock as time_med)
  bool ok = true;  // false: the case failed on that side (error=...)
  int pair = 0;    // > 0: one half of the pair-th alternating pair (run.sh), not a row of the table
  // The time we compare: thread CPU time on 1 thread, wall time otherwise.
  double time_med() const { return threads == 1 ? cpu_med : wall_med; }
  double time_min() const { return threads == 1 ? cpu_min : wall_min; }
};

std::map<std::string, std::string> fields_of(const std::string& line) {
  std::map<std::string, std::string> f;
  std::istringstream is(line);
  std::string w;
  is >> w;  // RESULT
  while (is >> w)
    if (auto eq = w.find('='); eq != std::string::npos) f[w.substr(0, eq)] = w.substr(eq + 1);
  return f;
}

// The fastest of the rows that ran and whose implementation `which` accepts, or nullptr.
template <class Which>
const result* fastest_row(const std::vector<result>& rows, Which which) {
  const result* best = nullptr;
  for (const auto& r : rows)
    if (which(r.impl) && r.ok && (!best || r.time_med() < best->time_med())) best = &r;
  return best;
}
// Which implementations: hybrid's rows (its own and the OpenBLAS-kernel comparison), PyTorch's rows.
bool is_hybrid(const std::string& impl) { return impl.rfind("hybrid", 0) == 0; }
bool is_torch(const std::string& impl) { return impl.rfind("torch", 0) == 0; }

// RESULT lines from standard input, by case; pair rows (pair=K) apart from the table rows.
struct results_by_case {
  std::map<std::string, std::vector<result>> rows, pairs;
};

results_by_case read_results() {
  results_by_case out;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.rfind("RESULT ", 0) != 0) continue;
    auto f = fields_of(line);
    auto num = [&](const char* k) { return f.count(k) ? std::stod(f[k]) : 0.0; };
    result r;
    r.impl = f["impl"];
    r.threads = static_cast<int>(num("threads"));
    r.reps = static_cast<int>(num("reps"));
    r.ok = !f.count("error");
    r.wall_med = num("wall_med");
    r.wall_min = num("wall_min");
    r.cpu_med = num("cpu_med");
    r.cpu_min = num("cpu_min");
    r.rss = num("rss_mib");
    r.phases = {num("fwd_med"), num("bwd_med"), num("opt_med")};
    r.pair = static_cast<int>(num("pair"));
    (r.pair > 0 ? out.pairs : out.rows)[f["case"]].push_back(r);
  }
  return out;
}

// For run.sh's alternating pairs: per case, "case hybrid_impl threads torch_impl threads": hybrid as users get it
// (the plain `hybrid` rows, not the OpenBLAS-kernel comparison) at its fastest thread count, and PyTorch's fastest
// row. Why not hybrid's fastest row: on a noisy minute its comparison row can win and the pairs would measure it.
int print_fastest() {
  const auto results = read_results();
  for (const auto& [name, rows] : results.rows) {
    const result* h = fastest_row(rows, [](const std::string& impl) { return impl == "hybrid"; });
    const result* t = fastest_row(rows, is_torch);
    if (h && t) std::cout << name << ' ' << h->impl << ' ' << h->threads << ' ' << t->impl << ' ' << t->threads << '\n';
  }
  return 0;
}

// Alternating pairs of one case: each pair is hybrid's default configuration (at its fastest thread count), then
// PyTorch's fastest, run one right after the other, so both halves see the same minute of this VM; the target is
// judged on the median ratio. Returns the median, smallest and largest ratio (none without pairs).
struct pair_ratios {
  double median = 0, min = 0, max = 0;
};
std::optional<pair_ratios> print_pairs(const case_info& c, const std::vector<result>& pairs) {
  std::map<int, std::pair<const result*, const result*>> by_pair;
  for (const auto& r : pairs)
    if (r.ok) (is_hybrid(r.impl) ? by_pair[r.pair].first : by_pair[r.pair].second) = &r;
  std::vector<double> ratios;
  hb::table t({"pair", "hybrid ms median", "PyTorch ms median", "x PyTorch"});
  for (const auto& [k, p] : by_pair) {
    if (!p.first || !p.second) continue;
    ratios.push_back(p.second->time_med() / p.first->time_med());
    t.add({hb::cat(k), hb::cat(p.first->impl, ' ', p.first->threads, "T: ", hb::fixed(p.first->time_med(), 1)),
           hb::cat(p.second->impl, ' ', p.second->threads, "T: ", hb::fixed(p.second->time_med(), 1)),
           hb::fixed(ratios.back(), 2)});
  }
  if (ratios.empty()) return std::nullopt;
  std::cout << "Alternating pairs (each: hybrid's default configuration at its fastest thread count, then PyTorch's "
               "fastest row, one right after the other):\n\n";
  t.print();
  std::sort(ratios.begin(), ratios.end());
  const std::size_t n = ratios.size();
  const double median = n % 2 ? ratios[n / 2] : 0.5 * (ratios[n / 2 - 1] + ratios[n / 2]);
  std::cout << "Issue 7's target on the median of " << n << " pairs: >= " << hb::fixed(c.speed_target, 1)
            << "x; hybrid gives " << hb::fixed(median, 2) << "x (pairs " << hb::fixed(ratios.front(), 2) << " to "
            << hb::fixed(ratios.back(), 2) << "): " << (median >= c.speed_target ? "**met**" : "**missed**")
            << ".\n\n";
  return pair_ratios{median, ratios.front(), ratios.back()};
}

int report(double peak1, double peak_all) {
  auto results = read_results();
  // One line per case for the closing summary: the table's verdict and the pairs'.
  hb::table summary({"case", "target", "fastest rows", "alternating pairs: median (range)", "verdict"});
  for (const auto& c : cases()) {
    auto it = results.rows.find(c.name);
    if (it == results.rows.end()) continue;
    auto& rows = it->second;
    std::sort(rows.begin(), rows.end(), [](const result& a, const result& b) {
      return a.impl != b.impl ? a.impl < b.impl : a.threads < b.threads;  // hybrid before torch
    });
    const result* best_torch = fastest_row(rows, is_torch);
    const bool training = c.name == std::string("bert_train") || c.name == std::string("multimodal");
    std::cout << "### " << c.title << " [" << c.name << "]" << "\n\n"
              << "GFLOP per call (analytic, matmuls and convolutions" << (training ? ", training = 3x forward" : "")
              << "): " << hb::fixed(c.gflop, 2) << ". x torch best: the time of PyTorch's fastest row divided by this "
              << "row's (> 1: faster than PyTorch at its best); RSS / torch best's: this row's peak RSS divided by "
              << "that row's (< 1: smaller).\n\n";
    std::vector<std::string> header{"implementation", "ms median (min)", "clock", hb::cat(c.unit, "/s"), "GFLOP/s",
                                    "% peak", "x torch best: median (min)", "peak RSS MiB", "RSS / torch best's"};
    if (training) header.push_back("fwd / bwd / AdamW ms");
    hb::table t(header);
    for (const auto& r : rows) {
      const std::string label = hb::cat(r.impl, ' ', r.threads, 'T');
      if (!r.ok) {
        t.add({label, "failed"});
        continue;
      }
      const double s = r.time_med() * 1e-3;
      const double gfs = c.gflop / s;
      const double peak = r.threads == 1 ? peak1 : peak_all;
      t.add({label, hb::cat(hb::fixed(r.time_med(), 1), " (", hb::fixed(r.time_min(), 1), ")"),
             r.threads == 1 ? "thread CPU" : "wall", hb::fixed(c.items / s, 0), hb::fixed(gfs, 1),
             peak > 0 ? hb::cat(hb::fixed(100 * gfs / peak, 0), '%') : "-",
             best_torch ? hb::cat(hb::fixed(best_torch->time_med() / r.time_med(), 2), " (",
                                  hb::fixed(best_torch->time_min() / r.time_min(), 2), ")")
                        : "-",
             hb::fixed(r.rss, 0), best_torch ? hb::fixed(r.rss / best_torch->rss, 2) : "-",
             training ? hb::cat(hb::fixed(r.phases[0], 0), " / ", hb::fixed(r.phases[1], 0), " / ",
                                hb::fixed(r.phases[2], 0))
                      : ""});
    }
    t.print();
    std::optional<double> table_ratio;
    if (best_torch) {
      std::cout << "PyTorch's best: " << best_torch->impl << ", " << best_torch->threads << " thread(s), "
                << hb::fixed(best_torch->time_med(), 1) << " ms, " << hb::fixed(best_torch->rss, 0) << " MiB.\n";
      // Issue 7's targets, judged on hybrid's fastest row (medians).
      if (const result* best = fastest_row(rows, is_hybrid)) {
        const double speed = best_torch->time_med() / best->time_med(), rss = best->rss / best_torch->rss;
        table_ratio = speed;
        std::cout << "Issue 7's target: >= " << hb::fixed(c.speed_target, 1) << "x PyTorch's best; hybrid "
                  << best->threads << "T gives " << hb::fixed(speed, 2) << "x: "
                  << (speed >= c.speed_target ? "**met**" : "**missed**");
        if (c.rss_target > 0)
          std::cout << ". Peak RSS <= " << hb::fixed(c.rss_target, 1) << "x PyTorch's: " << hb::fixed(rss, 2) << "x: "
                    << (rss <= c.rss_target ? "**met**" : "**missed**");
        std::cout << ".\n";
      }
      std::cout << '\n';
    }
    std::optional<pair_ratios> paired;
    if (auto p = results.pairs.find(c.name); p != results.pairs.end()) paired = print_pairs(c, p->second);
    if (table_ratio) {
      const bool table_met = *table_ratio >= c.speed_target, pairs_met = paired && paired->median >= c.speed_target;
      summary.add({c.name, hb::cat(">= ", hb::fixed(c.speed_target, 1), 'x'), hb::cat(hb::fixed(*table_ratio, 2), 'x'),
                   paired ? hb::cat(hb::fixed(paired->median, 2), "x (", hb::fixed(paired->min, 2), " to ",
                                    hb::fixed(paired->max, 2), ')')
                          : "-",
                   table_met && (pairs_met || !paired) ? "met"
                   : table_met || pairs_met            ? "met in one reading of two"
                                                       : "missed"});
    }
  }
  std::cout << "### Summary against issue 7's speed targets\n\n";
  summary.print();
  std::cout << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (hb::flag(argc, argv, "report"))
      return report(std::stod(hb::arg(argc, argv, "peak1", "0")), std::stod(hb::arg(argc, argv, "peak-all", "0")));
    if (hb::flag(argc, argv, "fastest")) return print_fastest();
    if (hb::flag(argc, argv, "list")) {
      for (const auto& c : cases()) std::cout << c.name << '\n';
      return 0;
    }
    const std::string name = hb::arg(argc, argv, "case");
    const auto c = find_case(name);
    if (!c) {
      std::cerr << "usage: model_bench --case=NAME [--threads=N] [--warmup=N] [--reps=N] | --list | --report "
                   "[--peak1=G] [--peak-all=G] < results | --fastest < results\n";
      return 2;
    }
    return run_case(*c, std::stoi(hb::arg(argc, argv, "threads", "1")), std::stoi(hb::arg(argc, argv, "warmup", "2")),
                    std::stoi(hb::arg(argc, argv, "reps", "7")), hb::arg(argc, argv, "impl", "hybrid"));
  } catch (const std::exception& e) {
    std::cerr << "model_bench: " << e.what() << '\n';
    return 1;
  }
}
