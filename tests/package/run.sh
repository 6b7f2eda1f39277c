#!/usr/bin/env bash
# package.consumer: installs the build tree into a temporary prefix and builds and runs a consumer three ways:
# find_package(hybrid CONFIG) (also against hybrid::compiled, plus hybrid::cuda where the build has it),
# pkg-config flags only, and add_subdirectory of the source tree.
# Usage: run.sh SOURCE_DIR BUILD_DIR VERSION CXX
set -euo pipefail
src="$1" build="$2" version="$3" cxx="$4"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hybrid_package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# -O0: this test checks that a consumer compiles, links and runs, not its speed (the build is most of its time).
fast=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0)
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/hybrid/hybrid.hpp"
# The exported targets name OpenBLAS and utf8proc by imported target (hybridConfig.cmake finds them on the
# consumer's machine), never by this machine's paths.
targets=$(find "$tmp/prefix" -name hybridTargets.cmake)
test -n "$targets"
if grep -E 'libopenblas|libutf8proc|openblas-pthread' "$targets"; then
  echo "package.consumer: the installed targets carry this machine's library paths" >&2
  exit 1
fi
# The same for hybrid.pc where OpenBLAS has a pkg-config module of its own.
if pkg-config --exists openblas && grep -E 'libopenblas|openblas-pthread' "$tmp/prefix/share/pkgconfig/hybrid.pc"; then
  echo "package.consumer: hybrid.pc carries this machine's OpenBLAS paths" >&2
  exit 1
fi

echo "== find_package(hybrid CONFIG)"
cmake -S "$src/tests/package" -B "$tmp/find" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_CXX_COMPILER="$cxx" \
  -DHYBRID_EXPECTED_VERSION="$version" "${fast[@]}" >/dev/null
cmake --build "$tmp/find" >/dev/null
"$tmp/find/consumer" "$tmp"
"$tmp/find/compiled_consumer" "$tmp"  # the same program linked against the installed libhybrid_compiled
# A build with the cuBLAS policy installs hybrid::cuda: a consumer must then find it and link against it.
if grep -q '^HYBRID_WITH_CUDA:BOOL=ON' "$build/CMakeCache.txt"; then
  test -x "$tmp/find/cuda_consumer"
  "$tmp/find/cuda_consumer"
fi

echo "== pkg-config"
export PKG_CONFIG_PATH="$tmp/prefix/share/pkgconfig"
test "$(pkg-config --modversion hybrid)" = "$version"
# shellcheck disable=SC2046  # pkg-config's output is meant to be split into words
"$cxx" -O0 "$src/tests/package/pkg_config_consumer.cpp" -o "$tmp/pc_consumer" $(pkg-config --cflags --libs hybrid)
"$tmp/pc_consumer"

echo "== add_subdirectory"
cmake -S "$src/tests/package" -B "$tmp/sub" -DHYBRID_CONSUMER_SOURCE="$src" -DCMAKE_CXX_COMPILER="$cxx" \
  -DHYBRID_EXPECTED_VERSION="$version" "${fast[@]}" >/dev/null
cmake --build "$tmp/sub" --target consumer >/dev/null
"$tmp/sub/consumer" "$tmp"
