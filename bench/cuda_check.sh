#!/usr/bin/env bash
# The cuBLAS policy's device check, in one go (< 5 min on a 16-core machine with a GPU): build the CUDA test
# and benchmark, run the test (cuBLAS vs the CPU policy, batched, threshold, TF32, errors, a small MLP
# trained on both), then print the GEMM throughput table. Without a device everything builds and skips.
#
#   bench/cuda_check.sh [build-dir]           build (default build-cuda-check), test, benchmark
#   bench/cuda_check.sh --pack-deps [dir]     on a Debian 12 machine with scripts/setup.sh's packages: copy
#                                             Eigen, xsimd, doctest and oneTBB into dir (default .deps) for a
#                                             GPU machine that lacks them (carry it; about 12 MB)
# Environment: CUDAToolkit_ROOT (default /usr/local/cuda), JOBS (default nproc), QUICK=1 (shorter bench).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--pack-deps" ]]; then
  dest="${2:-.deps}"
  mkdir -p "$dest"
  dpkg -L libeigen3-dev libxsimd-dev doctest-dev libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 |
    grep -v -E '^/usr/share/(doc|man|lintian)' | while read -r f; do
      if [[ -f "$f" || -L "$f" ]]; then echo "${f#/}"; fi
    done | tar -C / -cf - --no-recursion -T - | tar -C "$dest" -xf -
  du -sh "$dest"
  echo "packed into $dest: add '/$dest/' to .git/info/exclude and carry it; cuda_check.sh uses $dest/usr when present"
  exit 0
fi

build="${1:-build-cuda-check}"
jobs="${JOBS:-$(nproc)}"
start=$SECONDS
export CUDAToolkit_ROOT="${CUDAToolkit_ROOT:-/usr/local/cuda}"
prefix=()
if [[ -d .deps/usr ]]; then
  prefix=(-DCMAKE_PREFIX_PATH="$PWD/.deps/usr")
  export LD_LIBRARY_PATH="$PWD/.deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

echo "== cuda_check $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname), $(nproc) cores"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
  echo "nvidia-smi: not found"
fi
"$CUDAToolkit_ROOT/bin/nvcc" --version | tail -2 || true
${CXX:-c++} --version | head -1

echo "== configure + build ($build, -j$jobs)"
mkdir -p "$build"
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHYBRID_WITH_CUDA=ON -DHYBRID_BUILD_BENCH=ON \
  -DHYBRID_BUILD_EXAMPLES=OFF "${prefix[@]}" >"$build/configure.log" 2>&1; then
  cat "$build/configure.log"
  echo "configure failed (missing Eigen/xsimd/doctest/oneTBB? see --pack-deps)"
  exit 1
fi
grep '^-- hybrid' "$build/configure.log"
cmake --build "$build" -j "$jobs" --target cuda.gemm_cublas_test cuda_gemm_bench
echo "built in $((SECONDS - start)) s"

status=0
echo "== tests/cuda/gemm_cublas_test"
timeout 120 "$build/tests/cuda.gemm_cublas_test" || status=$?

echo "== bench/cuda_gemm_bench"
bench_args=()
if [[ "${QUICK:-0}" == 1 ]]; then bench_args=(--quick); fi
timeout 150 "$build/bench/cuda_gemm_bench" "${bench_args[@]}" || status=$((status ? status : $?))

echo "== done in $((SECONDS - start)) s, status $status"
exit "$status"
