#include <hybrid/io/crc32c.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace {

using hybrid::io::crc32c;
using hybrid::io::crc32c_extend;
using hybrid::io::crc32c_mask;
using hybrid::io::crc32c_unmask;

// Bit-at-a-time reference, straight from the definition (reflected, init and xorout 0xFFFFFFFF).
std::uint32_t crc32c_bitwise(const unsigned char* p, std::size_t n) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) != 0 ? 0x82F63B78u : 0u);
  }
  return ~crc;
}

}  // namespace

// Usable at compile time.
static_assert(crc32c("123456789") == 0xE3069283u);
static_assert(crc32c("") == 0u);

TEST_CASE("crc32c: check value and RFC 3720 (iSCSI) test vectors") {
  CHECK(crc32c("123456789") == 0xE3069283u);

  std::vector<unsigned char> buf(32, 0x00);
  CHECK(crc32c(buf) == 0x8A9136AAu);
  buf.assign(32, 0xFF);
  CHECK(crc32c(buf) == 0x62A8AB43u);
  for (std::size_t i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  CHECK(crc32c(buf) == 0x46DD794Eu);
  for (std::size_t i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(31 - i);
  CHECK(crc32c(buf) == 0x113FDB5Cu);

  // RFC 3720 B.4: an iSCSI SCSI Read (10) command PDU.
  const std::vector<unsigned char> pdu = {
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
      0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  CHECK(crc32c(pdu) == 0xD9963A56u);
}

TEST_CASE("crc32c: every overload agrees") {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  const std::uint32_t want = crc32c(s);
  CHECK(want == 0x22620404u);
  CHECK(crc32c(s.data(), s.size()) == want);
  CHECK(crc32c(std::as_bytes(std::span(s.data(), s.size()))) == want);
  const std::vector<unsigned char> u(s.begin(), s.end());
  CHECK(crc32c(u) == want);
}

TEST_CASE("crc32c: slicing-by-8 matches the bitwise definition at every length and alignment") {
  std::mt19937 rng(12345);
  std::vector<unsigned char> data(300);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  for (std::size_t offset = 0; offset < 9; ++offset) {
    for (std::size_t n = 0; offset + n <= data.size(); n += (n < 40 ? 1 : 13)) {
      INFO("offset " << offset << " length " << n);
      CHECK(crc32c(data.data() + offset, n) == crc32c_bitwise(data.data() + offset, n));
    }
  }
}

TEST_CASE("crc32c: extend equals one-shot over any split") {
  std::mt19937 rng(7);
  std::vector<unsigned char> data(100);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  const std::uint32_t whole = crc32c(data);
  for (std::size_t cut = 0; cut <= data.size(); ++cut) {
    const std::uint32_t head = crc32c(data.data(), cut);
    CHECK(crc32c_extend(head, data.data() + cut, data.size() - cut) == whole);
  }
}

TEST_CASE("crc32c: TensorFlow mask") {
  const std::uint32_t c = 0xE3069283u;
  CHECK(crc32c_mask(c) == static_cast<std::uint32_t>(((c >> 15) | (c << 17)) + 0xa282ead8u));
  CHECK(crc32c_mask(0u) == 0xA282EAD8u);
  CHECK(crc32c_mask(c) != c);
  std::mt19937 rng(3);
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t x = static_cast<std::uint32_t>(rng());
    CHECK(crc32c_unmask(crc32c_mask(x)) == x);
  }
  static_assert(crc32c_unmask(crc32c_mask(0x12345678u)) == 0x12345678u);
}

}  // namespace HYBRID_TEST_UNIT
