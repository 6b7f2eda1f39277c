// RIFF/WAVE reader (PCM 8/16/24/32-bit integer, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE of those),
// mixed down to mono floats in [-1, 1], plus a windowed-sinc resampler. Every size is checked first.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numbers>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/io/file_error.hpp"

// Layout (little-endian throughout):
//   [0, 4) "RIFF"  [4, 8) size of what follows  [8, 12) "WAVE"
//   then chunks: 4-byte id, 4-byte size, the body, one pad byte when the size is odd.
//   "fmt " (>= 16 bytes): format tag, channels, sample rate, byte rate, block align, bits per sample
//          [, extension size, valid bits, channel mask, 16-byte sub-format GUID for tag 0xFFFE]
//   "data": interleaved frames of block_align bytes. Other chunks (LIST, fact, ...) are skipped.
// Streamed files whose header sizes were never filled in (0 or 0xFFFFFFFF) are rejected: the sizes
// must describe the bytes actually present.

namespace hybrid::io {

// A malformed, unsupported or unreadable WAV input. what() reads "<source>: byte offset <n>: <problem>".
class wav_error : public file_offset_error {
 public:
  using file_offset_error::file_offset_error;
};

// A decoded file: mono samples (channels averaged) at the file's rate, and what the file held.
struct wav_audio {
  int sample_rate = 0;
  int channels = 0;         // in the file, before the mix-down
  int bits_per_sample = 0;  // container bits (8, 16, 24, 32, 64)
  bool is_float = false;
  std::vector<float> samples;
  double seconds() const { return sample_rate ? static_cast<double>(samples.size()) / sample_rate : 0.0; }
};

// Parses a WAV file held in memory; `source` names it in error messages. Nothing outside `bytes` is read.
HYBRID_DECL wav_audio read_wav(std::span<const unsigned char> bytes, std::string_view source = "<memory>");
inline wav_audio read_wav(std::span<const std::byte> bytes, std::string_view source = "<memory>") {
  return read_wav(std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
                  source);
}

// Reads a WAV file whole (speech clips are small) and parses it; errors name the path.
HYBRID_DECL wav_audio read_wav(const std::filesystem::path& file);

// Band-limited resampling by windowed-sinc interpolation (torchaudio's sinc_interp_hann: a Hann-windowed
// sinc, `zero_crossings` lobes each side, cutoff `rolloff` x the lower Nyquist rate so downsampling does not
// alias). Output sample n sits at input time n * from / to, found in exact integer arithmetic; the signal is
// taken as zero outside [0, size). The output has ceil(size * to / from) samples, as torchaudio's.
HYBRID_DECL std::vector<float> resample(std::span<const float> x, int from_rate, int to_rate, int zero_crossings = 6,
                                        double rolloff = 0.99);

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

namespace detail {

HYBRID_DECL std::uint32_t wav_le(const unsigned char* p, int n) noexcept {
  std::uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

HYBRID_DECL std::string wav_fourcc(const unsigned char* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7F) {
      s += static_cast<char>(c);
    } else {
      s += "\\x";
      s += "0123456789ABCDEF"[c >> 4];
      s += "0123456789ABCDEF"[c & 15];
    }
  }
  return "'" + s + "'";
}

// One sample of `bits` bits at p. 8-bit PCM is unsigned (offset 128), wider PCM is signed two's
// complement; integers are scaled by 2^(bits-1) into [-1, 1) as libsndfile and torchaudio do.
HYBRID_DECL double wav_sample(const unsigned char* p, int bits, bool is_float) noexcept {
  if (is_float) {
    if (bits == 32) {
      float f;
      const std::uint32_t u = wav_le(p, 4);
      std::memcpy(&f, &u, 4);
      return f;
    }
    const std::uint64_t u = static_cast<std::uint64_t>(wav_le(p + 4, 4)) << 32 | wav_le(p, 4);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  if (bits == 8) return (p[0] - 128.0) / 128.0;
  const std::uint32_t u = wav_le(p, bits / 8);
  const int shift = 32 - bits;  // sign-extend through the top of a 32-bit word
  const auto s = static_cast<std::int32_t>(u << shift) >> shift;
  return static_cast<double>(s) / static_cast<double>(std::uint64_t{1} << (bits - 1));
}

struct wav_format {
  int tag = 0, channels = 0, bits = 0, block_align = 0;
  std::uint32_t sample_rate = 0;
  bool is_float = false;
};

HYBRID_DECL wav_format parse_wav_fmt(const unsigned char* body, std::uint32_t size, std::uint64_t at,
                                const std::string& src) {
  if (size < 16)
    throw wav_error(src, at, "'fmt ' chunk has " + std::to_string(size) + " bytes, at least 16 are needed");
  wav_format f;
  f.tag = static_cast<int>(wav_le(body, 2));
  f.channels = static_cast<int>(wav_le(body + 2, 2));
  f.sample_rate = wav_le(body + 4, 4);
  const std::uint32_t byte_rate = wav_le(body + 8, 4);
  f.block_align = static_cast<int>(wav_le(body + 12, 2));
  f.bits = static_cast<int>(wav_le(body + 14, 2));
  int format = f.tag;
  if (f.tag == 0xFFFE) {  // WAVE_FORMAT_EXTENSIBLE: the real format is the sub-format GUID's first two bytes
    if (size < 40 || wav_le(body + 16, 2) < 22)
      throw wav_error(src, at + 16, "WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk of " + std::to_string(size) +
                                        " bytes lacks the 22-byte extension");
    static constexpr unsigned char ksdataformat_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                            0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
    if (std::memcmp(body + 26, ksdataformat_tail, 14) != 0)
      throw wav_error(src, at + 24, "WAVE_FORMAT_EXTENSIBLE sub-format is not a KSDATAFORMAT GUID");
    format = static_cast<int>(wav_le(body + 24, 2));
    const int valid = static_cast<int>(wav_le(body + 18, 2));
    if (valid > f.bits)
      throw wav_error(src, at + 18, std::to_string(valid) + " valid bits exceed the container's " +
                                        std::to_string(f.bits) + " bits per sample");
  }
  if (format == 1) {
    if (f.bits != 8 && f.bits != 16 && f.bits != 24 && f.bits != 32)
      throw wav_error(src, at + 14, "unsupported PCM sample size " + std::to_string(f.bits) +
                                        " bits (supported: 8, 16, 24, 32)");
  } else if (format == 3) {
    f.is_float = true;
    if (f.bits != 32 && f.bits != 64)
      throw wav_error(src, at + 14, "unsupported float sample size " + std::to_string(f.bits) +
                                        " bits (supported: 32, 64)");
  } else {
    throw wav_error(src, f.tag == 0xFFFE ? at + 24 : at,
                    "unsupported format tag " + std::to_string(format) +
                        " (supported: 1 PCM, 3 IEEE float, 0xFFFE extensible of those; compressed formats are not)");
  }
  if (f.channels < 1) throw wav_error(src, at + 2, "zero channels");
  if (f.sample_rate < 1) throw wav_error(src, at + 4, "sample rate 0");
  if (f.block_align != f.channels * (f.bits / 8))
    throw wav_error(src, at + 12, "block align " + std::to_string(f.block_align) + " is not channels (" +
                                      std::to_string(f.channels) + ") x bytes per sample (" + std::to_string(f.bits / 8) + ")");
  if (byte_rate != static_cast<std::uint64_t>(f.sample_rate) * static_cast<std::uint64_t>(f.block_align))
    throw wav_error(src, at + 8, "byte rate " + std::to_string(byte_rate) + " is not sample rate x block align (" +
                                     std::to_string(static_cast<std::uint64_t>(f.sample_rate) * f.block_align) + ")");
  return f;
}

}  // namespace detail

HYBRID_DECL wav_audio read_wav(std::span<const unsigned char> bytes, std::string_view source) {
  const std::string src(source);
  const unsigned char* b = bytes.data();
  const std::uint64_t size = bytes.size();
  if (size < 12)
    throw wav_error(src, size, "truncated header: " + std::to_string(size) + " bytes, a RIFF/WAVE header needs 12");
  if (std::memcmp(b, "RIFF", 4) != 0)
    throw wav_error(src, 0, "not a RIFF file: starts with " + detail::wav_fourcc(b) +
                                (std::memcmp(b, "RIFX", 4) == 0 || std::memcmp(b, "RF64", 4) == 0
                                     ? " (big-endian RIFX and RF64 are not supported)"
                                     : ""));
  if (std::memcmp(b + 8, "WAVE", 4) != 0)
    throw wav_error(src, 8, "RIFF form type is " + detail::wav_fourcc(b + 8) + ", not 'WAVE'");
  const std::uint64_t riff_end = 8 + std::uint64_t{detail::wav_le(b + 4, 4)};
  if (riff_end > size)
    throw wav_error(src, 4, "RIFF size says the file has " + std::to_string(riff_end) + " bytes, it has " +
                                std::to_string(size) + " (truncated, or a streamed header never filled in)");
  // Bytes after riff_end (ID3 tags and the like) are outside the RIFF form and ignored.

  std::optional<detail::wav_format> fmt;
  std::uint64_t data_at = 0, data_size = 0;
  bool have_data = false;
  std::uint64_t pos = 12;
  while (pos < riff_end) {
    if (riff_end - pos < 8)
      throw wav_error(src, pos, "truncated chunk header: " + std::to_string(riff_end - pos) +
                                    " bytes left in the RIFF form, a chunk header needs 8");
    const unsigned char* h = b + pos;
    const std::uint64_t body = pos + 8, n = detail::wav_le(h + 4, 4);
    if (n > riff_end - body)
      throw wav_error(src, pos + 4, "chunk " + detail::wav_fourcc(h) + " of " + std::to_string(n) +
                                        " bytes extends past the end of the RIFF form at byte " + std::to_string(riff_end));
    if (std::memcmp(h, "fmt ", 4) == 0) {
      if (fmt) throw wav_error(src, pos, "second 'fmt ' chunk");
      fmt = detail::parse_wav_fmt(b + body, static_cast<std::uint32_t>(n), body, src);
    } else if (std::memcmp(h, "data", 4) == 0) {
      if (have_data) throw wav_error(src, pos, "second 'data' chunk");
      have_data = true;
      data_at = body;
      data_size = n;
    }
    // A missing pad byte after an odd-sized final chunk is a common writer slip, and harmless.
    pos = std::min(riff_end, body + n + (n & 1));
  }
  if (!fmt) throw wav_error(src, riff_end, "no 'fmt ' chunk");
  if (!have_data) throw wav_error(src, riff_end, "no 'data' chunk");
  const auto block = static_cast<std::uint64_t>(fmt->block_align);
  if (data_size % block != 0)
    throw wav_error(src, data_at + data_size - data_size % block,
                    "'data' chunk of " + std::to_string(data_size) + " bytes is not a whole number of " +
                        std::to_string(block) + "-byte frames");

  wav_audio out;
  out.sample_rate = static_cast<int>(std::min<std::uint32_t>(fmt->sample_rate, 0x7FFFFFFF));
  out.channels = fmt->channels;
  out.bits_per_sample = fmt->bits;
  out.is_float = fmt->is_float;
  const std::size_t frames = static_cast<std::size_t>(data_size / block);
  const std::size_t step = static_cast<std::size_t>(fmt->bits / 8);
  out.samples.resize(frames);
  for (std::size_t i = 0; i < frames; ++i) {
    const unsigned char* p = b + data_at + i * block;
    double s = 0;
    for (int c = 0; c < fmt->channels; ++c) {
      double v = detail::wav_sample(p + static_cast<std::size_t>(c) * step, fmt->bits, fmt->is_float);
      if (fmt->is_float) {
        if (!std::isfinite(v))
          throw wav_error(src, data_at + i * block + static_cast<std::size_t>(c) * step, "non-finite float sample");
        v = std::clamp(v, -1.0, 1.0);  // float WAVs may overshoot full scale
      }
      s += v;
    }
    out.samples[i] = static_cast<float>(s / fmt->channels);
  }
  return out;
}

HYBRID_DECL wav_audio read_wav(const std::filesystem::path& file) {
  const std::string src = file.string();
  struct closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, closer> f(std::fopen(src.c_str(), "rb"));
  if (!f) throw wav_error(src, 0, "cannot open: " + std::error_code(errno, std::generic_category()).message());
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f.get())) > 0;) bytes.insert(bytes.end(), buf, buf + n);
  if (std::ferror(f.get()))
    throw wav_error(src, bytes.size(), "read failed: " + std::error_code(errno, std::generic_category()).message());
  return read_wav(std::span<const unsigned char>(bytes), src);
}

HYBRID_DECL std::vector<float> resample(std::span<const float> x, int from_rate, int to_rate, int zero_crossings,
                                        double rolloff) {
  if (from_rate <= 0 || to_rate <= 0)
    throw std::invalid_argument("resample: rates must be positive, got " + std::to_string(from_rate) + " -> " +
                                std::to_string(to_rate));
  if (zero_crossings < 1 || !(rolloff > 0 && rolloff <= 1))
    throw std::invalid_argument("resample: need zero_crossings >= 1 and rolloff in (0, 1]");
  if (from_rate == to_rate) return {x.begin(), x.end()};
  const auto from = static_cast<std::int64_t>(from_rate), to = static_cast<std::int64_t>(to_rate);
  const auto n_in = static_cast<std::int64_t>(x.size());
  const std::int64_t n_out = (n_in * to + from - 1) / from;
  // Cutoff as a fraction of the input Nyquist rate; the kernel in input samples is
  // cutoff * sinc(cutoff * t) * hann(t / width) on |t| <= width.
  const double cutoff = rolloff * std::min(1.0, static_cast<double>(to) / static_cast<double>(from));
  const double width = zero_crossings / cutoff;
  std::vector<float> y(static_cast<std::size_t>(n_out));
  for (std::int64_t n = 0; n < n_out; ++n) {
    const std::int64_t whole = n * from / to;
    const double t = static_cast<double>(whole) + static_cast<double>(n * from % to) / static_cast<double>(to);
    const std::int64_t k0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(t - width)));
    const std::int64_t k1 = std::min<std::int64_t>(n_in - 1, static_cast<std::int64_t>(std::floor(t + width)));
    double acc = 0;
    for (std::int64_t k = k0; k <= k1; ++k) {
      const double u = t - static_cast<double>(k);
      const double a = std::numbers::pi * cutoff * u;
      const double sinc = u == 0 ? 1.0 : std::sin(a) / a;
      const double w = std::cos(std::numbers::pi * u / (2 * width));
      acc += x[static_cast<std::size_t>(k)] * cutoff * sinc * w * w;
    }
    y[static_cast<std::size_t>(n)] = static_cast<float>(acc);
  }
  return y;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
