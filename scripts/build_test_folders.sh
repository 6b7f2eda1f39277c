#!/usr/bin/env bash
# Builds, in BUILD_DIR, the test executables (tests.<folder>, see tests/CMakeLists.txt) that hold the tests a
# CTest regex selects, in one build goal, tests.selected, so that they build in parallel (Makefiles build several
# --target goals one after the other, and two builds at once in one tree are not safe).
# Usage: scripts/build_test_folders.sh BUILD_DIR REGEX   e.g. build-asan '^(io|autodiff)\.'
set -euo pipefail
cd "$(dirname "$0")/.."
build="$1" regex="$2"
targets=()
for f in tests/*/*_test.cpp; do
  name="${f#tests/}"; name="${name%.cpp}"; name="${name//\//.}"
  folder="tests.${name%%.*}"
  [[ "$name" =~ $regex && ! " ${targets[*]} " =~ " $folder " ]] && targets+=("$folder")
done
((${#targets[@]})) || { echo "no test file matches '$regex'" >&2; exit 1; }
# Folders the build does not have (tests.cuda without the CUDA toolkit) are left out by CMake.
cmake "$build" -DHYBRID_TEST_TARGETS="$(IFS=';'; echo "${targets[*]}")" >/dev/null
cmake --build "$build" -j"$(nproc)" --target tests.selected
