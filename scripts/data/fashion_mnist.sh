#!/usr/bin/env bash
# Fashion-MNIST (Debian dataset-fashion-mnist) unpacked to data/fashion-mnist/*-ubyte.
set -euo pipefail
src=/usr/share/datasets/fashion-mnist
dst=data/fashion-mnist
mkdir -p "$dst"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ ! -s "$dst/$f" ]; then
    gunzip -c "$src/$f.gz" > "$dst/$f.tmp"
    mv -f "$dst/$f.tmp" "$dst/$f"
  fi
done
