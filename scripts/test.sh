#!/usr/bin/env bash
# Installs what is missing, fetches the real data, builds everything and runs every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch_data.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHYBRID_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
# Reliability (docs/reliability.md): parsers, autodiff and ops again under ASan + UBSan, in build-asan/.
scripts/test_sanitized.sh
