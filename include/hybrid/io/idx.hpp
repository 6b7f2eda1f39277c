// Reader for the IDX binary format (MNIST, Fashion-MNIST, EMNIST): big-endian header, then a typed N-d array.
// Every size is checked against the input before a byte is read; errors name the file and the byte offset.
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/io/file_error.hpp"

namespace hybrid::io {

// Element type codes, the third byte of the magic number 0x0000TTRR (TT = type, RR = rank).
enum class idx_type : std::uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

constexpr std::size_t idx_type_size(idx_type t) noexcept {
  switch (t) {
    case idx_type::u8:
    case idx_type::i8: return 1;
    case idx_type::i16: return 2;
    case idx_type::i32:
    case idx_type::f32: return 4;
    case idx_type::f64: return 8;
  }
  return 0;
}

constexpr std::string_view idx_type_name(idx_type t) noexcept {
  switch (t) {
    case idx_type::u8: return "u8";
    case idx_type::i8: return "i8";
    case idx_type::i16: return "i16";
    case idx_type::i32: return "i32";
    case idx_type::f32: return "f32";
    case idx_type::f64: return "f64";
  }
  return "?";
}

// A malformed or unreadable IDX input. what() reads "<source>: byte offset <n>: <problem>".
class idx_error : public file_offset_error {
 public:
  using file_offset_error::file_offset_error;
};

// An IDX array: its dims (outermost first, as in the file) and its elements in row-major order, converted
// to native byte order. MNIST images: dims {60000, 28, 28}, `as<std::uint8_t>()`.
struct idx_array {
  std::vector<std::uint32_t> dims;
  std::variant<std::vector<std::uint8_t>, std::vector<std::int8_t>, std::vector<std::int16_t>,
               std::vector<std::int32_t>, std::vector<float>, std::vector<double>>
      values;

  idx_type type() const noexcept {
    constexpr idx_type by_index[] = {idx_type::u8,  idx_type::i8,  idx_type::i16,
                                     idx_type::i32, idx_type::f32, idx_type::f64};
    return by_index[values.index()];
  }
  std::size_t size() const noexcept {
    return std::visit([](const auto& v) { return v.size(); }, values);
  }
  // The elements as T; throws std::invalid_argument naming both types when the file holds another type.
  template <class T>
  const std::vector<T>& as() const {
    if (const auto* v = std::get_if<std::vector<T>>(&values)) return *v;
    throw std::invalid_argument("hybrid::io::idx_array::as: the array holds " +
                                std::string(idx_type_name(type())) + " elements, not the requested type");
  }
  template <class T>
  std::vector<T>& as() {
    return const_cast<std::vector<T>&>(std::as_const(*this).as<T>());
  }
};

namespace detail {

struct idx_header {
  idx_type type;
  std::vector<std::uint32_t> dims;
  std::size_t data_offset;  // bytes of header: 4 + 4 * rank
  std::size_t count;        // elements
  std::size_t data_bytes;   // count * element size
};

inline constexpr std::size_t idx_max_header = 4 + 4 * 255;

inline std::uint32_t idx_load_be32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | std::uint32_t{p[3]};
}

inline std::string idx_hex(std::uint64_t v, int digits) {
  std::string s(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = "0123456789ABCDEF"[v & 0xFu];
  return "0x" + s;
}

HYBRID_DECL std::string idx_dims_text(const std::vector<std::uint32_t>& dims);

// Parses and validates the header. `head` holds the first min(size, idx_max_header) bytes of the input;
// `size` is the size of the whole input. On return, size == data_offset + data_bytes exactly.
HYBRID_DECL idx_header parse_idx_header(std::span<const unsigned char> head, std::uint64_t size,
                                        const std::string& src);

// Converts n big-endian elements at `src` into `dst`. `src` may be the storage of `dst` itself.
template <class T>
void idx_decode(const unsigned char* src, T* dst, std::size_t n) noexcept {
  if constexpr (sizeof(T) == 1 || std::endian::native == std::endian::big) {
    if (static_cast<const void*>(src) != static_cast<const void*>(dst)) std::memmove(dst, src, n * sizeof(T));
  } else {
    using U = std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                 std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
    for (std::size_t i = 0; i < n; ++i) {
      unsigned char b[sizeof(T)];
      std::memcpy(b, src + i * sizeof(T), sizeof(T));
      U u = 0;
      for (std::size_t k = 0; k < sizeof(T); ++k) u = static_cast<U>(u << 8 | b[k]);
      dst[i] = std::bit_cast<T>(u);
    }
  }
}

// An array of the header's type and size; `fill(bytes, vector)` supplies the raw big-endian data.
template <class Fill>
idx_array idx_make(const idx_header& h, Fill&& fill) {
  idx_array out;
  out.dims = h.dims;
  auto make = [&]<class T>(std::vector<T> v) {
    v.resize(h.count);
    fill(reinterpret_cast<unsigned char*>(v.data()), h.data_bytes);
    idx_decode(reinterpret_cast<const unsigned char*>(v.data()), v.data(), v.size());
    out.values = std::move(v);
  };
  switch (h.type) {
    case idx_type::u8: make(std::vector<std::uint8_t>()); break;
    case idx_type::i8: make(std::vector<std::int8_t>()); break;
    case idx_type::i16: make(std::vector<std::int16_t>()); break;
    case idx_type::i32: make(std::vector<std::int32_t>()); break;
    case idx_type::f32: make(std::vector<float>()); break;
    case idx_type::f64: make(std::vector<double>()); break;
  }
  return out;
}

}  // namespace detail

// Parses an IDX array held in memory; `source` names it in error messages.
HYBRID_DECL idx_array read_idx(std::span<const unsigned char> bytes, std::string_view source = "<memory>");
inline idx_array read_idx(std::span<const std::byte> bytes, std::string_view source = "<memory>") {
  return read_idx(std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
                  source);
}

// Reads an IDX file (uncompressed: gunzip the distributed .gz first). The data is read straight into
// the result, without a second copy of the file in memory.
HYBRID_DECL idx_array read_idx(const std::filesystem::path& file);

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL std::string detail::idx_dims_text(const std::vector<std::uint32_t>& dims) {
  std::string s = "{";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i != 0 ? ", " : "") + std::to_string(dims[i]);
  return s + "}";
}

HYBRID_DECL detail::idx_header detail::parse_idx_header(std::span<const unsigned char> head, std::uint64_t size,
                                                        const std::string& src) {
  if (size < 4)
    throw idx_error(src, size,
                    "truncated header: the input has " + std::to_string(size) + " bytes, the magic number needs 4");
  const std::uint32_t magic = idx_load_be32(head.data());
  if (head[0] != 0 || head[1] != 0)
    throw idx_error(src, 0,
                    "bad magic number " + idx_hex(magic, 8) +
                        ": an IDX file starts with two zero bytes (0x0000TTRR; MNIST images are 0x00000803, "
                        "labels 0x00000801)");
  const auto type = static_cast<idx_type>(head[2]);
  if (idx_type_size(type) == 0)
    throw idx_error(src, 2,
                    "unsupported element type code " + idx_hex(head[2], 2) + " in magic number " +
                        idx_hex(magic, 8) + " (known: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64)");
  const std::size_t rank = head[3];
  if (rank == 0) throw idx_error(src, 3, "rank 0 in magic number " + idx_hex(magic, 8) + ": an array needs dims");
  const std::size_t data_offset = 4 + 4 * rank;
  if (size < data_offset)
    throw idx_error(src, size,
                    "truncated header: rank " + std::to_string(rank) + " needs " + std::to_string(data_offset) +
                        " header bytes, the input has " + std::to_string(size));

  const std::size_t elem = idx_type_size(type);
  // The largest element count whose bytes still fit a std::vector and the address space.
  const std::uint64_t max_count = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max()) / elem;
  std::vector<std::uint32_t> dims(rank);
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    dims[i] = idx_load_be32(head.data() + 4 + 4 * i);
    if (dims[i] != 0 && count > max_count / dims[i])
      throw idx_error(src, 4 + 4 * i,
                      "dims " + idx_dims_text(std::vector<std::uint32_t>(dims.begin(), dims.begin() + i + 1)) +
                          " of " + std::string(idx_type_name(type)) + " overflow the addressable size");
    count *= dims[i];
  }
  const std::uint64_t data_bytes = count * elem;
  const std::uint64_t expected = data_offset + data_bytes;
  const std::string shape = "dims " + idx_dims_text(dims) + " of " + std::string(idx_type_name(type)) + " need " +
                            std::to_string(data_bytes) + " data bytes after the " + std::to_string(data_offset) +
                            "-byte header";
  if (size < expected)
    throw idx_error(src, size, "truncated data: " + shape + ", the input ends after " +
                                   std::to_string(size - data_offset) + " of them");
  if (size > expected)
    throw idx_error(src, expected, "trailing data: " + shape + ", " + std::to_string(size - expected) +
                                       " more bytes follow them");
  return {type, std::move(dims), data_offset, static_cast<std::size_t>(count), static_cast<std::size_t>(data_bytes)};
}

HYBRID_DECL idx_array read_idx(std::span<const unsigned char> bytes, std::string_view source) {
  const std::string src(source);
  const auto h = detail::parse_idx_header(bytes.first(std::min(bytes.size(), detail::idx_max_header)),
                                          bytes.size(), src);
  return detail::idx_make(h, [&](unsigned char* dst, std::size_t n) {
    if (n != 0) std::memcpy(dst, bytes.data() + h.data_offset, n);
  });
}

HYBRID_DECL idx_array read_idx(const std::filesystem::path& file) {
  const std::string src = file.string();
  auto sys_error = [&](std::uint64_t offset, const std::string& what, int err) {
    return idx_error(src, offset, what + ": " + std::error_code(err, std::generic_category()).message());
  };
  struct closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, closer> f(std::fopen(src.c_str(), "rb"));
  if (!f) throw sys_error(0, "cannot open", errno);
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(file, ec);
  if (ec) throw idx_error(src, 0, "cannot get the file size: " + ec.message());

  unsigned char head[detail::idx_max_header];
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, sizeof head));
  const std::size_t got = std::fread(head, 1, want, f.get());
  if (got != want) throw sys_error(got, "read failed", errno);
  const auto h = detail::parse_idx_header(std::span<const unsigned char>(head, got), size, src);

  return detail::idx_make(h, [&](unsigned char* dst, std::size_t n) {
    // The header read may already hold the first data bytes; read the rest straight into place.
    const std::size_t have = std::min(n, got - h.data_offset);
    if (have != 0) std::memcpy(dst, head + h.data_offset, have);
    const std::size_t rest = n - have;
    const std::size_t n_read = rest != 0 ? std::fread(dst + have, 1, rest, f.get()) : 0;
    if (n_read != rest)
      throw idx_error(src, got + n_read, "the file ended early (changed while being read?)");
    if (std::fgetc(f.get()) != EOF)
      throw idx_error(src, h.data_offset + n, "trailing data appeared (changed while being read?)");
  });
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
