// CRC-32C (Castagnoli) checksums, slicing-by-8 and usable in constant expressions, plus TensorFlow's masked form.
// Frames TFRecord / TensorBoard event files (tensorboard.hpp) and checks the integrity of any byte buffer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace hybrid::io {

namespace detail {

// Reflected form of the Castagnoli polynomial 0x1EDC6F41.
inline constexpr std::uint32_t crc32c_poly = 0x82F63B78u;

// Table k maps a byte that is k positions further from the end of an 8-byte block to its CRC contribution.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc32c_tables() noexcept {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) != 0 ? crc32c_poly : 0u);
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s)
    for (std::size_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
  return t;
}

inline constexpr auto crc32c_tables = make_crc32c_tables();

// Runs the raw (pre- and post-inversion excluded) CRC register over n bytes. Bytes are assembled
// explicitly, so the result does not depend on the host's byte order or on the pointer's alignment.
template <class Byte>
constexpr std::uint32_t crc32c_update(std::uint32_t crc, const Byte* p, std::size_t n) noexcept {
  static_assert(sizeof(Byte) == 1, "crc32c works on byte sequences");
  const auto& t = crc32c_tables;
  auto at = [p](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])); };
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint32_t lo = crc ^ (at(i) | at(i + 1) << 8 | at(i + 2) << 16 | at(i + 3) << 24);
    const std::uint32_t hi = at(i + 4) | at(i + 5) << 8 | at(i + 6) << 16 | at(i + 7) << 24;
    crc = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
  }
  for (; i < n; ++i) crc = (crc >> 8) ^ t[0][(crc ^ at(i)) & 0xFFu];
  return crc;
}

}  // namespace detail

// Extends a finished CRC-32C with more data: crc32c_extend(crc32c(a), b) == crc32c(a + b).
constexpr std::uint32_t crc32c_extend(std::uint32_t crc, std::span<const std::byte> data) noexcept {
  return ~detail::crc32c_update(~crc, data.data(), data.size());
}
constexpr std::uint32_t crc32c_extend(std::uint32_t crc, std::span<const unsigned char> data) noexcept {
  return ~detail::crc32c_update(~crc, data.data(), data.size());
}
constexpr std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view data) noexcept {
  return ~detail::crc32c_update(~crc, data.data(), data.size());
}
inline std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  return ~detail::crc32c_update(~crc, static_cast<const unsigned char*>(data), size);
}

// CRC-32C of a whole buffer: crc32c("123456789") == 0xE3069283.
constexpr std::uint32_t crc32c(std::span<const std::byte> data) noexcept { return crc32c_extend(0, data); }
constexpr std::uint32_t crc32c(std::span<const unsigned char> data) noexcept { return crc32c_extend(0, data); }
constexpr std::uint32_t crc32c(std::string_view data) noexcept { return crc32c_extend(0, data); }
inline std::uint32_t crc32c(const void* data, std::size_t size) noexcept { return crc32c_extend(0, data, size); }

// TensorFlow masks the CRCs it stores next to the data they cover, because a CRC of a string that
// itself embeds CRCs is weak: rotate right by 15 bits and add a constant (tensorflow/core/lib/hash/crc32c.h).
inline constexpr std::uint32_t crc32c_mask_delta = 0xA282EAD8u;

constexpr std::uint32_t crc32c_mask(std::uint32_t crc) noexcept {
  return ((crc >> 15) | (crc << 17)) + crc32c_mask_delta;
}
constexpr std::uint32_t crc32c_unmask(std::uint32_t masked) noexcept {
  const std::uint32_t rot = masked - crc32c_mask_delta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace hybrid::io
