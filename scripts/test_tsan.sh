#!/usr/bin/env bash
# ThreadSanitizer on the parallel paths: the ops and autodiff tests (every op runs serial vs oneTBB) built with
# -fsanitize=thread (g++) in build-tsan/, run with scripts/tsan.supp. Not part of CI: slow (TSan costs 5-15x).
# Usage: scripts/test_tsan.sh [ctest -R regex]   (default: ^(ops|autodiff)\.)
set -euo pipefail
cd "$(dirname "$0")/.."
regex="${1:-^(ops|autodiff)\.}"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DHYBRID_SANITIZE=thread -DHYBRID_WERROR=ON -DHYBRID_BUILD_EXAMPLES=OFF -DHYBRID_BUILD_TOOLS=OFF \
  -DHYBRID_WITH_CUDA=OFF >/dev/null
scripts/build_test_folders.sh build-tsan "$regex"
# OpenBLAS's own threads are not instrumented either: one thread.
export OPENBLAS_NUM_THREADS=1
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp}"
ctest --test-dir build-tsan --output-on-failure -j"$(nproc)" -R "$regex"
