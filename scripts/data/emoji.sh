#!/usr/bin/env bash
# gemojione emoji (Debian ruby-gemojione, images CC-BY-SA-4.0) as a paired image + text + speech set:
#   data/emoji/png/<UNICODE>.png       the 64x64 PNGs, copied so data/ is self-contained
#   data/emoji/speech/<UNICODE>-<k>.wav the emoji's name spoken by espeak-ng, k = 0..VARIANTS-1
#                                       (22,050 Hz mono 16-bit, as espeak-ng writes it; the C++ loader
#                                       resamples to 16 kHz, so the recipe needs no sox)
#   data/emoji/manifest.tsv            one line per emoji, written last (its presence means "complete"):
#     unicode  name  category  keywords('|')  png  wav('|')  voices('|', "voice speed pitch" per wav)
#     (paths relative to data/emoji; all 1,794 emoji, the loader drops the tiny categories)
# Voice, speed and pitch of variant k are a deterministic function of the code point (CRC-32), so reruns
# and other machines produce the same set. Idempotent: nothing is redone when the manifest and every file
# are in place (about 1 s); the speech is regenerated as a whole otherwise (about 20 CPU s, see below).
set -euo pipefail
dst=data/emoji
VARIANTS=2
VOICES="en-us en-gb+f2 en+m3 en-gb-scotland en+f4"
SPEEDS="140 160 180"
PITCHES="40 50 60"

need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" ||
  { echo "emoji.sh: Debian package $1 is missing: run scripts/setup.sh" >&2; exit 1; }; }
need ruby-gemojione
need espeak-ng
command -v ruby > /dev/null || { echo "emoji.sh: ruby not found (a dependency of ruby-gemojione)" >&2; exit 1; }

index=$(dpkg -L ruby-gemojione | grep -E '/gems/gemojione-[^/]+/config/index\.json$' | head -n1 || true)
[ -n "$index" ] && [ -f "$index" ] || { echo "emoji.sh: gemojione config/index.json not found in ruby-gemojione" >&2; exit 1; }
pngdir=$(dirname "$(dirname "$index")")/assets/png
[ -d "$pngdir" ] || { echo "emoji.sh: $pngdir not found" >&2; exit 1; }

mkdir -p "$dst/png"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One ruby pass: checks the index, copies the PNGs (7 MB), writes the manifest (to tmp) and the speech jobs.
VOICES="$VOICES" SPEEDS="$SPEEDS" PITCHES="$PITCHES" ruby -rjson -rzlib -e '
index, pngdir, dst, tmp, variants = ARGV[0], ARGV[1], ARGV[2], ARGV[3], ARGV[4].to_i
voices, speeds, pitches = ENV["VOICES"].split, ENV["SPEEDS"].split, ENV["PITCHES"].split
items = JSON.parse(File.read(index)).values.sort_by { |e| e["unicode"] }
abort "emoji.sh: #{index} holds #{items.size} emoji, expected about 1,794" if items.size < 1700
clean = ->(s) { s.to_s.gsub(/[\t\r\n|]/, " ").strip }
man = File.open("#{tmp}/manifest.tsv", "w")
man.puts %w[unicode name category keywords png wav voices].join("\t")
jobs = File.open("#{tmp}/jobs", "wb")
items.each do |e|
  u = e["unicode"]
  abort "emoji.sh: odd code point #{u.inspect}" unless u =~ /\A[0-9A-Fa-f]+(-[0-9A-Fa-f]+)*\z/
  src = "#{pngdir}/#{u}.png"
  abort "emoji.sh: missing image #{src}" unless File.file?(src)
  name = clean.(e["name"])
  abort "emoji.sh: emoji #{u} has no name" if name.empty?
  spoken = name.tr("_", " ")
  spoken = " " + spoken if spoken.start_with?("-")   # never an option to espeak-ng
  h = Zlib.crc32(u)
  # Variant k: voices drawn without repetition, speed and pitch from the same hash.
  first = h % voices.size
  step = 1 + (h / voices.size) % (voices.size - 1)   # voices.size is prime: any step visits all
  wavs, specs = [], []
  variants.times do |k|
    v = voices[(first + k * step) % voices.size]
    s = speeds[(h >> (8 + 3 * k)) % speeds.size]
    p = pitches[(h >> (20 + 3 * k)) % pitches.size]
    wav = "speech/#{u}-#{k}.wav"
    wavs << wav
    specs << "#{v} #{s} #{p}"
    jobs.write([v, s, p, "#{dst}/speech.new/#{u}-#{k}.wav", spoken].join("\0") + "\0")
  end
  copy = "#{dst}/png/#{u}.png"
  unless File.size?(copy) == File.size(src)    # copied whole (tmp + rename) or not at all
    IO.copy_stream(src, copy + ".tmp")
    File.rename(copy + ".tmp", copy)
  end
  kw = (e["keywords"] || []).map(&clean).reject(&:empty?).uniq
  man.puts [u, name, clean.(e["category"]), kw.join("|"), "png/#{u}.png", wavs.join("|"), specs.join("|")].join("\t")
end
' "$index" "$pngdir" "$dst" "$tmp" "$VARIANTS"

# Speech: espeak-ng's library driven from ruby (Fiddle), 2 worker processes. One espeak-ng process per clip
# costs ~0.07 CPU s of start-up each (4+ minutes for 3,588 clips); one library instance speaks a clip in ~6 ms.
# A library instance carries a little synthesis state (pitch flutter phase) from one clip to the next, so
# clips are bit-identical to `espeak-ng -v V -s S -p P -w` only for each worker's first clip, and a clip's
# exact samples depend on the clips its worker spoke before it. To keep the data set reproducible, the
# partition is fixed (clip i goes to worker i mod 2, in code-point order) and the whole speech folder is
# regenerated whenever any clip is missing or the manifest changed.
cat > "$tmp/speak.rb" <<'RUBY'
require "fiddle"
jobs_file, worker, workers = ARGV[0], ARGV[1].to_i, ARGV[2].to_i
begin
  lib = Fiddle.dlopen("libespeak-ng.so.1")
rescue Fiddle::DLError => e
  abort "emoji.sh: cannot load libespeak-ng.so.1 (Debian libespeak-ng1, a dependency of espeak-ng): #{e.message}"
end
fn = ->(name, args, ret) { Fiddle::Function.new(lib[name], args, ret) }
t = Fiddle
initialize = fn.("espeak_Initialize", [t::TYPE_INT, t::TYPE_INT, t::TYPE_VOIDP, t::TYPE_INT], t::TYPE_INT)
set_callback = fn.("espeak_SetSynthCallback", [t::TYPE_VOIDP], t::TYPE_VOID)
by_name = fn.("espeak_SetVoiceByName", [t::TYPE_VOIDP], t::TYPE_INT)
by_properties = fn.("espeak_SetVoiceByProperties", [t::TYPE_VOIDP], t::TYPE_INT)
set_parameter = fn.("espeak_SetParameter", [t::TYPE_INT, t::TYPE_INT, t::TYPE_INT], t::TYPE_INT)
synth = fn.("espeak_Synth", [t::TYPE_VOIDP, t::TYPE_SIZE_T, t::TYPE_INT, t::TYPE_INT, t::TYPE_INT, t::TYPE_INT,
                             t::TYPE_VOIDP, t::TYPE_VOIDP], t::TYPE_INT)
synchronize = fn.("espeak_Synchronize", [], t::TYPE_INT)
AUDIO_OUTPUT_SYNCHRONOUS, INITIALIZE_DONT_EXIT = 2, 0x8000
RATE, PITCH, POS_CHARACTER, CHARS_UTF8, ENDPAUSE = 1, 3, 1, 1, 0x1000
rate = initialize.call(AUDIO_OUTPUT_SYNCHRONOUS, 0, nil, INITIALIZE_DONT_EXIT)
abort "emoji.sh: espeak_Initialize failed" if rate <= 0
pcm = +""
callback = Fiddle::Closure::BlockCaller.new(t::TYPE_INT, [t::TYPE_VOIDP, t::TYPE_INT, t::TYPE_VOIDP]) do |wav, n, _|
  pcm << wav.to_s(2 * n) if n > 0 && !wav.null?
  0
end
set_callback.call(callback)
selector = Fiddle::Pointer.malloc(64)  # espeak_VOICE: name, languages, identifier, gender, age, variant, ...
fields = File.binread(jobs_file).split("\0")
abort "emoji.sh: malformed job list" unless fields.size % 5 == 0
fields.each_slice(5).each_with_index do |(voice, speed, pitch, out, text), i|
  next unless i % workers == worker
  # As the espeak-ng program does: a voice name, else a language (which takes "+variant").
  if by_name.call(voice) != 0
    language = Fiddle::Pointer[voice + "\0"]
    selector[0, 64] = "\0" * 64
    selector[8, 8] = [language.to_i].pack("Q")
    abort "emoji.sh: espeak-ng has no voice #{voice}" if by_properties.call(selector) != 0
  end
  set_parameter.call(RATE, speed.to_i, 0)
  set_parameter.call(PITCH, pitch.to_i, 0)
  pcm = +""
  abort "emoji.sh: espeak_Synth failed for #{out}" if synth.call(text, text.bytesize + 1, 0, POS_CHARACTER, 0,
                                                                 CHARS_UTF8 | ENDPAUSE, nil, nil) != 0
  synchronize.call
  abort "emoji.sh: no audio for #{out} (#{voice}: #{text})" if pcm.empty?
  header = ["RIFF", 36 + pcm.bytesize, "WAVE", "fmt ", 16, 1, 1, rate, 2 * rate, 2, 16, "data", pcm.bytesize]
  File.binwrite(out, header.pack("a4Va4a4VvvVVvva4V") + pcm)
end
RUBY
speech_ok=1
cmp -s "$tmp/manifest.tsv" "$dst/manifest.tsv" || speech_ok=0
if ((speech_ok)); then
  while read -r w; do [ -s "$dst/$w" ] || { speech_ok=0; break; }; done < <(cut -f6 "$tmp/manifest.tsv" | tail -n +2 | tr '|' '\n')
fi
if ((!speech_ok)); then
  echo "emoji.sh: speaking $(($(wc -l < "$tmp/manifest.tsv") - 1)) emoji names x $VARIANTS voices with espeak-ng" >&2
  rm -f "$dst/manifest.tsv"  # incomplete until the speech is in place
  rm -rf "$dst/speech.new"
  mkdir -p "$dst/speech.new"
  ruby "$tmp/speak.rb" "$tmp/jobs" 0 2 & w0=$!
  ruby "$tmp/speak.rb" "$tmp/jobs" 1 2 & w1=$!
  wait "$w0" || { wait "$w1" || true; exit 1; }
  wait "$w1" || exit 1
  rm -rf "$dst/speech"
  mv "$dst/speech.new" "$dst/speech"
fi

# Every WAV in the manifest must exist before the manifest is published.
missing=$(cut -f6 "$tmp/manifest.tsv" | tail -n +2 | tr '|' '\n' | while read -r w; do [ -s "$dst/$w" ] || echo "$w"; done | head -n3)
[ -z "$missing" ] || { echo "emoji.sh: speech files missing: $missing" >&2; exit 1; }
if ! cmp -s "$tmp/manifest.tsv" "$dst/manifest.tsv"; then
  cp "$tmp/manifest.tsv" "$dst/manifest.tsv.tmp" && mv -f "$dst/manifest.tsv.tmp" "$dst/manifest.tsv"
fi
