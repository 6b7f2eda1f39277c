#!/usr/bin/env bash
# Builds the benchmarks (Release, -O3) into build-bench and runs them all, printing Markdown tables;
# a copy goes to build-bench/bench-results.md. Not a test: nothing here passes or fails on speed.
#   bench/run.sh [--quick]
#   HYBRID_BENCH_QUIET_LOAD=0.5 HYBRID_BENCH_WAIT_S=600 bench/run.sh   # wait for a quiet machine first
#   OPENBLAS_CORETYPE=SkylakeX bench/run.sh   # OpenBLAS's AVX-512 kernels (0.3.21 sees Zen 5 as Haswell)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-bench
args=("$@")

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHYBRID_BUILD_BENCH=ON -DHYBRID_BUILD_TESTS=OFF \
  -DHYBRID_BUILD_EXAMPLES=OFF -DHYBRID_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target peak_flops gemm_bench elementwise_bench

# Timings on a shared machine are only as good as its quietest moment: optionally wait for one.
if [[ -n "${HYBRID_BENCH_QUIET_LOAD:-}" ]]; then
  deadline=$((SECONDS + ${HYBRID_BENCH_WAIT_S:-600}))
  while awk -v max="$HYBRID_BENCH_QUIET_LOAD" '{exit !($1 > max)}' /proc/loadavg && ((SECONDS < deadline)); do
    sleep 10
  done
fi

out="$build/bench-results.md"
{
  echo "# hybrid benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  peak_out=$("$build/bench/peak_flops" "${args[@]}")
  echo "$peak_out"
  peak_line=$(grep '^PEAK_GFLOPS_1=' <<<"$peak_out")
  peak1=$(sed -E 's/.*PEAK_GFLOPS_1=([0-9.]+).*/\1/' <<<"$peak_line")
  peak_all=$(sed -E 's/.*PEAK_GFLOPS_ALL=([0-9.]+).*/\1/' <<<"$peak_line")
  echo
  "$build/bench/gemm_bench" --peak1="$peak1" --peak-all="$peak_all" "${args[@]}"
  "$build/bench/elementwise_bench" "${args[@]}"
} | tee "$out"
echo "(written to $out)"
