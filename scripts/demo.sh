#!/usr/bin/env bash
# Installs what is missing, fetches the real data, builds and runs the flagship demo (examples/flagship.cpp).
# Arguments go to the demo: scripts/demo.sh --quick is a one-minute smoke test, --help lists the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch_data.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target flagship
build/examples/flagship "$@"
