// GEMM policies (hybrid::gemm::blas, ::eigen and our AVX-512 kernel ::avx512, through Policy::run<float, Exec>)
// against one raw cblas_sgemm call, at the transformer shapes of a linear layer's forward and backward passes.
#include <cblas.h>
#include <tbb/info.h>

#include <cmath>
#include <map>
#include <random>

#include <hybrid/backend/gemm.hpp>

#include "bench_util.hpp"

namespace {
using namespace hybrid;
using namespace hybrid::bench;

// C[M,N] = op(A) op(B); a linear layer y = x W with x [2048, K], W [K, N] runs these three.
struct gemm_case {
  std::string name;
  bool ta, tb;
  index_t M, N, K;
  double flop() const { return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K); }
  std::string dims() const { return cat(M, 'x', N, 'x', K); }
};

struct buffers {
  std::vector<float> a, b, c;
  index_t lda, ldb;
  buffers(const gemm_case& g, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1, 1);
    a.resize(static_cast<std::size_t>(g.M * g.K));
    b.resize(static_cast<std::size_t>(g.K * g.N));
    c.assign(static_cast<std::size_t>(g.M * g.N), 0.f);
    for (auto& v : a) v = u(rng);
    for (auto& v : b) v = u(rng);
    lda = g.ta ? g.M : g.K;  // A is stored K x M when transposed
    ldb = g.tb ? g.K : g.N;  // B is stored N x K when transposed
  }
};

void raw_openblas(const gemm_case& g, buffers& x) {
  cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(g.M), static_cast<blasint>(g.N), static_cast<blasint>(g.K), 1.f, x.a.data(),
              static_cast<blasint>(x.lda), x.b.data(), static_cast<blasint>(x.ldb), 0.f, x.c.data(),
              static_cast<blasint>(g.N));
}
template <class Policy, class Exec>
void ours(const gemm_case& g, buffers& x) {
  Policy::template run<float, Exec>(g.ta, g.tb, g.M, g.N, g.K, 1.f, x.a.data(), x.lda, x.b.data(), x.ldb, 0.f,
                                    x.c.data(), g.N);
}

double max_rel_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, static_cast<double>(std::abs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::abs(want[i])));
  }
  return num / std::max(den, 1e-30);
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = tbb::info::default_concurrency();
  const double peak1 = std::stod(arg(argc, argv, "peak1", "0"));
  const double peak_all = std::stod(arg(argc, argv, "peak-all", "0"));
  const bool quick = flag(argc, argv, "quick");
  const repeat rep = quick ? repeat{.warmup = 1, .min_reps = 3, .max_reps = 5, .budget_ms = 100} : repeat{};

  const int par = openblas_get_parallel();
  const std::string extra = cat(
      "- OpenBLAS: ", openblas_get_config(), par == 1 ? " (pthreads)" : par == 2 ? " (OpenMP)" : "",
      " (core ", openblas_get_corename(), ")\n- gemm::avx512: ",
      gemm::avx512::active() ? "AVX-512 kernel" : cat("no AVX-512 on this CPU, runs ", gemm::avx512::fallback::name),
      "; gemm::default_policy (", gemm::default_policy::name, ") runs ", gemm::fastest::chosen(),
      " for float\n- oneTBB threads: ", cores, "; peak used for %pk (from peak_flops): ",
      peak1 > 0 ? cat(fixed(peak1, 1), " GFLOP/s on 1 core, ", fixed(peak_all, 1), " on ", cores)
                : std::string("not given (pass --peak1= --peak-all=)"),
      "\n- cells: median (min) ms of >= ", rep.min_reps, " runs; xOB = our time / OpenBLAS time (lower is better)\n");
  print_header("SGEMM: hybrid GEMM policies vs OpenBLAS", extra);

  std::vector<gemm_case> cases;
  for (index_t K : {256, 1024})
    for (index_t N : {256, 1024}) {
      const std::string tag = cat(" K", K, " N", N);
      cases.push_back({cat("fwd X.W", tag), false, false, 2048, N, K});
      cases.push_back({cat("dX=dY.W^T", tag), false, true, 2048, K, N});
      cases.push_back({cat("dW=X^T.dY", tag), true, false, K, N, 2048});
    }

  std::mt19937 rng(42);
  std::vector<buffers> bufs;
  for (const auto& g : cases) bufs.emplace_back(g, rng);

  using impl = void (*)(const gemm_case&, buffers&);
  struct variant {
    std::string name;
    impl f;
  };
  // OpenBLAS pinned to 1 thread (as our blas policy does on first use) for everything but the last
  // group; within a group the variants run round-robin so load from other tenants hits all alike.
  // Raw multi-threaded OpenBLAS runs on its own, after the rest: its threads spin for a while after
  // each call and would take the second core from whatever ran next.
  const std::string ob_all = cat("OpenBLAS ", cores, 'T');
  const std::vector<std::vector<variant>> groups = {
      {{"OpenBLAS 1T", raw_openblas},
       {"blas serial", ours<gemm::blas, exec::serial>},
       {"eigen serial", ours<gemm::eigen, exec::serial>},
       {"avx512 serial", ours<gemm::avx512, exec::serial>},
       {"blas tbb", ours<gemm::blas, exec::tbb>},
       {"eigen tbb", ours<gemm::eigen, exec::tbb>},
       {"avx512 tbb", ours<gemm::avx512, exec::tbb>}},
      {{ob_all, raw_openblas}},
  };
  std::map<std::pair<std::string, std::size_t>, measurement> res;
  double worst = 0;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& group = groups[gi];
    openblas_set_num_threads(gi == 0 ? 1 : cores);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const auto s = time_interleaved(group.size(), [&](std::size_t v) { group[v].f(cases[i], bufs[i]); }, rep);
      for (std::size_t v = 0; v < group.size(); ++v) res[{group[v].name, i}] = s[v];
      // Every variant's C against one single-threaded OpenBLAS call.
      openblas_set_num_threads(1);
      raw_openblas(cases[i], bufs[i]);
      const std::vector<float> want = bufs[i].c;
      openblas_set_num_threads(gi == 0 ? 1 : cores);
      for (const auto& v : group) {
        v.f(cases[i], bufs[i]);
        worst = std::max(worst, max_rel_diff(bufs[i].c, want));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  openblas_set_num_threads(1);

  auto gflops = [&](std::size_t i, const samples& s) { return cases[i].flop() / (s.median() * 1e6); };
  auto pct = [&](double gf, double peak) { return peak > 0 ? cat(fixed(100.0 * gf / peak, 0), '%') : std::string("-"); };
  // Single-threaded variants are judged by their thread's CPU time (the machine is shared: time
  // spent descheduled is not the library's), parallel ones by wall time.
  auto print = [&](const std::string& title, const std::string& base, std::vector<std::string> ours_, double peak,
                   bool cpu) {
    std::cout << "### " << title << "\n\n";
    const std::string unit = cpu ? " CPU ms" : " ms";
    std::vector<std::string> header = {"case", "MxNxK", cat(base, unit), "GF/s", "%pk"};
    for (const auto& o : ours_)
      for (const auto& h : {cat(o, unit), std::string("GF/s"), std::string("%pk"), std::string("xOB")}) header.push_back(h);
    table t(header);
    auto pick = [&](const measurement& m) -> const samples& { return cpu ? m.cpu : m.wall; };
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const samples& b = pick(res[{base, i}]);
      std::vector<std::string> row = {cases[i].name, cases[i].dims(), ms_cell(b), fixed(gflops(i, b), 1),
                                      pct(gflops(i, b), peak)};
      for (const auto& o : ours_) {
        const samples& s = pick(res[{o, i}]);
        row.push_back(ms_cell(s));
        row.push_back(fixed(gflops(i, s), 1));
        row.push_back(pct(gflops(i, s), peak));
        row.push_back(fixed(s.median() / b.median(), 2));
      }
      t.add(row);
    }
    t.print();
  };
  print("One core (exec::serial, OpenBLAS 1 thread; thread CPU time)", "OpenBLAS 1T",
        {"blas serial", "eigen serial", "avx512 serial"}, peak1, true);
  print(cat("All cores (exec::tbb, OpenBLAS ", cores, " threads; wall time)"), ob_all,
        {"blas tbb", "eigen tbb", "avx512 tbb"}, peak_all, false);
  std::cout << "Largest relative difference of any variant's C from one OpenBLAS call: " << worst << "\n"
            << "Peak RSS: " << fixed(peak_rss_mib(), 1) << " MiB\n\n";
  return worst < 1e-4 ? 0 : 1;
}
