// WAV reader: every supported sample format round-trips through a tiny writer; corrupt inputs throw a
// wav_error naming the byte offset (and never read out of bounds); a real espeak-ng file; the resampler.
#include <hybrid/io/wav.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::io::read_wav;
using hybrid::io::wav_error;

namespace {

using bytes = std::vector<unsigned char>;

void put_le(bytes& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_id(bytes& out, const char* id) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(id[i]));
}

struct wav_spec {
  int rate = 16000, channels = 1, bits = 16;
  bool is_float = false, extensible = false;
};

// The raw encoding of one sample given as the integer code (PCM) or the value (float).
void put_sample(bytes& out, const wav_spec& s, double v) {
  if (s.is_float && s.bits == 32) {
    const float f = static_cast<float>(v);
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    put_le(out, u, 4);
  } else if (s.is_float) {
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    put_le(out, u, 8);
  } else {
    put_le(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)), s.bits / 8);
  }
}

bytes fmt_chunk(const wav_spec& s) {
  bytes f;
  const int block = s.channels * s.bits / 8;
  put_le(f, s.extensible ? 0xFFFE : (s.is_float ? 3 : 1), 2);
  put_le(f, static_cast<std::uint64_t>(s.channels), 2);
  put_le(f, static_cast<std::uint64_t>(s.rate), 4);
  put_le(f, static_cast<std::uint64_t>(s.rate * block), 4);
  put_le(f, static_cast<std::uint64_t>(block), 2);
  put_le(f, static_cast<std::uint64_t>(s.bits), 2);
  if (s.extensible) {
    put_le(f, 22, 2);
    put_le(f, static_cast<std::uint64_t>(s.bits), 2);
    put_le(f, 0, 4);
    const unsigned char guid[16] = {static_cast<unsigned char>(s.is_float ? 3 : 1), 0, 0, 0, 0, 0, 0x10, 0,
                                    0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71};
    f.insert(f.end(), guid, guid + 16);
  }
  return f;
}

void put_chunk(bytes& out, const char* id, const bytes& body) {
  put_id(out, id);
  put_le(out, body.size(), 4);
  out.insert(out.end(), body.begin(), body.end());
  if (body.size() % 2) out.push_back(0);
}

// A whole file; `codes` are interleaved samples, `extra` chunks go between fmt and data.
bytes make_wav(const wav_spec& s, const std::vector<double>& codes, const std::vector<std::pair<const char*, bytes>>& extra = {}) {
  bytes data;
  for (double c : codes) put_sample(data, s, c);
  bytes body;
  put_id(body, "WAVE");
  put_chunk(body, "fmt ", fmt_chunk(s));
  for (auto& [id, b] : extra) put_chunk(body, id, b);
  put_chunk(body, "data", data);
  bytes out;
  put_id(out, "RIFF");
  put_le(out, body.size(), 4);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// The message of the wav_error thrown by parsing `b`, checking its offset.
std::string error_of(const bytes& b, std::uint64_t offset) {
  try {
    read_wav(std::span<const unsigned char>(b), "clip.wav");
  } catch (const wav_error& e) {
    CHECK(e.offset() == offset);
    CHECK(e.source() == "clip.wav");
    return e.what();
  }
  FAIL("no wav_error thrown");
  return {};
}

void set_le(bytes& b, std::size_t at, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.at(at + static_cast<std::size_t>(i)) = static_cast<unsigned char>(v >> (8 * i));
}

struct temp_path {
  fs::path path;
  explicit temp_path(const std::string& ext) {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hybrid_wav_test_" + std::to_string(rd()) + std::to_string(rd()) + ext);
  }
  ~temp_path() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  temp_path(const temp_path&) = delete;
  temp_path& operator=(const temp_path&) = delete;
};

}  // namespace

TEST_CASE("every PCM and float format round-trips to the expected floats") {
  struct one {
    wav_spec spec;
    std::vector<double> codes;
    std::vector<float> want;
  };
  const std::vector<one> cases = {
      {{.bits = 8}, {0, 128, 255, 64}, {-1.0f, 0.0f, 127.0f / 128, -0.5f}},
      {{.bits = 16}, {-32768, 0, 32767, 16384, -1}, {-1.0f, 0.0f, 32767.0f / 32768, 0.5f, -1.0f / 32768}},
      {{.bits = 24}, {-8388608, 8388607, 4194304, -2}, {-1.0f, 8388607.0f / 8388608, 0.5f, -2.0f / 8388608}},
      {{.bits = 32}, {-2147483648.0, 1073741824, -1}, {-1.0f, 0.5f, static_cast<float>(-1.0 / 2147483648.0)}},
      {{.bits = 32, .is_float = true}, {0.25, -0.75, 1.5, -3.0}, {0.25f, -0.75f, 1.0f, -1.0f}},  // clamped to [-1, 1]
      {{.bits = 64, .is_float = true}, {0.125, -1e300, 0.3}, {0.125f, -1.0f, 0.3f}},
      {{.bits = 16, .extensible = true}, {16384, -16384}, {0.5f, -0.5f}},
      {{.bits = 32, .is_float = true, .extensible = true}, {0.5, -0.25}, {0.5f, -0.25f}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.spec.bits);
    CAPTURE(c.spec.is_float);
    CAPTURE(c.spec.extensible);
    const auto w = read_wav(std::span<const unsigned char>(make_wav(c.spec, c.codes)));
    CHECK(w.sample_rate == 16000);
    CHECK(w.channels == 1);
    CHECK(w.bits_per_sample == c.spec.bits);
    CHECK(w.is_float == c.spec.is_float);
    REQUIRE(w.samples.size() == c.want.size());
    for (std::size_t i = 0; i < c.want.size(); ++i) CHECK(w.samples[i] == c.want[i]);
  }
}

TEST_CASE("channels are averaged to mono; unknown and odd-sized chunks are skipped") {
  const wav_spec st{.rate = 22050, .channels = 3, .bits = 16};
  const bytes odd = {'a', 'b', 'c'};  // 3 bytes + pad byte
  const auto b = make_wav(st, {16384, -16384, 8192, 32767, 32767, 32767}, {{"LIST", odd}, {"fact", bytes(4, 0)}});
  const auto w = read_wav(std::span<const unsigned char>(b));
  CHECK(w.sample_rate == 22050);
  CHECK(w.channels == 3);
  REQUIRE(w.samples.size() == 2);
  CHECK(w.samples[0] == doctest::Approx(8192.0 / 32768 / 3));
  CHECK(w.samples[1] == doctest::Approx(32767.0 / 32768));
  // Data before fmt, and bytes after the RIFF form (an ID3 tag), are fine.
  bytes swapped;
  put_id(swapped, "RIFF");
  bytes body;
  put_id(body, "WAVE");
  bytes data;
  put_le(data, 16384, 2);
  put_chunk(body, "data", data);
  put_chunk(body, "fmt ", fmt_chunk({}));
  put_le(swapped, body.size(), 4);
  swapped.insert(swapped.end(), body.begin(), body.end());
  swapped.insert(swapped.end(), {'I', 'D', '3', 0, 0});
  const auto w2 = read_wav(std::span<const unsigned char>(swapped));
  REQUIRE(w2.samples.size() == 1);
  CHECK(w2.samples[0] == 0.5f);
  // An empty data chunk is a valid, silent file.
  CHECK(read_wav(std::span<const unsigned char>(make_wav({}, {}))).samples.empty());
}

TEST_CASE("corrupt and unsupported inputs throw wav_error naming the file and byte offset") {
  const bytes good = make_wav({}, {1, 2, 3, 4});  // fmt body at 20, data chunk header at 36, samples at 44
  REQUIRE(good.size() == 52);
  CHECK(error_of(bytes(good.begin(), good.begin() + 7), 7).find("truncated header") != std::string::npos);
  {
    bytes b = good;
    b[0] = 'R', b[1] = 'I', b[2] = 'F', b[3] = 'X';
    const auto m = error_of(b, 0);
    CHECK(m.find("clip.wav: byte offset 0") == 0);
    CHECK(m.find("not a RIFF file") != std::string::npos);
    CHECK(m.find("RIFX") != std::string::npos);
  }
  {
    bytes b = good;
    b[8] = 'A';
    CHECK(error_of(b, 8).find("not 'WAVE'") != std::string::npos);
  }
  // Truncated anywhere: the RIFF size no longer fits the file.
  for (std::size_t n = 12; n < good.size(); ++n) {
    CAPTURE(n);
    CHECK(error_of(bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)), 4).find("RIFF size") !=
          std::string::npos);
  }
  {  // a streamed header whose sizes were never filled in
    bytes b = good;
    set_le(b, 4, 0xFFFFFFFF, 4);
    error_of(b, 4);
  }
  {  // a data chunk claiming more than there is
    bytes b = good;
    set_le(b, 40, 1000, 4);
    CHECK(error_of(b, 40).find("'data' of 1000 bytes extends past") != std::string::npos);
  }
  {  // RIFF size cuts a chunk header in half
    bytes b = good;
    set_le(b, 4, 4 + 24 + 4, 4);
    CHECK(error_of(b, 36).find("truncated chunk header") != std::string::npos);
  }
  auto with_fmt = [&](std::size_t field, std::uint64_t v, int n) {
    bytes b = good;
    set_le(b, 20 + field, v, n);
    return b;
  };
  CHECK(error_of(with_fmt(0, 2, 2), 20).find("unsupported format tag 2") != std::string::npos);  // MS ADPCM
  CHECK(error_of(with_fmt(14, 12, 2), 34).find("unsupported PCM sample size 12") != std::string::npos);
  CHECK(error_of(with_fmt(2, 0, 2), 22).find("zero channels") != std::string::npos);
  CHECK(error_of(with_fmt(4, 0, 4), 24).find("sample rate 0") != std::string::npos);
  CHECK(error_of(with_fmt(12, 4, 2), 32).find("block align 4") != std::string::npos);
  CHECK(error_of(with_fmt(8, 12345, 4), 28).find("byte rate 12345") != std::string::npos);
  {
    bytes b = make_wav({.bits = 16, .is_float = true}, {});  // float with 16 bits
    CHECK(error_of(b, 34).find("unsupported float sample size 16") != std::string::npos);
  }
  {
    bytes b = make_wav({.bits = 16, .extensible = true}, {1});
    b[20 + 24 + 5] ^= 0xFF;  // break the GUID
    CHECK(error_of(b, 44).find("KSDATAFORMAT") != std::string::npos);
  }
  {  // fmt chunk too small
    bytes b = good;
    set_le(b, 16, 14, 4);
    CHECK(error_of(b, 20).find("at least 16") != std::string::npos);
  }
  {  // no data: rename the data chunk
    bytes b = good;
    b[36] = 'x';
    CHECK(error_of(b, 52).find("no 'data' chunk") != std::string::npos);
  }
  {
    bytes b = good;
    b[12] = 'x';
    CHECK(error_of(b, 52).find("no 'fmt ' chunk") != std::string::npos);
  }
  {  // 7 bytes of 16-bit data: not whole frames (the pad byte keeps the RIFF layout valid)
    bytes b = good;
    set_le(b, 40, 7, 4);
    CHECK(error_of(b, 50).find("not a whole number of 2-byte frames") != std::string::npos);
  }
  {
    bytes b = make_wav({.bits = 32, .is_float = true}, {0.5, std::nan("")});
    CHECK(error_of(b, 48).find("non-finite") != std::string::npos);
  }
  {
    bytes b = make_wav({}, {1}, {{"fmt ", fmt_chunk({})}});
    CHECK(error_of(b, 36).find("second 'fmt '") != std::string::npos);
  }
}

TEST_CASE("random corruption never escapes as anything but wav_error") {
  const bytes good = make_wav({.channels = 2, .bits = 24, .extensible = true}, std::vector<double>(20, 1000),
                              {{"LIST", bytes(5, 'x')}});
  std::mt19937 rng(7);
  int parsed = 0, rejected = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    bytes b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<unsigned char>(rng());
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    try {
      const auto w = read_wav(std::span<const unsigned char>(b));
      for (float s : w.samples) REQUIRE((s >= -1.0f && s <= 1.0f));
      ++parsed;
    } catch (const wav_error&) {
      ++rejected;
    }
  }
  CHECK(parsed > 0);
  CHECK(rejected > 0);
}

TEST_CASE("files: read from disk, and a missing file names its path") {
  temp_path t(".wav");
  const bytes b = make_wav({.rate = 8000}, {100, -100, 0});
  std::ofstream(t.path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  const auto w = read_wav(t.path);
  CHECK(w.sample_rate == 8000);
  CHECK(w.samples.size() == 3);
  try {
    read_wav(fs::path("/nonexistent/dir/x.wav"));
    FAIL("no error");
  } catch (const wav_error& e) {
    CHECK(std::string(e.what()).find("/nonexistent/dir/x.wav: byte offset 0: cannot open") == 0);
  }
}

TEST_CASE("a real file spoken by espeak-ng") {
  if (!fs::exists("/usr/bin/espeak-ng")) {
    MESSAGE("skipped: /usr/bin/espeak-ng is not installed (scripts/setup.sh installs it)");
    return;
  }
  temp_path t(".wav");
  const std::string cmd = "/usr/bin/espeak-ng -w '" + t.path.string() + "' seven >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const auto w = read_wav(t.path);
  CHECK(w.sample_rate == 22050);
  CHECK(w.channels == 1);
  CHECK(w.bits_per_sample == 16);
  CHECK(w.seconds() > 0.2);
  CHECK(w.seconds() < 3.0);
  double energy = 0;
  for (float s : w.samples) energy += double(s) * s;
  CHECK(std::sqrt(energy / static_cast<double>(w.samples.size())) > 0.01);
  const auto r = hybrid::io::resample(w.samples, 22050, 16000);
  CHECK(r.size() == (w.samples.size() * 16000 + 22049) / 22050);
}

namespace {
std::vector<float> tone(double hz, int rate, std::size_t n) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(0.5 * std::sin(2 * std::numbers::pi * hz * i / rate));
  return x;
}
}  // namespace

TEST_CASE("resample keeps tones below the new Nyquist rate and removes those above") {
  for (const auto& rates : {std::pair{22050, 16000}, std::pair{16000, 22050}, std::pair{48000, 16000}}) {
    const int from = rates.first, to = rates.second;  // (clang 14 cannot capture structured bindings)
    CAPTURE(from);
    CAPTURE(to);
    const std::size_t n = static_cast<std::size_t>(from) / 4;
    const auto y = hybrid::io::resample(tone(440, from, n), from, to);
    REQUIRE(y.size() == (n * static_cast<std::size_t>(to) + static_cast<std::size_t>(from) - 1) / static_cast<std::size_t>(from));
    const auto want = tone(440, to, y.size());
    double worst = 0;
    for (std::size_t i = 100; i + 100 < y.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - want[i]));
    CHECK(worst < 2e-3);
  }
  // 10 kHz cannot exist at 16 kHz: it is filtered out, not aliased to 6 kHz.
  const auto y = hybrid::io::resample(tone(10000, 22050, 22050 / 4), 22050, 16000);
  double energy = 0;
  for (std::size_t i = 100; i + 100 < y.size(); ++i) energy += double(y[i]) * y[i];
  CHECK(std::sqrt(energy / static_cast<double>(y.size() - 200)) < 5e-3);
  // Same rate: a copy.
  const auto x = tone(300, 16000, 50);
  CHECK(hybrid::io::resample(x, 16000, 16000) == x);
  CHECK(hybrid::io::resample(std::vector<float>{}, 22050, 16000).empty());
  CHECK_THROWS_AS(hybrid::io::resample(x, 0, 16000), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
