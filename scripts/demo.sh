#!/usr/bin/env bash
# Installs what is missing, fetches the real data, builds and runs the flagship demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch_data.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
if [ -x build/examples/flagship ] || grep -q flagship examples/CMakeLists.txt 2>/dev/null; then
  cmake --build build -j"$(nproc)" --target flagship
  build/examples/flagship "$@"
else
  cmake --build build -j"$(nproc)" --target fashion_mnist
  build/examples/fashion_mnist "$@"
fi
