#!/usr/bin/env bash
# Prints the build targets (tests.<folder>, see tests/CMakeLists.txt) that hold the tests a CTest regex selects.
# Usage: scripts/test_folders.sh REGEX BUILD_DIR   e.g. '^(io|autodiff)\.' build-asan -> tests.autodiff tests.io
# Only folders configured in BUILD_DIR count (tests.cuda exists only with the CUDA toolkit).
set -euo pipefail
cd "$(dirname "$0")/.."
regex="$1" build="$2"
targets=()
for f in tests/*/*_test.cpp; do
  name="${f#tests/}"; name="${name%.cpp}"; name="${name//\//.}"
  folder="tests.${name%%.*}"
  [[ "$name" =~ $regex && -d "$build/tests/CMakeFiles/$folder.dir" && ! " ${targets[*]} " =~ " $folder " ]] &&
    targets+=("$folder")
done
echo "${targets[@]}"
