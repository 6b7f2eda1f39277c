#!/usr/bin/env bash
# Builds the tests of every parser (tests/io) and of the autodiff core (tests/autodiff) with AddressSanitizer +
# UndefinedBehaviorSanitizer (g++, any report fails the test) in build-asan/, and runs them.
# Usage: scripts/test_sanitized.sh [ctest -R regex]   (default: the whole subset)
set -euo pipefail
cd "$(dirname "$0")/.."
subset='^(io|autodiff)\.'
regex="${1:-$subset}"
# Unity units of 4 test files: the subset's few folders still fill both cores.
# -O1: ASan's own recommendation, and a third of -O3's compile time, which dominates here; -g1: line numbers in reports.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DHYBRID_SANITIZE=address,undefined -DHYBRID_WERROR=ON -DHYBRID_BUILD_EXAMPLES=OFF -DHYBRID_BUILD_TOOLS=OFF \
  -DHYBRID_WITH_CUDA=OFF -DHYBRID_TEST_UNITY_BATCH=4 >/dev/null
scripts/build_test_folders.sh build-asan "$regex"
# halt_on_error/abort: a report ends the test with a failure; detect_leaks: LeakSanitizer runs too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -R "$regex"
