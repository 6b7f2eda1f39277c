#!/usr/bin/env bash
# Checks that every translation unit of the project (tests, examples, tools, benchmarks) compiles without a
# warning under clang++ 14 with -Wall -Wextra -Wpedantic -Werror. clang emits all its warnings from the front
# end, so -fsyntax-only (no code generation, about half the time of a build) is a complete check.
# Tests are checked file by file (HYBRID_TEST_UNITY=OFF), not as the per-folder unity units.
# Usage: scripts/check_clang.sh [regex on source paths]   (needs clang-14: apt-get install clang-14)
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-.}"
cxx=$(command -v clang++-14 || command -v clang++)
cmake -S . -B build-clang-check -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DHYBRID_TEST_PCH=OFF -DHYBRID_TEST_UNITY=OFF -DHYBRID_WERROR=ON -DHYBRID_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
# One line per TU: the directory and the compile command with -fsyntax-only instead of an object file.
python3 - "$filter" > build-clang-check/syntax_commands.txt <<'PY'
import json, re, shlex, sys
for e in json.load(open("build-clang-check/compile_commands.json")):
    # compile_fail tests must fail to compile (CTest checks their messages); build-tree files are generated.
    if not re.search(sys.argv[1], e["file"]) or "/build-clang-check/" in e["file"] or "/compile_fail/" in e["file"]:
        continue
    args = shlex.split(e["command"])
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c":
            continue
        out.append(a)
    print(e["directory"] + "\t" + shlex.join(out + ["-fsyntax-only"]))
PY
n=$(wc -l < build-clang-check/syntax_commands.txt)
echo "clang++ -fsyntax-only -Werror on $n translation units"
failed=0
# shellcheck disable=SC2016  # the inner script gets its arguments from xargs
tr '\n' '\0' < build-clang-check/syntax_commands.txt |
  xargs -0 -P"$(nproc)" -n1 bash -c 'IFS=$'"'"'\t'"'"' read -r dir cmd <<< "$0"; cd "$dir" && eval "$cmd" || { echo "FAILED: $cmd" | cut -c1-300; exit 255; }' ||
  failed=1
[ "$failed" = 0 ] && echo "clang++: no warnings in $n translation units"
exit "$failed"
