// The fused chain gelu(x * w + b), forward + backward, through hybrid's autodiff against loops written
// by hand: plain C++ (std::erf, the reference of the <= 1.3x goal) and xsimd (the floor of our design).
#include <tbb/info.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <numbers>
#include <random>

#include <hybrid/autodiff/elementwise.hpp>

#include "bench_util.hpp"

namespace {
using namespace hybrid;
using namespace hybrid::bench;

constexpr float inv_sqrt2 = static_cast<float>(std::numbers::sqrt2 / 2);
constexpr float inv_sqrt_2pi = static_cast<float>(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);

// x [rows, cols] (any rank), w and b [cols]: the bias-GELU of a transformer's FFN.
struct problem {
  hybrid::shape s;
  index_t rows, cols, n;
  parameter<float> x, w, b;
  std::vector<float> dy, y, dx, dw, db;  // dy is the upstream gradient; the rest are hand outputs

  problem(hybrid::shape shape_, std::mt19937& rng)
      : s(shape_), rows(s.rows()), cols(s.cols()), n(s.numel()), x("x", s), w("w", {cols}), b("b", {cols}) {
    std::uniform_real_distribution<float> u(-2, 2);
    for (auto& v : x.value()) v = u(rng);
    for (auto& v : w.value()) v = u(rng);
    for (auto& v : b.value()) v = 0.5f * u(rng);
    dy.resize(static_cast<std::size_t>(n));
    for (auto& v : dy) v = u(rng);
    y.resize(dy.size());
    dx.resize(dy.size());
    dw.resize(static_cast<std::size_t>(cols));
    db.resize(static_cast<std::size_t>(cols));
  }
};

// ---- plain C++: one loop forward, one loop backward (recomputing z, as hybrid does) -------------------
void hand_forward(problem& p) {
  const float *x = p.x.value().data(), *w = p.w.value().data(), *b = p.b.value().data();
  float* y = p.y.data();
  for (index_t r = 0; r < p.rows; ++r)
    for (index_t c = 0; c < p.cols; ++c) {
      const index_t i = r * p.cols + c;
      const float z = x[i] * w[c] + b[c];
      y[i] = 0.5f * z * (1.f + std::erf(z * inv_sqrt2));
    }
}
void hand_backward(problem& p) {
  const float *x = p.x.value().data(), *w = p.w.value().data(), *b = p.b.value().data(), *dy = p.dy.data();
  float *dx = p.dx.data(), *dw = p.dw.data(), *db = p.db.data();
  std::fill(p.dw.begin(), p.dw.end(), 0.f);
  std::fill(p.db.begin(), p.db.end(), 0.f);
  for (index_t r = 0; r < p.rows; ++r)
    for (index_t c = 0; c < p.cols; ++c) {
      const index_t i = r * p.cols + c;
      const float z = x[i] * w[c] + b[c];
      const float cdf = 0.5f * (1.f + std::erf(z * inv_sqrt2));
      const float pdf = std::exp(-0.5f * z * z) * inv_sqrt_2pi;
      const float g = dy[i] * (cdf + z * pdf);
      dx[i] = g * w[c];
      dw[c] += g * x[i];
      db[c] += g;
    }
}

// ---- the same with xsimd packs and hybrid's fixed row chunks (partial sums per chunk for dw, db) -----
using pack = xsimd::batch<float>;
constexpr index_t W = pack::size;

template <class Exec>
void hand_simd_forward(problem& p) {
  const float *x = p.x.value().data(), *w = p.w.value().data(), *b = p.b.value().data();
  float* y = p.y.data();
  const index_t cols = p.cols;
  const exec::row_chunks ch(p.rows, cols);
  Exec::for_each(ch.count, [&](index_t k) {
    for (index_t r = ch.begin(k); r < ch.end(k); ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      index_t c = 0;
      for (; c + W <= cols; c += W) {
        const pack z = xsimd::fma(pack::load_unaligned(xr + c), pack::load_unaligned(w + c), pack::load_unaligned(b + c));
        (pack(0.5f) * z * (pack(1.f) + xsimd::erf(z * pack(inv_sqrt2)))).store_unaligned(yr + c);
      }
      for (; c < cols; ++c) {
        const float z = xr[c] * w[c] + b[c];
        yr[c] = 0.5f * z * (1.f + std::erf(z * inv_sqrt2));
      }
    }
  });
}
template <class Exec>
void hand_simd_backward(problem& p, std::vector<float>& partial) {
  const float *x = p.x.value().data(), *w = p.w.value().data(), *b = p.b.value().data(), *dy = p.dy.data();
  float* dx = p.dx.data();
  const index_t cols = p.cols;
  const exec::row_chunks ch(p.rows, cols);
  partial.assign(static_cast<std::size_t>(2 * ch.count * cols), 0.f);
  Exec::for_each(ch.count, [&](index_t k) {
    float* dw = partial.data() + 2 * k * cols;
    float* db = dw + cols;
    for (index_t r = ch.begin(k); r < ch.end(k); ++r) {
      const float *xr = x + r * cols, *dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      index_t c = 0;
      for (; c + W <= cols; c += W) {
        const pack xv = pack::load_unaligned(xr + c), wv = pack::load_unaligned(w + c);
        const pack z = xsimd::fma(xv, wv, pack::load_unaligned(b + c));
        const pack cdf = pack(0.5f) * (pack(1.f) + xsimd::erf(z * pack(inv_sqrt2)));
        const pack pdf = xsimd::exp(pack(-0.5f) * z * z) * pack(inv_sqrt_2pi);
        const pack g = pack::load_unaligned(dyr + c) * (cdf + z * pdf);
        (g * wv).store_unaligned(dxr + c);
        (pack::load_unaligned(dw + c) + g * xv).store_unaligned(dw + c);
        (pack::load_unaligned(db + c) + g).store_unaligned(db + c);
      }
      for (; c < cols; ++c) {
        const float z = xr[c] * w[c] + b[c];
        const float g = dyr[c] * (0.5f * (1.f + std::erf(z * inv_sqrt2)) + z * std::exp(-0.5f * z * z) * inv_sqrt_2pi);
        dxr[c] = g * w[c];
        dw[c] += g * xr[c];
        db[c] += g;
      }
    }
  });
  std::fill(p.dw.begin(), p.dw.end(), 0.f);
  std::fill(p.db.begin(), p.db.end(), 0.f);
  for (index_t k = 0; k < ch.count; ++k)
    for (index_t c = 0; c < cols; ++c) {
      p.dw[static_cast<std::size_t>(c)] += partial[static_cast<std::size_t>(2 * k * cols + c)];
      p.db[static_cast<std::size_t>(c)] += partial[static_cast<std::size_t>((2 * k + 1) * cols + c)];
    }
}

// ---- hybrid: one expression, one forward loop, one tape entry --------------------------------------
// The upstream gradient is copied into y's adjoint between the timed halves (a loss would put it there).
// One step's forward and backward times: wall clock and this thread's CPU time.
struct step_time {
  double fwd, bwd, fwd_cpu, bwd_cpu;
};

template <class Simd, class Exec>
step_time hybrid_step(problem& p, bool keep = false) {
  tape::current().reset();
  const auto t0 = clock::now();
  const double c0 = thread_cpu_ms();
  var<float> y = evaluate<Simd, Exec>(gelu(p.x * p.w + p.b));
  const double fwd = ms_since(t0), fwd_cpu = thread_cpu_ms() - c0;
  std::memcpy(y.grad_data(), p.dy.data(), p.dy.size() * sizeof(float));
  const auto t1 = clock::now();
  const double c1 = thread_cpu_ms();
  tape::current().run_backward();
  const double bwd = ms_since(t1), bwd_cpu = thread_cpu_ms() - c1;
  if (keep) std::copy(y.values().begin(), y.values().end(), p.y.begin());
  return {fwd, bwd, fwd_cpu, bwd_cpu};
}

struct timings {
  samples fwd, bwd, total, cpu;  // cpu: fwd+bwd CPU time of the calling thread
};
// Steps the variants round-robin (see time_interleaved) and collects each one's timings.
template <class Step>
std::vector<timings> time_steps(const std::vector<Step>& steps, const repeat& r) {
  for (int i = 0; i < r.warmup; ++i)
    for (const auto& step : steps) step();
  std::vector<timings> t(steps.size());
  double spent = 0;
  for (int round = 0;
       round < r.max_reps && (round < r.min_reps || spent < r.budget_ms * static_cast<double>(steps.size())); ++round)
    for (std::size_t v = 0; v < steps.size(); ++v) {
      const step_time st = steps[v]();
      t[v].fwd.add(st.fwd);
      t[v].bwd.add(st.bwd);
      t[v].total.add(st.fwd + st.bwd);
      t[v].cpu.add(st.fwd_cpu + st.bwd_cpu);
      spent += st.fwd + st.bwd;
    }
  return t;
}

template <class F, class B>
auto hand_step(F fwd, B bwd) {
  return [=] {
    const auto t0 = clock::now();
    const double c0 = thread_cpu_ms();
    fwd();
    const double f = ms_since(t0), f_cpu = thread_cpu_ms() - c0;
    const auto t1 = clock::now();
    const double c1 = thread_cpu_ms();
    bwd();
    return step_time{f, ms_since(t1), f_cpu, thread_cpu_ms() - c1};
  };
}

double rel_err(std::span<const float> got, std::span<const float> want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, static_cast<double>(std::abs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::abs(want[i])));
  }
  return num / std::max(den, 1e-30);
}

// hybrid's gradients from one step on zeroed gradients against the plain loop's.
double check(problem& p) {
  hand_forward(p);
  hand_backward(p);
  const std::vector<float> y = p.y, dx = p.dx, dw = p.dw, db = p.db;
  p.x.zero_grad();
  p.w.zero_grad();
  p.b.zero_grad();
  hybrid_step<simd::native, exec::tbb>(p, true);
  return std::max({rel_err(p.y, y), rel_err(p.x.grad().span(), dx), rel_err(p.w.grad().span(), dw),
                   rel_err(p.b.grad().span(), db)});
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = tbb::info::default_concurrency();
  const bool quick = flag(argc, argv, "quick");
  const repeat rep = quick ? repeat{.warmup = 2, .min_reps = 3, .max_reps = 5, .budget_ms = 100}
                           : repeat{.warmup = 2, .min_reps = 9, .max_reps = 60, .budget_ms = 800};
  print_header("Fused elementwise: y = gelu(x * w + b), forward + backward",
               cat("- x [rows, cols], w and b [cols]; backward computes dx, dw, db from a given dy\n"
                   "- oneTBB threads: ", cores, "; xsimd pack: ", W, " floats; cells: median (min) ms of >= ",
                   rep.min_reps, " steps\n"
                   "- GB/s: least traffic (forward reads x, writes y: 8 B/element; backward reads x, dy, writes "
                   "dx: 12 B/element) over the median time\n"
                   "- CPU ms: CPU time of the calling thread (single-threaded variants), steadier than wall time on a "
                   "shared machine\n- x columns: ratios of median fwd+bwd times, CPU time for 1-thread variants and wall time for tbb "
                   "ones (lower is better)\n"));

  std::mt19937 rng(1);
  std::vector<hybrid::shape> shapes = {{2048, 1024}, {16, 128, 3072}, {64, 256}};
  if (!arg(argc, argv, "shape").empty()) {  // --shape=R,C for profiling one size
    const std::string s = arg(argc, argv, "shape");
    shapes = {{std::stoll(s.substr(0, s.find(','))), std::stoll(s.substr(s.find(',') + 1))}};
  }
  const std::string only = arg(argc, argv, "only");  // profiling: run one variant, e.g. --only=hybrid-serial
  double worst = 0;
  for (const auto& s : shapes) {
    problem p(s, rng);
    const double err = check(p);
    worst = std::max(worst, err);
    std::vector<float> partial;
    struct variant {
      std::string key, name;
      std::function<step_time()> step;
    };
    const std::vector<variant> variants = {
        {"hand", "hand loop, std::erf, 1 thread", hand_step([&] { hand_forward(p); }, [&] { hand_backward(p); })},
        {"hand-simd-serial", "hand loop, xsimd, 1 thread",
         hand_step([&] { hand_simd_forward<exec::serial>(p); }, [&] { hand_simd_backward<exec::serial>(p, partial); })},
        {"hand-simd-tbb", "hand loop, xsimd, tbb",
         hand_step([&] { hand_simd_forward<exec::tbb>(p); }, [&] { hand_simd_backward<exec::tbb>(p, partial); })},
        {"hybrid-tbb", "hybrid xsimd + tbb (default)", [&] { return hybrid_step<simd::native, exec::tbb>(p); }},
        {"hybrid-serial", "hybrid xsimd + serial", [&] { return hybrid_step<simd::native, exec::serial>(p); }},
        {"hybrid-scalar", "hybrid scalar + serial", [&] { return hybrid_step<simd::scalar, exec::serial>(p); }},
    };
    if (!only.empty()) {  // profiling one variant: one line, wall and CPU time
      for (const auto& v : variants)
        if (v.key == only) {
          const timings t = time_steps(std::vector{v.step}, rep)[0];
          std::cout << v.key << ' ' << s.str() << " forward " << ms_cell(t.fwd) << " backward " << ms_cell(t.bwd)
                    << " total " << ms_cell(t.total) << " ms; thread CPU " << ms_cell(t.cpu) << " ms\n";
        }
      continue;
    }
    std::vector<std::function<step_time()>> steps;
    for (const auto& v : variants) steps.push_back(v.step);
    const std::vector<timings> t = time_steps(steps, rep);

    std::cout << "### " << s.str() << " (" << p.rows << " x " << p.cols << "), max rel. difference hybrid vs "
              << "plain loop: " << fixed(err * 1e6, 2) << "e-6\n\n";
    table tab({"variant", "forward ms", "backward ms", "fwd+bwd ms", "fwd+bwd CPU ms", "fwd GB/s", "bwd GB/s",
               "x plain loop", "x xsimd loop"});
    const double n = static_cast<double>(p.n);
    // The time each variant is judged by: its thread's CPU time when single-threaded (steady on a
    // shared machine), wall time when it runs on TBB.
    auto judged = [&](std::size_t i) {
      return variants[i].key.ends_with("tbb") ? t[i].total.median() : t[i].cpu.median();
    };
    for (std::size_t i = 0; i < variants.size(); ++i) {
      // Same execution for the xsimd floor: serial for serial variants, tbb for tbb ones.
      const bool par = variants[i].key.ends_with("tbb");
      tab.add({variants[i].name, ms_cell(t[i].fwd), ms_cell(t[i].bwd), ms_cell(t[i].total),
               par ? std::string("-") : ms_cell(t[i].cpu), fixed(8 * n / (t[i].fwd.median() * 1e6), 1),
               fixed(12 * n / (t[i].bwd.median() * 1e6), 1), fixed(judged(i) / judged(0), 2),
               fixed(judged(i) / judged(par ? 2 : 1), 2)});
    }
    tab.print();
  }
  std::cout << "Peak RSS: " << fixed(peak_rss_mib(), 1) << " MiB\n\n";
  return worst < 1e-4 ? 0 : 1;
}
