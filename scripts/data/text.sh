#!/usr/bin/env bash
# Real English text for masked-LM pre-training and gloss classification, copied under data/text/:
#   data/text/wordnet/data.{noun,verb,adj,adv}  WordNet 3.0 synsets (Debian wordnet-base, WordNet licence):
#                                               117,659 glosses, each with its lexicographer file (lexnames(5))
#   data/text/fortunes/<category>               fortune cookie files (Debian fortunes, fortunes-min):
#                                               items separated by lines holding only "%"
# The .dat indexes and .u8 links are left out. Idempotent: files already in place are not copied again.
set -euo pipefail
dst=data/text
wn=/usr/share/wordnet
fo=/usr/share/games/fortunes

need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" ||
  { echo "text.sh: Debian package $1 is missing: run scripts/setup.sh" >&2; exit 1; }; }
need wordnet-base
need fortunes
need fortunes-min

mkdir -p "$dst/wordnet" "$dst/fortunes"
copy() {  # copy SRC DST unless DST already holds the same bytes; via a temp name so a crash leaves no half file
  if ! cmp -s "$1" "$2"; then
    cp -f "$1" "$2.tmp"
    mv -f "$2.tmp" "$2"
  fi
}
for pos in noun verb adj adv; do
  copy "$wn/data.$pos" "$dst/wordnet/data.$pos"
done
# Synset lines are the ones not starting with two spaces (those are the licence header).
n=$(cat "$dst"/wordnet/data.{noun,verb,adj,adv} | grep -vc '^  ' || true)
if [ "$n" != 117659 ]; then
  echo "text.sh: WordNet has $n synsets, expected 117,659 (WordNet 3.0)" >&2
  exit 1
fi
count=0
for f in "$fo"/*; do
  name=$(basename "$f")
  case "$name" in *.dat | *.u8) continue ;; esac
  [ -f "$f" ] || continue
  copy "$f" "$dst/fortunes/$name"
  count=$((count + 1))
done
if [ "$count" -lt 40 ]; then
  echo "text.sh: only $count fortune files in $fo, expected about 44" >&2
  exit 1
fi
