#!/usr/bin/env bash
# Installs every Debian package the build, tests and demo need (idempotent; apt-get only).
set -euo pipefail
PKGS=(g++ cmake make libeigen3-dev libxsimd-dev libtbb-dev doctest-dev libopenblas-dev
      nlohmann-json3-dev libutf8proc-dev dataset-fashion-mnist wordnet-base fortunes fortunes-min
      ruby-gemojione espeak-ng libpng-dev)
missing=()
# npm (for the bert-base-uncased vocabulary) usually comes with the machine's Node.js; Debian's npm
# package conflicts with that install, so it is only asked for when no npm command exists.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
