// FP32 FMA peak of this CPU, per core and on all cores (oneTBB): the denominator of every "% of peak".
// Independent FMA chains in xsimd registers, enough of them to cover FMA latency x FMA ports.
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <array>
#include <cstdint>
#include <immintrin.h>
#include <xsimd/xsimd.hpp>

#include "bench_util.hpp"

namespace {
using namespace hybrid::bench;

// Chains x width x 2 flop per iteration; acc = acc * m + a converges, so nothing overflows or
// goes denormal however long it runs.
template <int Chains>
float xsimd_chains(std::int64_t iters) {
  using B = xsimd::batch<float>;
  std::array<B, Chains> acc;
  for (int i = 0; i < Chains; ++i) acc[i] = B(1.0f + 0.001f * static_cast<float>(i));
  B m(0.99999f), a(1e-6f);
  do_not_optimize(m);
  do_not_optimize(a);
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < Chains; ++i) acc[i] = xsimd::fma(acc[i], m, a);
  }
  B s = acc[0];
  for (int i = 1; i < Chains; ++i) s += acc[i];
  return xsimd::hadd(s);
}
template <int Chains>
constexpr double xsimd_flop_per_iter() {
  return 2.0 * Chains * xsimd::batch<float>::size;
}

// The same with 512-bit registers, compiled for AVX-512 whatever -march says, run only when the CPU
// has it: says what an x86-64-v4 build would gain on this CPU.
template <int Chains>
__attribute__((target("avx512f"))) float avx512_chains(std::int64_t iters) {
  __m512 acc[Chains];
  for (int i = 0; i < Chains; ++i) acc[i] = _mm512_set1_ps(1.0f + 0.001f * static_cast<float>(i));
  __m512 m = _mm512_set1_ps(0.99999f), a = _mm512_set1_ps(1e-6f);
  asm volatile("" : "+v"(m), "+v"(a));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < Chains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  }
  __m512 s = acc[0];
  for (int i = 1; i < Chains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float sum = 0;
  for (float v : lanes) sum += v;
  return sum;
}

// GFLOP/s by wall time (what the process got) and by each thread's CPU time (what the core does
// while it runs: other tenants only deschedule us, so this is the hardware's rate).
struct result {
  double wall_median, wall_best, cpu_median, cpu_best;
};

// Runs `kernel(iters)` on `threads` threads at once (one TBB task each).
template <class K>
result measure(K kernel, double flop_per_iter, int threads, std::int64_t iters) {
  tbb::task_arena arena(threads);
  const double flop = flop_per_iter * static_cast<double>(iters);  // per thread
  const repeat rep{.warmup = 2, .min_reps = 7, .max_reps = 15, .budget_ms = 600};
  samples cpu_rate;  // sum over threads of flop / that thread's CPU time
  int calls = 0;
  auto once = [&] {
    std::vector<double> cpu_ms(static_cast<std::size_t>(threads));
    arena.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int>(0, threads, 1),
          [&](const tbb::blocked_range<int>& r) {
            for (int t = r.begin(); t != r.end(); ++t) {
              const double c0 = thread_cpu_ms();
              do_not_optimize(kernel(iters));
              cpu_ms[static_cast<std::size_t>(t)] = thread_cpu_ms() - c0;
            }
          },
          tbb::simple_partitioner{});
    });
    if (calls++ < rep.warmup) return;
    double rate = 0;
    for (double ms : cpu_ms) rate += flop / (ms * 1e6);
    cpu_rate.add(rate);
  };
  const samples s = time_it(once, rep);
  const double total = flop * threads;
  return {total / (s.median() * 1e6), total / (s.min() * 1e6), cpu_rate.median(), cpu_rate.max()};
}

// The chain count that reached the highest rate (enough chains to cover latency x pipes).
template <int... Chains, class Pick>
result best_of(Pick pick) {
  result best{0, 0, 0, 0};
  for (result r : {pick.template operator()<Chains>()...})
    if (r.cpu_median > best.cpu_median) best = r;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = tbb::info::default_concurrency();
  const std::int64_t iters = std::stoll(arg(argc, argv, "iters", flag(argc, argv, "quick") ? "4000000" : "20000000"));
  print_header("FP32 FMA peak",
               cat("- kernel: independent FMA chains, ", iters, " iterations per thread, 7 to 15 runs each\n"
                   "- wall: flop / wall time; CPU: sum over threads of flop / that thread's CPU time, which time spent "
                   "descheduled by other tenants does not inflate. Cells: median (best)\n"));

  table t({"registers", "chains", "threads", "GFLOP/s wall", "GFLOP/s CPU", "GHz implied (CPU median)"});
  // Both FMA pipes of an AMD Zen or Intel core issue one FMA per cycle: flop/cycle = 2 x 2 x width.
  auto row = [&](const std::string& regs, const std::string& chains, int threads, result r, int width) {
    t.add({regs, chains, std::to_string(threads), cat(fixed(r.wall_median, 1), " (", fixed(r.wall_best, 1), ")"),
           cat(fixed(r.cpu_median, 1), " (", fixed(r.cpu_best, 1), ")"), fixed(r.cpu_median / threads / (4.0 * width), 2)});
  };
  const std::string arch = cat("xsimd ", xsimd::default_arch::name(), " (this build)");
  result one{}, all{};
  for (int threads : {1, cores}) {
    auto pick = [&]<int C>() { return measure(xsimd_chains<C>, xsimd_flop_per_iter<C>(), threads, iters); };
    const result r = best_of<8, 10, 12>(pick);
    row(arch, "best of 8/10/12", threads, r, xsimd::batch<float>::size);
    (threads == 1 ? one : all) = r;
    if (cores == 1) break;
  }
  result one512{}, all512{};
  const bool has512 = __builtin_cpu_supports("avx512f");
  if (has512) {
    for (int threads : {1, cores}) {
      auto pick = [&]<int C>() { return measure(avx512_chains<C>, 2.0 * C * 16, threads, iters / 2); };
      const result r = best_of<8, 12, 16, 24>(pick);
      row("AVX-512 zmm (target attribute)", "best of 8/12/16/24", threads, r, 16);
      (threads == 1 ? one512 : all512) = r;
      if (cores == 1) break;
    }
  }
  t.print();
  // The peak is the CPU-time median of the best chain count: the hardware's rate, not the share of
  // a busy machine this process happened to get.
  std::cout << "Peak per core: " << fixed(one.cpu_median, 1) << " GFLOP/s with " << xsimd::batch<float>::size
            << "-float registers";
  if (has512)
    std::cout << "; AVX-512 registers reach " << fixed(one512.cpu_median, 1) << " ("
              << fixed(one512.cpu_median / one.cpu_median, 2) << "x)";
  std::cout << ".\n\n";
  // Read by bench/run.sh and handed to the other benchmarks as the denominators of "% of peak": the widest
  // registers this CPU runs, since our GEMM (gemm::avx512) uses them where they exist.
  const result& peak_one = has512 ? one512 : one;
  const result& peak_all = has512 ? all512 : all;
  std::cout << "PEAK_GFLOPS_1=" << fixed(peak_one.cpu_median, 1)
            << " PEAK_GFLOPS_ALL=" << fixed(cores > 1 ? peak_all.cpu_median : peak_one.cpu_median, 1)
            << " THREADS=" << cores << " REGISTERS=" << (has512 ? "zmm" : "xsimd") << '\n';
}
