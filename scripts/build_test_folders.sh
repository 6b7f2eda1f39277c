#!/usr/bin/env bash
# Builds, in BUILD_DIR, the test executables (tests.<folder>, see tests/CMakeLists.txt) that hold the tests a
# CTest regex selects, the folders side by side (Makefiles would build several --target goals one after the other).
# Usage: scripts/build_test_folders.sh BUILD_DIR REGEX   e.g. build-asan '^(io|autodiff)\.'
set -euo pipefail
cd "$(dirname "$0")/.."
build="$1" regex="$2"
targets=()
for f in tests/*/*_test.cpp; do
  name="${f#tests/}"; name="${name%.cpp}"; name="${name//\//.}"
  folder="tests.${name%%.*}"
  # Only folders configured in BUILD_DIR count (tests.cuda exists only with the CUDA toolkit).
  [[ "$name" =~ $regex && -d "$build/tests/CMakeFiles/$folder.dir" && ! " ${targets[*]} " =~ " $folder " ]] &&
    targets+=("$folder")
done
((${#targets[@]})) || { echo "no test folder holds a test matching '$regex'" >&2; exit 1; }
# What every folder shares first, then the folders at once.
cmake --build "$build" -j"$(nproc)" --target hybrid_test_main $([[ -d "$build/tests/CMakeFiles/hybrid_test_pch.dir" ]] && echo hybrid_test_pch)
printf '%s\n' "${targets[@]}" | xargs -P"$(nproc)" -I{} cmake --build "$build" -j"$(nproc)" --target {}
