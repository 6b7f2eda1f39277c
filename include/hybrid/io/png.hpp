// PNG decoding and encoding through libpng's simplified API (png_image_*), plus the two steps every image
// model needs next: conversion to a float [C, H, W] tensor in [0, 1] and a box or bilinear resize.
// Needs libpng (Debian libpng-dev); the hybrid::io CMake target links it and defines HYBRID_WITH_PNG.
//
// Alpha: to_chw() composites straight (non-premultiplied) alpha onto a white background in sRGB values,
// out = c * a + (1 - a), giving 3 channels (1 for grey images); alpha_mode::channel appends the alpha as one
// more channel after the composited colour ones (RGBA -> 4). Resizing composited colours cannot bleed the
// arbitrary colour of fully transparent pixels into the picture, which resizing straight RGBA would.
//
// Corrupt or truncated input never crashes: libpng reports it through png_image::message (its longjmp never
// crosses a C++ frame) and we throw png_decode_error naming the file.
#pragma once
#ifndef HYBRID_WITH_PNG
#error "hybrid/io/png.hpp needs libpng: install libpng-dev (scripts/setup.sh) and link hybrid::io"
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/core/tensor.hpp"

// Only the bodies call libpng.
#if HYBRID_DEFINE
#include <png.h>
#endif

namespace hybrid::io {

// A PNG that cannot be read or decoded. what() reads "<source>: <problem>".
class png_decode_error : public std::runtime_error {
 public:
  png_decode_error(std::string source, const std::string& problem)
      : std::runtime_error(source + ": " + problem), source_(std::move(source)) {}
  const std::string& source() const noexcept { return source_; }

 private:
  std::string source_;
};

// 8-bit interleaved pixels, rows top to bottom: pixel (y, x) channel c is pixels[(y * width + x) * channels + c].
struct image8 {
  int width = 0, height = 0;
  int channels = 0;  // 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
  std::vector<std::uint8_t> pixels;

  std::uint8_t& at(int y, int x, int c) {
    return pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
                      static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)];
  }
  std::uint8_t at(int y, int x, int c) const { return const_cast<image8&>(*this).at(y, x, c); }
  bool has_alpha() const noexcept { return channels == 2 || channels == 4; }
};

// What read_png returns, whatever the file holds (palette, grey, 16-bit, tRNS are all converted).
// gray and rgb drop an alpha channel by compositing onto white (libpng does it, in sRGB values).
enum class pixel_format { gray = 1, gray_alpha = 2, rgb = 3, rgba = 4 };

// Images above this many pixels are refused before any allocation (a corrupt header can claim 2^31 x 2^31).
inline constexpr std::uint64_t png_max_pixels = std::uint64_t{1} << 28;

// Decodes a PNG held in memory; `source` names it in error messages.
HYBRID_DECL image8 read_png(std::span<const unsigned char> bytes, pixel_format format = pixel_format::rgba,
                            std::string_view source = "<memory>");
inline image8 read_png(std::span<const std::byte> bytes, pixel_format format = pixel_format::rgba,
                       std::string_view source = "<memory>") {
  return read_png(std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
                  format, source);
}

// Reads a PNG file whole and decodes it; errors name the path.
HYBRID_DECL image8 read_png(const std::filesystem::path& file, pixel_format format = pixel_format::rgba);

// Encodes 8-bit pixels (1 to 4 channels as in image8) as a PNG file image in memory.
HYBRID_DECL std::vector<unsigned char> encode_png(const image8& img);

// How to_chw treats an alpha channel (see the top of this file).
enum class alpha_mode {
  white,    // composite onto white, drop alpha: RGBA -> 3 channels, grey + alpha -> 1
  channel,  // composite onto white and keep alpha as the last channel: RGBA -> 4, grey + alpha -> 2
};

// The image as floats [C, H, W] in [0, 1] (value / 255).
HYBRID_DECL tensor<float> to_chw(const image8& img, alpha_mode mode = alpha_mode::white);

enum class resize_filter {
  box,       // area average: each output pixel is the mean of the input area it covers (exact for 64 -> 32)
  bilinear,  // half-pixel centres, edges clamped (PyTorch interpolate(mode="bilinear", align_corners=False,
             // antialias=False)); aliases when shrinking by more than 2x
};

namespace detail {

// Sparse 1-d resampling weights: output o reads taps[o] = (first input, weights...).
struct resize_taps {
  std::vector<index_t> first;
  std::vector<std::vector<float>> w;
};

HYBRID_DECL resize_taps make_resize_taps(index_t in, index_t out, resize_filter f);

}  // namespace detail

// Resizes a [C, H, W] (or [H, W]) float image to [C, height, width]; separable, rows then columns.
HYBRID_DECL tensor<float> resize_image(const tensor<float>& img, index_t height, index_t width,
                                       resize_filter filter = resize_filter::box);

// Reads a PNG file as floats [C, size, size] in [0, 1] (RGB composited on white, C = 3, or 4 with
// alpha_mode::channel; grey files come out as RGB too), resized with `filter` unless already that size.
inline tensor<float> read_png_chw(const std::filesystem::path& file, index_t size,
                                  alpha_mode mode = alpha_mode::white, resize_filter filter = resize_filter::box) {
  return resize_image(to_chw(read_png(file, pixel_format::rgba), mode), size, size, filter);
}

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

namespace detail {

HYBRID_DECL png_uint_32 png_format_flags(pixel_format f) noexcept {
  switch (f) {
    case pixel_format::gray: return PNG_FORMAT_GRAY;
    case pixel_format::gray_alpha: return PNG_FORMAT_GA;
    case pixel_format::rgb: return PNG_FORMAT_RGB;
    case pixel_format::rgba: return PNG_FORMAT_RGBA;
  }
  return PNG_FORMAT_RGBA;
}

// Frees libpng's state on every path (png_image_free is a no-op once freed).
struct png_image_guard {
  png_image img{};
  png_image_guard() {
    img.version = PNG_IMAGE_VERSION;
    img.opaque = nullptr;
  }
  ~png_image_guard() { png_image_free(&img); }
  png_image_guard(const png_image_guard&) = delete;
  png_image_guard& operator=(const png_image_guard&) = delete;
  std::string message() const {
    const std::string m(img.message, std::find(img.message, img.message + sizeof img.message, '\0'));
    return m.empty() ? std::string("libpng failed without a message") : m;
  }
};

// libpng allocates (and clears) a chunk's declared length before reading it, so a 76-byte file declaring a
// 725 MB tEXt chunk cost 725 MB and seconds (found by fuzz/png_fuzz.cpp). Every chunk up to IEND must fit in
// the bytes present; a file that merely ends early is left to libpng, which reports it.
HYBRID_DECL void check_png_chunks(std::span<const unsigned char> bytes, const std::string& src) {
  for (std::size_t pos = 8; bytes.size() - pos >= 12;) {
    const unsigned char* p = bytes.data() + pos;
    const std::uint64_t len = std::uint64_t{p[0]} << 24 | std::uint64_t{p[1]} << 16 | std::uint64_t{p[2]} << 8 | p[3];
    std::string type;
    for (int i = 4; i < 8; ++i) type += p[i] >= 0x20 && p[i] < 0x7F ? std::string(1, static_cast<char>(p[i])) : "?";
    const std::size_t room = bytes.size() - pos - 12;  // after the length, type and CRC
    if (len > room)
      throw png_decode_error(src, "corrupt PNG: chunk '" + type + "' at byte offset " + std::to_string(pos) +
                                      " declares " + std::to_string(len) + " data bytes, only " + std::to_string(room) +
                                      " follow");
    if (type == "IEND") return;
    pos += 12 + static_cast<std::size_t>(len);
  }
}

}  // namespace detail

HYBRID_DECL image8 read_png(std::span<const unsigned char> bytes, pixel_format format, std::string_view source) {
  const std::string src(source);
  static constexpr unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() < 8 || !std::equal(signature, signature + 8, bytes.begin()))
    throw png_decode_error(src, bytes.size() < 8 ? "not a PNG: only " + std::to_string(bytes.size()) + " bytes"
                                          : "not a PNG: the 8-byte PNG signature is missing");
  detail::check_png_chunks(bytes, src);
  detail::png_image_guard g;
  if (!png_image_begin_read_from_memory(&g.img, bytes.data(), bytes.size()))
    throw png_decode_error(src, "corrupt PNG header: " + g.message());
  if (g.img.width == 0 || g.img.height == 0)
    throw png_decode_error(src,
                           "empty image (" + std::to_string(g.img.width) + "x" + std::to_string(g.img.height) + ")");
  const std::uint64_t pixels = std::uint64_t{g.img.width} * g.img.height;
  if (pixels > png_max_pixels)
    throw png_decode_error(src, "image of " + std::to_string(g.img.width) + "x" + std::to_string(g.img.height) +
                             " pixels exceeds the limit of " + std::to_string(png_max_pixels));
  g.img.format = detail::png_format_flags(format);
  image8 out;
  out.width = static_cast<int>(g.img.width);
  out.height = static_cast<int>(g.img.height);
  out.channels = static_cast<int>(format);
  out.pixels.resize(static_cast<std::size_t>(pixels) * static_cast<std::size_t>(out.channels));
  const png_color white{255, 255, 255};
  if (!png_image_finish_read(&g.img, &white, out.pixels.data(), 0, nullptr))
    throw png_decode_error(src, "corrupt PNG data: " + g.message());
  return out;
}

HYBRID_DECL image8 read_png(const std::filesystem::path& file, pixel_format format) {
  const std::string src = file.string();
  struct closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, closer> f(std::fopen(src.c_str(), "rb"));
  if (!f) throw png_decode_error(src, "cannot open: " + std::error_code(errno, std::generic_category()).message());
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f.get())) > 0;) bytes.insert(bytes.end(), buf, buf + n);
  if (std::ferror(f.get()))
    throw png_decode_error(src, "read failed: " + std::error_code(errno, std::generic_category()).message());
  return read_png(std::span<const unsigned char>(bytes), format, src);
}

HYBRID_DECL std::vector<unsigned char> encode_png(const image8& img) {
  if (img.width <= 0 || img.height <= 0 || img.channels < 1 || img.channels > 4)
    throw std::invalid_argument("encode_png: bad image " + std::to_string(img.width) + "x" +
                                std::to_string(img.height) + "x" + std::to_string(img.channels));
  const std::size_t want = static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height) *
                           static_cast<std::size_t>(img.channels);
  if (img.pixels.size() != want)
    throw std::invalid_argument("encode_png: " + std::to_string(img.pixels.size()) + " bytes of pixels, " +
                                std::to_string(want) + " expected");
  detail::png_image_guard g;
  g.img.width = static_cast<png_uint_32>(img.width);
  g.img.height = static_cast<png_uint_32>(img.height);
  g.img.format = detail::png_format_flags(static_cast<pixel_format>(img.channels));
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&g.img, nullptr, &size, 0, img.pixels.data(), 0, nullptr))
    throw std::runtime_error("encode_png: " + g.message());
  std::vector<unsigned char> out(size);
  if (!png_image_write_to_memory(&g.img, out.data(), &size, 0, img.pixels.data(), 0, nullptr))
    throw std::runtime_error("encode_png: " + g.message());
  out.resize(size);
  return out;
}

HYBRID_DECL tensor<float> to_chw(const image8& img, alpha_mode mode) {
  if (img.channels < 1 || img.channels > 4 ||
      img.pixels.size() != static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height) *
                               static_cast<std::size_t>(img.channels))
    throw std::invalid_argument("to_chw: inconsistent image8");
  const int colour = img.has_alpha() ? img.channels - 1 : img.channels;
  const int out_c = colour + (img.has_alpha() && mode == alpha_mode::channel ? 1 : 0);
  const index_t H = img.height, W = img.width, plane = H * W;
  tensor<float> t(shape{out_c, H, W});
  float* o = t.data();
  const std::uint8_t* p = img.pixels.data();
  const auto cn = static_cast<std::size_t>(img.channels);
  for (index_t i = 0; i < plane; ++i, p += cn) {
    const float a = img.has_alpha() ? static_cast<float>(p[colour]) / 255.0f : 1.0f;
    for (int c = 0; c < colour; ++c) o[c * plane + i] = static_cast<float>(p[c]) / 255.0f * a + (1.0f - a);
    if (out_c > colour) o[colour * plane + i] = a;
  }
  return t;
}

HYBRID_DECL detail::resize_taps detail::make_resize_taps(index_t in, index_t out, resize_filter f) {
  resize_taps t;
  t.first.resize(static_cast<std::size_t>(out));
  t.w.resize(static_cast<std::size_t>(out));
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (index_t o = 0; o < out; ++o) {
    auto& w = t.w[static_cast<std::size_t>(o)];
    if (f == resize_filter::box) {
      const double lo = static_cast<double>(o) * scale, hi = static_cast<double>(o + 1) * scale;
      const auto i0 = static_cast<index_t>(std::floor(lo));
      const auto i1 = std::min<index_t>(in, static_cast<index_t>(std::ceil(hi)));
      t.first[static_cast<std::size_t>(o)] = i0;
      for (index_t i = i0; i < i1; ++i) {
        const double overlap = std::min(hi, static_cast<double>(i + 1)) - std::max(lo, static_cast<double>(i));
        w.push_back(static_cast<float>(overlap / scale));
      }
    } else {
      const double src = std::clamp((static_cast<double>(o) + 0.5) * scale - 0.5, 0.0, static_cast<double>(in - 1));
      const auto i0 = static_cast<index_t>(std::floor(src));
      const double frac = src - static_cast<double>(i0);
      t.first[static_cast<std::size_t>(o)] = i0;
      w.push_back(static_cast<float>(1.0 - frac));
      if (i0 + 1 < in) w.push_back(static_cast<float>(frac));
    }
  }
  return t;
}

HYBRID_DECL tensor<float> resize_image(const tensor<float>& img, index_t height, index_t width, resize_filter filter) {
  if (img.rank() != 3 && img.rank() != 2)
    throw shape_error("resize: expected a [C, H, W] or [H, W] image, got " + img.shape().str());
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("resize: target size " + std::to_string(height) + "x" + std::to_string(width) +
                                " must be positive");
  const bool chw = img.rank() == 3;
  const index_t C = chw ? img.dim(0) : 1, H = img.dim(chw ? 1 : 0), W = img.dim(chw ? 2 : 1);
  if (H == 0 || W == 0) throw shape_error("resize: empty image " + img.shape().str());
  tensor<float> out(chw ? shape{C, height, width} : shape{height, width});
  if (H == height && W == width) {
    std::copy(img.begin(), img.end(), out.begin());
    return out;
  }
  const auto ty = detail::make_resize_taps(H, height, filter), tx = detail::make_resize_taps(W, width, filter);
  std::vector<float> rows(static_cast<std::size_t>(height * W));  // one channel resized along y
  for (index_t c = 0; c < C; ++c) {
    const float* in = img.data() + c * H * W;
    for (index_t y = 0; y < height; ++y) {
      float* r = rows.data() + y * W;
      std::fill(r, r + W, 0.0f);
      const auto& w = ty.w[static_cast<std::size_t>(y)];
      const index_t y0 = ty.first[static_cast<std::size_t>(y)];
      for (std::size_t k = 0; k < w.size(); ++k) {
        const float* src = in + (y0 + static_cast<index_t>(k)) * W;
        for (index_t x = 0; x < W; ++x) r[x] += w[k] * src[x];
      }
    }
    float* o = out.data() + c * height * width;
    for (index_t y = 0; y < height; ++y)
      for (index_t x = 0; x < width; ++x) {
        const auto& w = tx.w[static_cast<std::size_t>(x)];
        const float* src = rows.data() + y * W + tx.first[static_cast<std::size_t>(x)];
        float acc = 0.0f;
        for (std::size_t k = 0; k < w.size(); ++k) acc += w[k] * src[k];
        o[y * width + x] = acc;
      }
  }
  return out;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
