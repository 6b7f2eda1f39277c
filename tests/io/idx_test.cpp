#include <hybrid/io/idx.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
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
using hybrid::io::idx_array;
using hybrid::io::idx_error;
using hybrid::io::idx_type;
using hybrid::io::read_idx;

namespace {

using bytes = std::vector<unsigned char>;

void put_be(bytes& out, std::uint64_t v, std::size_t n) {
  for (std::size_t i = n; i-- > 0;) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

bytes header(std::uint8_t type, const std::vector<std::uint32_t>& dims) {
  bytes b = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims) put_be(b, d, 4);
  return b;
}

// The message of the idx_error thrown by f, checking its offset; fails the test if nothing is thrown.
template <class F>
std::string error_of(F&& f, std::uint64_t offset) {
  try {
    f();
  } catch (const idx_error& e) {
    CHECK(e.offset() == offset);
    return e.what();
  }
  FAIL("no idx_error thrown");
  return {};
}

struct temp_file {
  fs::path path;
  temp_file() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hybrid_idx_test_" + std::to_string(rd()) + std::to_string(rd()));
  }
  ~temp_file() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  void write(const bytes& b) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out);
  }
};

fs::path fashion(const std::string& name) {
  const fs::path p = fs::path(HYBRID_DATA_DIR) / "fashion-mnist" / name;
  INFO("missing " << p.string() << ": run `bash scripts/data/fashion_mnist.sh` from the repo root");
  REQUIRE(fs::exists(p));
  return p;
}

}  // namespace

TEST_CASE("idx: Fashion-MNIST train and t10k") {
  struct split {
    const char* name;
    std::uint32_t n;
  };
  for (const split s : {split{"train", 60000}, split{"t10k", 10000}}) {
    INFO("split " << s.name);
    const idx_array images = read_idx(fashion(std::string(s.name) + "-images-idx3-ubyte"));
    CHECK(images.type() == idx_type::u8);
    CHECK(images.dims == std::vector<std::uint32_t>{s.n, 28, 28});
    REQUIRE(images.size() == std::size_t{s.n} * 28 * 28);
    const auto& px = images.as<std::uint8_t>();
    CHECK(*std::max_element(px.begin(), px.end()) == 255);
    CHECK(*std::min_element(px.begin(), px.end()) == 0);
    CHECK_THROWS_AS((void)images.as<float>(), std::invalid_argument);

    const idx_array labels = read_idx(fashion(std::string(s.name) + "-labels-idx1-ubyte"));
    CHECK(labels.type() == idx_type::u8);
    CHECK(labels.dims == std::vector<std::uint32_t>{s.n});
    std::array<std::size_t, 10> per_class{};
    for (std::uint8_t l : labels.as<std::uint8_t>()) {
      REQUIRE(l < 10);
      ++per_class[l];
    }
    for (std::size_t c = 0; c < 10; ++c) CHECK(per_class[c] == s.n / 10);  // 6000 each, 1000 each
  }
}

TEST_CASE("idx: reading the file and reading its bytes agree") {
  const fs::path p = fashion("t10k-labels-idx1-ubyte");
  std::ifstream in(p, std::ios::binary);
  const bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const idx_array from_file = read_idx(p);
  const idx_array from_bytes = read_idx(std::span<const unsigned char>(b));
  CHECK(from_file.dims == from_bytes.dims);
  CHECK(from_file.as<std::uint8_t>() == from_bytes.as<std::uint8_t>());
  CHECK(std::equal(b.begin() + 8, b.end(), from_file.as<std::uint8_t>().begin()));
}

TEST_CASE("idx: every element type decodes from big-endian") {
  {
    bytes b = header(0x08, {2, 3});
    for (unsigned char v : {0, 1, 127, 128, 254, 255}) b.push_back(v);
    const auto a = read_idx(std::span<const unsigned char>(b));
    CHECK(a.type() == idx_type::u8);
    CHECK(a.as<std::uint8_t>() == std::vector<std::uint8_t>{0, 1, 127, 128, 254, 255});
  }
  {
    bytes b = header(0x09, {3});
    for (unsigned char v : {0x00, 0x7F, 0x80}) b.push_back(v);
    CHECK(read_idx(std::span<const unsigned char>(b)).as<std::int8_t>() == std::vector<std::int8_t>{0, 127, -128});
  }
  {
    bytes b = header(0x0B, {3});
    for (std::uint16_t v : {0x0102, 0xFFFE, 0x8000}) put_be(b, v, 2);
    CHECK(read_idx(std::span<const unsigned char>(b)).as<std::int16_t>() ==
          std::vector<std::int16_t>{0x0102, -2, -32768});
  }
  {
    bytes b = header(0x0C, {1, 2});
    put_be(b, 0x01020304u, 4);
    put_be(b, 0xFFFFFFFFu, 4);
    const auto a = read_idx(std::span<const unsigned char>(b));
    CHECK(a.type() == idx_type::i32);
    CHECK(a.dims == std::vector<std::uint32_t>{1, 2});
    CHECK(a.as<std::int32_t>() == std::vector<std::int32_t>{0x01020304, -1});
  }
  {
    bytes b = header(0x0D, {2});
    put_be(b, std::bit_cast<std::uint32_t>(1.5f), 4);
    put_be(b, std::bit_cast<std::uint32_t>(-2.25e-20f), 4);
    CHECK(read_idx(std::span<const unsigned char>(b)).as<float>() == std::vector<float>{1.5f, -2.25e-20f});
  }
  {
    bytes b = header(0x0E, {2, 1, 1});
    put_be(b, std::bit_cast<std::uint64_t>(3.141592653589793), 8);
    put_be(b, std::bit_cast<std::uint64_t>(-1e300), 8);
    temp_file tmp;  // also through the file path, which decodes in place
    tmp.write(b);
    const auto a = read_idx(tmp.path);
    CHECK(a.type() == idx_type::f64);
    CHECK(a.as<double>() == std::vector<double>{3.141592653589793, -1e300});
  }
  {
    // Zero-sized dims are valid: no data follows the header.
    const bytes b = header(0x0D, {0, 5});
    const auto a = read_idx(std::span<const unsigned char>(b));
    CHECK(a.size() == 0);
    CHECK(a.dims == std::vector<std::uint32_t>{0, 5});
  }
  {
    // std::byte input.
    bytes b = header(0x08, {1});
    b.push_back(9);
    CHECK(read_idx(std::as_bytes(std::span<const unsigned char>(b))).as<std::uint8_t>().at(0) == 9);
  }
}

TEST_CASE("idx: corrupt inputs are rejected with the source and byte offset") {
  bytes good = header(0x08, {2, 2});
  for (unsigned char v : {1, 2, 3, 4}) good.push_back(v);
  auto parse = [](const bytes& b) { return [b] { (void)read_idx(std::span<const unsigned char>(b), "mem.idx"); }; };

  std::string msg = error_of(parse(bytes{0, 0, 8}), 3);
  CHECK(msg.find("mem.idx: byte offset 3: truncated header") == 0);

  bytes bad = good;
  bad[1] = 0x08;
  msg = error_of(parse(bad), 0);
  CHECK(msg.find("bad magic number 0x00080802") != std::string::npos);
  CHECK(msg.find("mem.idx") == 0);

  bad = good;
  bad[2] = 0x0A;
  msg = error_of(parse(bad), 2);
  CHECK(msg.find("unsupported element type code 0x0A") != std::string::npos);

  bad = good;
  bad[3] = 0;
  CHECK(error_of(parse(bad), 3).find("rank 0") != std::string::npos);

  bad = good;
  bad[3] = 200;  // the header claims 200 dims
  CHECK(error_of(parse(bad), good.size()).find("truncated header") != std::string::npos);

  bad = good;
  bad.pop_back();
  msg = error_of(parse(bad), bad.size());
  CHECK(msg.find("truncated data: dims {2, 2} of u8 need 4 data bytes") != std::string::npos);

  bad = good;
  bad.push_back(0);
  bad.push_back(0);
  msg = error_of(parse(bad), good.size());
  CHECK(msg.find("trailing data") != std::string::npos);
  CHECK(msg.find("2 more bytes") != std::string::npos);

  // dims whose product is astronomically large: rejected from the header alone, nothing allocated.
  bad = header(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu, 2});
  msg = error_of(parse(bad), 8);
  CHECK(msg.find("overflow") != std::string::npos);
  bad = header(0x08, {0xFFFFFFFFu, 0x10000u});  // addressable, but far more than the input holds
  CHECK(error_of(parse(bad), bad.size()).find("truncated data") != std::string::npos);
  // A zero dim makes the product zero whatever follows it.
  CHECK_NOTHROW(parse(header(0x08, {0, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}))());
}

TEST_CASE("idx: every truncation and single-byte corruption is rejected or parsed, never read out of bounds") {
  bytes good = header(0x0B, {3, 2});
  for (int i = 0; i < 6; ++i) put_be(good, static_cast<std::uint64_t>(i * 1000), 2);
  REQUIRE(read_idx(std::span<const unsigned char>(good)).size() == 6);
  for (std::size_t n = 0; n < good.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    // A heap copy of exactly n bytes, so a sanitizer build would catch any overread.
    const bytes prefix(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK_THROWS_AS((void)read_idx(std::span<const unsigned char>(prefix)), idx_error);
  }
  std::mt19937 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    bytes b = good;
    b[rng() % 12] = static_cast<unsigned char>(rng());  // corrupt the header
    try {
      const auto a = read_idx(std::span<const unsigned char>(b));
      std::size_t prod = 1;
      for (auto d : a.dims) prod *= d;
      CHECK(prod == a.size());
      CHECK(12 + a.size() * hybrid::io::idx_type_size(a.type()) == b.size());
    } catch (const idx_error&) {
    }
  }
}

TEST_CASE("idx: file errors name the file") {
  temp_file tmp;
  bytes b = header(0x08, {10});
  b.resize(b.size() + 9);  // one byte short
  tmp.write(b);
  const std::string msg = error_of([&] { (void)read_idx(tmp.path); }, b.size());
  CHECK(msg.find(tmp.path.string() + ": byte offset 17: truncated data") == 0);

  const fs::path missing = tmp.path.string() + ".missing";
  CHECK(error_of([&] { (void)read_idx(missing); }, 0).find(missing.string()) == 0);

  // A file too short to hold even the magic number.
  tmp.write(bytes{0, 0});
  CHECK(error_of([&] { (void)read_idx(tmp.path); }, 2).find("truncated header") != std::string::npos);
}

}  // namespace HYBRID_TEST_UNIT
