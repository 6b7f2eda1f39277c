#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++, build-fuzz/) and runs each for a bounded time, one after the other.
# Usage: fuzz/run.sh [seconds per target, default 60] [target...]
#   targets: safetensors config vocab wordpiece idx png wav cli (default: all that were built)
# The committed seeds (fuzz/corpus/<target>) are only read; what a run discovers goes to build-fuzz/corpus/<target>,
# crashing inputs to build-fuzz/artifacts/<target>/, the log to build-fuzz/logs/<target>.log. Prints a summary
# table at the end and exits non-zero if any target found a crash.
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift $(( $# > 0 ? 1 : 0 ))
all=(safetensors config vocab wordpiece idx png wav cli)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

# Debug: assertions (Eigen's, the library's) stay on; the targets add -O1 themselves.
CXX="${CXX:-clang++}" cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DHYBRID_BUILD_FUZZ=ON \
  -DHYBRID_BUILD_TESTS=OFF -DHYBRID_BUILD_EXAMPLES=OFF -DHYBRID_BUILD_TOOLS=OFF -DHYBRID_WITH_CUDA=OFF >/dev/null || exit 1
built=()
for t in "${targets[@]}"; do
  if grep -q "^${t}_fuzz:" build-fuzz/Makefile 2>/dev/null || [ -f build-fuzz/build.ninja ]; then built+=("$t"); else
    echo "fuzz/run.sh: no target ${t}_fuzz (not configured: see fuzz/CMakeLists.txt)" >&2; fi
done
cmake --build build-fuzz -j"$(nproc)" --target "${built[@]/%/_fuzz}" || exit 1

dict_of() {
  case "$1" in
    safetensors) echo fuzz/dict/safetensors.dict ;;
    config) echo fuzz/dict/json.dict ;;
    vocab | wordpiece) echo fuzz/dict/wordpiece.dict ;;
    png) echo fuzz/dict/png.dict ;;
    wav) echo fuzz/dict/wav.dict ;;
    cli) echo fuzz/dict/cli.dict ;;
  esac
}

mkdir -p build-fuzz/logs
status=0
summary=$(printf '%-12s %6s %11s %8s %7s %7s %6s  %s\n' target secs execs exec/s cov ft corpus result)
for t in "${built[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  dict=$(dict_of "$t")
  log="build-fuzz/logs/$t.log"
  echo "== $t: ${secs} s" >&2
  start=$(date +%s)
  # -timeout: one input running 10 s is a finding; -rss_limit_mb: so is one needing 2 GB.
  # Absolute paths: cli_fuzz works in a scratch directory of its own.
  ./build-fuzz/fuzz/"${t}"_fuzz "$PWD/build-fuzz/corpus/$t" "$PWD/fuzz/corpus/$t" ${dict:+-dict="$PWD/$dict"} \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$PWD/build-fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  if [ $rc -eq 0 ]; then result=ok; else
    result="FOUND (rc $rc): $(ls -t "build-fuzz/artifacts/$t" | head -1) -- see $log"; status=1; fi
  summary+=$'\n'$(printf '%-12s %6s %11s %8s %7s %7s %6s  %s' "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$result")
done
echo "$summary"
exit $status
