#!/usr/bin/env bash
# Puts the real data sets the tests and demo use under data/ (from Debian packages and npm only).
# Each recipe is one script in scripts/data/, idempotent, and writes only below data/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
for recipe in scripts/data/*.sh; do
  [ -e "$recipe" ] || continue
  bash "$recipe"
done
