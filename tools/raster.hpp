// A tiny RGB raster for the pictures in docs/: rectangles, lines, a built-in 5x7 bitmap font, colour maps,
// and PNG output through hybrid::io::encode_png (libpng). Shared by tools/plot.cpp (hybrid-plot) and
// examples/explain.cpp; not part of the library (include/ stays free of drawing code). No anti-aliasing.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <hybrid/io/png.hpp>

namespace hybrid::raster {

struct rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};
inline constexpr rgb white{255, 255, 255}, black{0, 0, 0}, grey{128, 128, 128}, light_grey{225, 225, 225};

// Ten distinguishable line colours (matplotlib's "tab10").
inline rgb palette(std::size_t i) {
  static constexpr std::array<rgb, 10> c = {{{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                             {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                             {188, 189, 34}, {23, 190, 207}}};
  return c[i % c.size()];
}

// v in [-1, 1] -> blue (negative), white (0), red (positive); values outside are clamped.
inline rgb diverging(double v) {
  v = std::clamp(v, -1.0, 1.0);
  const auto mix = [](double a, double b, double t) { return static_cast<std::uint8_t>(std::lround(a + (b - a) * t)); };
  if (v >= 0) return {mix(255, 178, v), mix(255, 24, v), mix(255, 43, v)};
  return {mix(255, 33, -v), mix(255, 102, -v), mix(255, 172, -v)};
}
// v in [0, 1] -> white to dark blue.
inline rgb sequential(double v) {
  v = std::clamp(v, 0.0, 1.0);
  const auto mix = [](double a, double b, double t) { return static_cast<std::uint8_t>(std::lround(a + (b - a) * t)); };
  return {mix(255, 8, v), mix(255, 48, v), mix(255, 107, v)};
}

// A 5x7 font for ASCII 32..126 (the classic one, with g j p q y given real descenders in an eighth row):
// five columns per glyph, bit 0 the top row.
inline constexpr std::array<std::array<std::uint8_t, 5>, 95> font5x7 = {{
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},  //   ! "
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},  // # $ %
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},  // & ' (
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08},  // ) * +
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},  // , - .
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},  // / 0 1
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},  // 2 3 4
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},  // 5 6 7
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},  // 8 9 :
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},  // ; < =
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},  // > ? @
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},  // A B C
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x01, 0x01},  // D E F
    {0x3E, 0x41, 0x41, 0x51, 0x32}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},  // G H I
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},  // J K L
    {0x7F, 0x02, 0x04, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},  // M N O
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},  // P Q R
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},  // S T U
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x7F, 0x20, 0x18, 0x20, 0x7F}, {0x63, 0x14, 0x08, 0x14, 0x63},  // V W X
    {0x03, 0x04, 0x78, 0x04, 0x03}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},  // Y Z [
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},  // \ ] ^
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},  // _ ` a
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},  // b c d
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x18, 0xA4, 0xA4, 0xA4, 0x7C},  // e f g
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x40, 0x80, 0x84, 0x7D, 0x00},  // h i j
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},  // k l m
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0xFC, 0x24, 0x24, 0x24, 0x18},  // n o p
    {0x18, 0x24, 0x24, 0x24, 0xFC}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},  // q r s
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},  // t u v
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x1C, 0xA0, 0xA0, 0xA0, 0x7C},  // w x y
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},  // z { |
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x08, 0x04, 0x08, 0x10, 0x08},                                    // } ~
}};
// Two non-ASCII glyphs the docs' pictures need, written in UTF-8: "±" (U+00B1) and "×" (U+00D7).
inline constexpr std::array<std::uint8_t, 5> glyph_plus_minus = {0x44, 0x44, 0x5F, 0x44, 0x44};
inline constexpr std::array<std::uint8_t, 5> glyph_times = {0x22, 0x14, 0x08, 0x14, 0x22};

// The glyphs of a UTF-8 string, one per character; anything without a glyph shows as '?'.
inline std::vector<const std::array<std::uint8_t, 5>*> glyphs(std::string_view s) {
  std::vector<const std::array<std::uint8_t, 5>*> out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if (ch >= 32 && ch <= 126) {
      out.push_back(&font5x7[ch - 32]);
      continue;
    }
    if (ch == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xB1) out.push_back(&glyph_plus_minus);
    else if (ch == 0xC3 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x97) out.push_back(&glyph_times);
    else out.push_back(&font5x7['?' - 32]);
    while (i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) ++i;  // skip continuation bytes
  }
  return out;
}

// Each glyph takes a 6 x 9 cell (one column of spacing, a descender row, one row of spacing), times the scale.
inline constexpr int glyph_w = 6, glyph_h = 9;
inline int text_width(std::string_view s, int scale = 1) { return static_cast<int>(glyphs(s).size()) * glyph_w * scale; }
inline int text_height(int scale = 1) { return glyph_h * scale; }

class canvas {
 public:
  canvas(int width, int height, rgb background = white) : w_(width), h_(height) {
    if (width <= 0 || height <= 0) throw std::invalid_argument("canvas: size must be positive");
    px_.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
    fill_rect(0, 0, width, height, background);
  }
  int width() const { return w_; }
  int height() const { return h_; }

  void set(int x, int y, rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;  // clipped
    std::uint8_t* p = &px_[(static_cast<std::size_t>(y) * static_cast<std::size_t>(w_) + static_cast<std::size_t>(x)) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void fill_rect(int x, int y, int w, int h, rgb c) {
    for (int j = std::max(0, y); j < std::min(h_, y + h); ++j)
      for (int i = std::max(0, x); i < std::min(w_, x + w); ++i) set(i, j, c);
  }
  void rect(int x, int y, int w, int h, rgb c) {  // outline, one pixel wide
    fill_rect(x, y, w, 1, c), fill_rect(x, y + h - 1, w, 1, c);
    fill_rect(x, y, 1, h, c), fill_rect(x + w - 1, y, 1, h, c);
  }
  // Bresenham, drawn as a square pen of `thick` pixels.
  void line(int x0, int y0, int x1, int y1, rgb c, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      fill_rect(x0 - (thick - 1) / 2, y0 - (thick - 1) / 2, thick, thick, c);
      if (x0 == x1 && y0 == y1) return;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  // Draws UTF-8 `s` (ASCII, plus "±" and "×") with its top-left corner at (x, y); returns the width drawn.
  int text(int x, int y, std::string_view s, rgb c, int scale = 1) {
    const auto gs = glyphs(s);
    for (std::size_t k = 0; k < gs.size(); ++k) {
      const int gx = x + static_cast<int>(k) * glyph_w * scale;
      for (int col = 0; col < 5; ++col)
        for (int row = 0; row < 8; ++row)
          if ((*gs[k])[static_cast<std::size_t>(col)] >> row & 1) fill_rect(gx + col * scale, y + row * scale, scale, scale, c);
    }
    return static_cast<int>(gs.size()) * glyph_w * scale;
  }
  // Writes the canvas as an 8-bit RGB PNG.
  void save(const std::filesystem::path& file) const {
    io::image8 img;
    img.width = w_, img.height = h_, img.channels = 3, img.pixels = px_;
    const std::vector<unsigned char> bytes = io::encode_png(img);
    struct closer {
      void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    std::unique_ptr<std::FILE, closer> f(std::fopen(file.string().c_str(), "wb"));
    if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
      throw std::runtime_error("cannot write " + file.string());
  }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;  // RGB, rows top to bottom
};

}  // namespace hybrid::raster
