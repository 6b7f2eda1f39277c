#include <doctest/doctest.h>

#ifndef HYBRID_WITH_PNG
TEST_CASE("png: libpng is missing") {
  FAIL("hybrid::io was configured without libpng: install libpng-dev (scripts/setup.sh) and reconfigure");
}
#else
#include <hybrid/io/png.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::index_t;
using hybrid::shape;
using hybrid::tensor;
using namespace hybrid::io;

namespace {

const fs::path emoji_png = fs::path(HYBRID_DATA_DIR) / "emoji" / "png" / "1F4AF.png";  // "hundred points", red

std::vector<unsigned char> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void require_data() {
  REQUIRE_MESSAGE(fs::exists(emoji_png), emoji_png.string() << " is missing: run scripts/fetch_data.sh");
}

// The message of the png_decode_error thrown by f; fails the test if nothing is thrown.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const png_decode_error& e) {
    return e.what();
  }
  FAIL("no png_decode_error thrown");
  return {};
}

image8 synthetic(int w, int h, int channels, unsigned seed) {
  image8 img{w, h, channels, {}};
  std::mt19937 rng(seed);
  img.pixels.resize(static_cast<std::size_t>(w * h * channels));
  for (auto& p : img.pixels) p = static_cast<std::uint8_t>(rng() & 0xFF);
  return img;
}

}  // namespace

TEST_CASE("png: decodes a real gemojione emoji (64x64 palette PNG with transparency)") {
  require_data();
  const image8 img = read_png(emoji_png);
  CHECK(img.width == 64);
  CHECK(img.height == 64);
  CHECK(img.channels == 4);
  REQUIRE(img.pixels.size() == 64u * 64u * 4u);
  // Transparent corners, an opaque red "100" in the middle.
  CHECK(img.at(0, 0, 3) == 0);
  CHECK(img.at(63, 63, 3) == 0);
  long opaque = 0, red = 0, transparent = 0;
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      if (img.at(y, x, 3) == 0) ++transparent;
      if (img.at(y, x, 3) == 255) {
        ++opaque;
        if (img.at(y, x, 0) > 200 && img.at(y, x, 1) < 140 && img.at(y, x, 2) < 160) ++red;
      }
    }
  CHECK(opaque > 400);
  CHECK(transparent > 1000);
  CHECK(red > opaque * 9 / 10);

  // From memory, same pixels; as RGB (composited on white by libpng) the corners are white.
  const auto bytes = file_bytes(emoji_png);
  CHECK(read_png(std::span<const unsigned char>(bytes)).pixels == img.pixels);
  const image8 rgb = read_png(emoji_png, pixel_format::rgb);
  CHECK(rgb.channels == 3);
  CHECK(rgb.at(0, 0, 0) == 255);
  CHECK(rgb.at(0, 0, 1) == 255);
  CHECK(rgb.at(0, 0, 2) == 255);

  // Float CHW, alpha composited on white, then 64 -> 32.
  const tensor<float> chw = read_png_chw(emoji_png, 32);
  CHECK(chw.shape() == shape{3, 32, 32});
  CHECK(*std::min_element(chw.begin(), chw.end()) >= 0.0f);
  CHECK(*std::max_element(chw.begin(), chw.end()) <= 1.0f);
  CHECK(chw(0, 0, 0) == 1.0f);  // white corner
  int reddish = 0;  // red stays high, green drops where the glyph is
  for (index_t y = 0; y < 32; ++y)
    for (index_t x = 0; x < 32; ++x) reddish += chw(0, y, x) > 0.8f && chw(1, y, x) < 0.6f;
  CHECK(reddish > 100);
  const tensor<float> with_alpha = read_png_chw(emoji_png, 32, alpha_mode::channel);
  CHECK(with_alpha.shape() == shape{4, 32, 32});
  CHECK(with_alpha(3, 0, 0) == 0.0f);
}

TEST_CASE("png: corrupt and truncated input throws png_decode_error naming the source, never crashes") {
  const image8 img = synthetic(17, 9, 4, 1);
  const auto good = encode_png(img);
  REQUIRE(read_png(std::span<const unsigned char>(good)).pixels == img.pixels);

  CHECK(error_of([] { (void)read_png(std::span<const unsigned char>()); }).find("<memory>: not a PNG") == 0);
  const std::vector<unsigned char> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  CHECK(error_of([&] { (void)read_png(std::span<const unsigned char>(text), pixel_format::rgba, "x.png"); })
            .find("x.png: not a PNG") == 0);
  // Truncated after the IHDR chunk (header fine, data missing), half-way through, and just before the
  // end of the image data. (A file cut inside the final 12-byte IEND chunk still decodes: libpng's simplified
  // reader stops once the image data is complete, which is fine since every pixel is there.)
  const std::size_t iend = good.size() - 12;
  for (std::size_t cut : {std::size_t{33}, good.size() / 2, iend - 1}) {
    const std::span<const unsigned char> part(good.data(), cut);
    const std::string msg = error_of([&] { (void)read_png(part, pixel_format::rgba, "cut.png"); });
    CHECK_MESSAGE(msg.find("cut.png: ") == 0, msg);
  }
  // A flipped byte inside IHDR fails its CRC.
  auto bad_ihdr = good;
  bad_ihdr[20] ^= 0x40;
  CHECK(error_of([&] { (void)read_png(std::span<const unsigned char>(bad_ihdr)); }).find("corrupt PNG") != std::string::npos);
  // A file that does not exist.
  CHECK(error_of([] { (void)read_png(fs::path("/nonexistent/dir/img.png")); }).find("/nonexistent/dir/img.png: cannot open") == 0);

  // Every truncation and many random corruptions: png_decode_error or a correct-size image, nothing else.
  std::mt19937 rng(7);
  int threw = 0, decoded = 0;
  auto attempt = [&](std::span<const unsigned char> b) {
    try {
      const image8 d = read_png(b);
      CHECK(d.pixels.size() == static_cast<std::size_t>(d.width) * static_cast<std::size_t>(d.height) * 4u);
      ++decoded;
      return false;
    } catch (const png_decode_error&) {
      ++threw;
      return true;
    }
  };
  for (std::size_t cut = 0; cut < good.size(); ++cut) {
    const bool failed = attempt(std::span<const unsigned char>(good.data(), cut));
    if (cut < iend) CHECK_MESSAGE(failed, "truncated to " << cut << " of " << good.size() << " bytes");
  }
  for (int trial = 0; trial < 500; ++trial) {
    auto b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[8 + rng() % (b.size() - 8)] ^= static_cast<unsigned char>(1 + rng() % 255);
    attempt(b);
  }
  CHECK(threw >= static_cast<int>(iend));
  MESSAGE("random corruptions: " << decoded << " still decoded, " << threw << " errors (with truncations)");
}

TEST_CASE("png: encode/decode round trip for every channel count") {
  for (int c = 1; c <= 4; ++c) {
    const image8 img = synthetic(13, 6, c, static_cast<unsigned>(c));
    const auto bytes = encode_png(img);
    const image8 back = read_png(std::span<const unsigned char>(bytes), static_cast<pixel_format>(c));
    CHECK(back.width == 13);
    CHECK(back.height == 6);
    CHECK(back.channels == c);
    CHECK(back.pixels == img.pixels);
  }
  CHECK_THROWS_AS((void)encode_png(image8{2, 2, 3, std::vector<std::uint8_t>(11)}), std::invalid_argument);
}

TEST_CASE("png: to_chw composites alpha on white") {
  // 2x1 RGBA: opaque (255, 0, 51) and half-transparent black (0, 0, 0, 102 = 0.4).
  const image8 img{2, 1, 4, {255, 0, 51, 255, 0, 0, 0, 102}};
  const auto bytes = encode_png(img);
  const tensor<float> t = to_chw(read_png(std::span<const unsigned char>(bytes)));
  REQUIRE(t.shape() == shape{3, 1, 2});
  CHECK(t(0, 0, 0) == doctest::Approx(1.0f));
  CHECK(t(1, 0, 0) == doctest::Approx(0.0f));
  CHECK(t(2, 0, 0) == doctest::Approx(0.2f));
  for (int c = 0; c < 3; ++c) CHECK(t(c, 0, 1) == doctest::Approx(0.6f));  // 0 * 0.4 + (1 - 0.4)
  const tensor<float> a = to_chw(img, alpha_mode::channel);
  REQUIRE(a.shape() == shape{4, 1, 2});
  CHECK(a(3, 0, 0) == 1.0f);
  CHECK(a(3, 0, 1) == doctest::Approx(0.4f));
  CHECK(a(0, 0, 1) == doctest::Approx(0.6f));
  // Grey stays one channel.
  CHECK(to_chw(image8{1, 1, 1, {51}}).shape() == shape{1, 1, 1});
}

TEST_CASE("png: box and bilinear downscale of a synthetic PNG") {
  // 4x4 RGB with distinct values, written and read back through libpng.
  image8 img{4, 4, 3, {}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) img.pixels.push_back(static_cast<std::uint8_t>(10 * (4 * y + x) + c));
  const auto bytes = encode_png(img);
  const tensor<float> t = to_chw(read_png(std::span<const unsigned char>(bytes), pixel_format::rgb));
  REQUIRE(t.shape() == shape{3, 4, 4});

  for (auto filter : {resize_filter::box, resize_filter::bilinear}) {
    // 4 -> 2: both filters average 2x2 blocks.
    const tensor<float> r = resize_image(t, 2, 2, filter);
    REQUIRE(r.shape() == shape{3, 2, 2});
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 2; ++x) {
          const int tl = 4 * (2 * y) + 2 * x;  // top-left pixel index of the block
          const float want = (10.0f * (tl + tl + 1 + tl + 4 + tl + 5) / 4.0f + static_cast<float>(c)) / 255.0f;
          CHECK(r(c, y, x) == doctest::Approx(want).epsilon(1e-6));
        }
  }
  // Box 4 -> 1 is the mean; box to a non-divisor size (4 -> 3) keeps the mean.
  const tensor<float> one = resize_image(t, 1, 1);
  const tensor<float> three = resize_image(t, 3, 3);
  for (int c = 0; c < 3; ++c) {
    float mean4 = 0, mean3 = 0;
    for (int i = 0; i < 16; ++i) mean4 += t[c * 16 + i] / 16.0f;
    for (int i = 0; i < 9; ++i) mean3 += three[c * 9 + i] / 9.0f;
    CHECK(one(c, 0, 0) == doctest::Approx(mean4).epsilon(1e-6));
    CHECK(mean3 == doctest::Approx(mean4).epsilon(1e-5));
  }
  // Box 4 -> 3, first output column covers input [0, 4/3): weights 3/4, 1/4.
  CHECK(three(0, 0, 0) == doctest::Approx((0.75f * 0.75f * t(0, 0, 0) + 0.75f * 0.25f * (t(0, 0, 1) + t(0, 1, 0)) +
                                           0.25f * 0.25f * t(0, 1, 1)))
                              .epsilon(1e-6));
  // Bilinear upsampling 2 -> 4 matches PyTorch (align_corners=False): 0, 0.25, 0.75, 1 of the way.
  const tensor<float> row(shape{1, 2}, {0.0f, 1.0f});
  const tensor<float> up = resize_image(row, 1, 4, resize_filter::bilinear);
  CHECK(up[0] == doctest::Approx(0.0f));
  CHECK(up[1] == doctest::Approx(0.25f));
  CHECK(up[2] == doctest::Approx(0.75f));
  CHECK(up[3] == doctest::Approx(1.0f));
  // Same size copies; bad sizes throw.
  CHECK(std::equal(t.begin(), t.end(), resize_image(t, 4, 4).begin()));
  CHECK_THROWS_AS((void)resize_image(t, 0, 2), std::invalid_argument);
  CHECK_THROWS_AS((void)resize_image(tensor<float>(shape{2}), 1, 1), hybrid::shape_error);
}

TEST_CASE("png: the real emoji downscaled by box equals the 2x2 block means") {
  require_data();
  const tensor<float> full = to_chw(read_png(emoji_png));
  const tensor<float> half = resize_image(full, 32, 32);
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < 32; y += 7)
      for (index_t x = 0; x < 32; x += 5) {
        const float want = (full(c, 2 * y, 2 * x) + full(c, 2 * y, 2 * x + 1) + full(c, 2 * y + 1, 2 * x) +
                            full(c, 2 * y + 1, 2 * x + 1)) / 4.0f;
        CHECK(half(c, y, x) == doctest::Approx(want).epsilon(1e-6));
      }
}

}  // namespace HYBRID_TEST_UNIT
#endif
