// Safetensors (Hugging Face) checkpoint reading and writing, byte-exact to the published format.
// The reader validates the whole header and buffer layout up front; the writer reproduces the reference layout.
#pragma once
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

// The declarations name nlohmann::json only; the bodies, which parse and write it, need all of it.
#include <nlohmann/json_fwd.hpp>

#include "hybrid/core/compiled.hpp"
#include "hybrid/io/atomic_file.hpp"

#if HYBRID_DEFINE
#include <nlohmann/json.hpp>
#endif

// File layout (https://github.com/huggingface/safetensors, "Format"):
//   bytes [0, 8)      N, unsigned 64-bit little-endian: the header length
//   bytes [8, 8+N)    UTF-8 JSON object, starting with '{', possibly padded at the end with spaces:
//                     {"__metadata__": {"k": "v", ...},            (optional, string -> string)
//                      "<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   bytes [8+N, EOF)  the data buffer; data_offsets are relative to its start, data is C-order little-endian.
// The buffer must be covered exactly by the tensors: no overlaps, no gaps, no trailing bytes.

namespace hybrid::io {

// A safetensors file (or byte buffer) that breaks the format. what() names the file, the tensor and the
// problem, with byte offsets where relevant.
class format_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Element types, declared in the reference implementation's order (increasing alignment); the writer
// orders tensors by this enum, descending, then by name, as the reference does.
enum class dtype : std::uint8_t { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

inline constexpr dtype all_dtypes[] = {dtype::BOOL, dtype::U8,  dtype::I8,  dtype::F8_E5M2, dtype::F8_E4M3,
                                       dtype::I16,  dtype::U16, dtype::F16, dtype::BF16,    dtype::I32,
                                       dtype::U32,  dtype::F32, dtype::F64, dtype::I64,     dtype::U64};

// The name used in the header ("F32", "BF16", ...).
constexpr std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::BOOL:
      return "BOOL";
    case dtype::U8:
      return "U8";
    case dtype::I8:
      return "I8";
    case dtype::F8_E5M2:
      return "F8_E5M2";
    case dtype::F8_E4M3:
      return "F8_E4M3";
    case dtype::I16:
      return "I16";
    case dtype::U16:
      return "U16";
    case dtype::F16:
      return "F16";
    case dtype::BF16:
      return "BF16";
    case dtype::I32:
      return "I32";
    case dtype::U32:
      return "U32";
    case dtype::F32:
      return "F32";
    case dtype::F64:
      return "F64";
    case dtype::I64:
      return "I64";
    case dtype::U64:
      return "U64";
  }
  return "?";
}

// Bytes per element.
constexpr std::size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::BOOL:
    case dtype::U8:
    case dtype::I8:
    case dtype::F8_E5M2:
    case dtype::F8_E4M3:
      return 1;
    case dtype::I16:
    case dtype::U16:
    case dtype::F16:
    case dtype::BF16:
      return 2;
    case dtype::I32:
    case dtype::U32:
    case dtype::F32:
      return 4;
    case dtype::F64:
    case dtype::I64:
    case dtype::U64:
      return 8;
  }
  return 0;
}

// The dtype named `name` in a header, or nullopt for names this library does not know.
constexpr std::optional<dtype> parse_dtype(std::string_view name) {
  for (dtype t : all_dtypes)
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

// One tensor of a file, as its header describes it. begin/end are byte offsets into the data buffer.
struct tensor_info {
  std::string name;
  dtype type = dtype::F32;
  std::vector<std::int64_t> shape;  // empty for a scalar
  std::uint64_t begin = 0, end = 0;

  // Number of elements: the product of shape (1 for a scalar, 0 if any dimension is 0).
  std::uint64_t numel() const {
    std::uint64_t n = 1;
    for (std::int64_t d : shape) n *= static_cast<std::uint64_t>(d);
    return n;
  }
  std::uint64_t nbytes() const { return end - begin; }
};

// Element types read() converts to.
template <class T>
concept safetensors_element =
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> && !std::is_same_v<T, wchar_t> &&
    !std::is_same_v<T, char8_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>;

namespace detail::st {

inline constexpr std::uint64_t max_header_size = 100'000'000;  // the reference's MAX_HEADER_SIZE

template <class U>
U load_le(const std::byte* p) {
  static_assert(std::is_unsigned_v<U>);
  U v;
  std::memcpy(&v, p, sizeof(U));
  if constexpr (std::endian::native == std::endian::big && sizeof(U) > 1) {
    U r = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) r = static_cast<U>((r << 8) | ((v >> (8 * i)) & 0xff));
    v = r;
  }
  return v;
}

template <class U>
void store_le(U v, std::byte* p) {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

// IEEE binary16 -> binary32, exact (subnormals, infinities, NaN payloads and signed zeros kept).
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in binary32
    const float mag = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

// float8 e5m2 is the upper byte of a binary16.
inline float f8_e5m2_to_float(std::uint8_t b) { return half_to_float(static_cast<std::uint16_t>(b << 8)); }

// float8 e4m3fn (torch.float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN.
inline float f8_e4m3_to_float(std::uint8_t b) {
  const bool neg = (b & 0x80u) != 0;
  const int exp = (b >> 3) & 0xf;
  const int mant = b & 0x7;
  float mag;
  if (exp == 15 && mant == 7)
    mag = std::numeric_limits<float>::quiet_NaN();
  else if (exp == 0)
    mag = std::ldexp(static_cast<float>(mant), -9);
  else
    mag = std::ldexp(static_cast<float>(8 + mant), exp - 10);
  return neg ? -mag : mag;
}

template <class T>
std::string type_label() {
  if constexpr (std::is_same_v<T, float>)
    return "float";
  else if constexpr (std::is_same_v<T, double>)
    return "double";
  else if constexpr (std::is_floating_point_v<T>)
    return "long double";
  else
    return cat(std::is_signed_v<T> ? "int" : "uint", 8 * sizeof(T));
}

HYBRID_DECL std::string shape_string(const std::vector<std::int64_t>& shape);

// The element count of a shape whose dimensions are non-negative; nullopt when it exceeds 2^64 - 1 (a zero
// dimension makes it 0 whatever the others would multiply to). Reader and writer check sizes with it.
HYBRID_DECL std::optional<std::uint64_t> element_count(std::span<const std::int64_t> shape);

inline std::string offsets_string(std::uint64_t b, std::uint64_t e) { return cat('[', b, ", ", e, ']'); }

// Converts one decoded value to T; false if it is not representable (T integral and the value is
// fractional, non-finite or out of range). Floating destinations accept every value (IEEE rounding).
template <class T, class S>
bool convert_value(S v, T& out) {
  if constexpr (std::is_floating_point_v<T>) {
    out = static_cast<T>(v);
    return true;
  } else if constexpr (std::is_floating_point_v<S>) {
    const double d = static_cast<double>(v);
    if (!std::isfinite(d) || std::trunc(d) != d) return false;
    constexpr int digits = std::numeric_limits<T>::digits;
    const double hi = std::ldexp(1.0, digits);  // max + 1, exact
    const double lo = std::is_signed_v<T> ? -hi : 0.0;
    if (d < lo || d >= hi) return false;
    out = static_cast<T>(d);
    return true;
  } else {
    if (!std::in_range<T>(v)) return false;
    out = static_cast<T>(v);
    return true;
  }
}

// A finite double as nlohmann's dump() writes it (shortest round-trip form).
HYBRID_DECL std::string json_number_string(double v);

template <class S>
std::string value_string(S v) {
  if constexpr (std::is_floating_point_v<S>) {
    if (std::isnan(v)) return "nan";
    return std::isinf(v) ? (v < 0 ? "-inf" : "inf") : json_number_string(static_cast<double>(v));
  } else {
    return std::to_string(v);
  }
}

}  // namespace detail::st

// A parsed, fully validated safetensors file held in memory.
//  - tensors() lists the tensors in data order (ascending data_offsets, ties by name).
//  - read<T>/read_into<T> convert any stored dtype to T: floating T takes every value (IEEE rounding:
//    F64 -> float rounds to nearest, overflow gives inf); integral T takes only values it represents
//    exactly, otherwise std::range_error. BOOL bytes other than 0/1 are a format_error.
//  - Unknown tensor names throw std::out_of_range, wrong destination sizes std::invalid_argument.
// Also accepted, as the reference does: headers without padding, JSON whitespace padding, fields other
// than dtype/shape/data_offsets in a tensor entry (ignored), tensors listed in any order in the header.
class safetensors_reader {
 public:
  // Reads the whole file into memory and validates it. I/O failures throw std::system_error.
  static safetensors_reader open(const std::filesystem::path& path);

  // Parses an in-memory file image (copied). `source` names it in error messages.
  static safetensors_reader from_bytes(std::span<const std::byte> bytes, std::string source = "<memory>") {
    return safetensors_reader(std::vector<std::byte>(bytes.begin(), bytes.end()), std::move(source));
  }
  // Parses an in-memory file image, taking ownership of it.
  static safetensors_reader from_bytes(std::vector<std::byte>&& bytes, std::string source = "<memory>") {
    return safetensors_reader(std::move(bytes), std::move(source));
  }

  const std::string& source() const { return source_; }
  // Tensors in data order (ascending data_offsets; equal offsets, i.e. empty tensors, by name).
  const std::vector<tensor_info>& tensors() const { return tensors_; }
  // The tensor called `name`, or nullptr.
  const tensor_info* find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  // The tensor called `name`; throws std::out_of_range naming the file and the tensor.
  const tensor_info& at(std::string_view name) const {
    if (const tensor_info* t = find(name)) return *t;
    throw std::out_of_range(detail::cat(prefix(), "no tensor named '", name, '\''));
  }
  // The "__metadata__" map (empty if absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // N, the header length in bytes; the data buffer starts at file offset 8 + N.
  std::uint64_t header_size() const { return header_size_; }
  std::uint64_t data_size() const { return bytes_.size() - 8 - header_size_; }

  // The stored bytes of a tensor (little-endian, C order).
  std::span<const std::byte> raw(std::string_view name) const { return raw(at(name)); }
  std::span<const std::byte> raw(const tensor_info& t) const {
    return {bytes_.data() + 8 + header_size_ + t.begin, static_cast<std::size_t>(t.nbytes())};
  }

  // Converts the tensor's elements into `out`, which must hold exactly numel() elements.
  template <safetensors_element T>
  void read_into(std::string_view name, std::span<T> out) const {
    const tensor_info& t = at(name);
    if (out.size() != t.numel())
      throw std::invalid_argument(detail::cat(prefix(), "tensor '", t.name, "' has ", t.numel(), " elements (dtype ",
                                              dtype_name(t.type), ", shape ", detail::st::shape_string(t.shape),
                                              ") but the destination holds ", out.size()));
    convert(t, out);
  }

  // The tensor's elements converted to T.
  template <safetensors_element T>
  std::vector<T> read(std::string_view name) const {
    const tensor_info& t = at(name);
    std::vector<T> out(static_cast<std::size_t>(t.numel()));
    convert(t, std::span<T>(out));
    return out;
  }

 private:
  using json = nlohmann::json;

  safetensors_reader(std::vector<std::byte> bytes, std::string source)
      : source_(std::move(source)), bytes_(std::move(bytes)) {
    parse();
  }

  std::string prefix() const { return detail::cat("safetensors file '", source_, "': "); }
  template <class... A>
  [[noreturn]] void fail(const A&... parts) const {
    throw format_error(detail::cat(prefix(), parts...));
  }
  template <class... A>
  [[noreturn]] void fail_tensor(std::string_view name, const A&... parts) const {
    fail("tensor '", name, "': ", parts...);
  }

  std::string file_range(std::uint64_t b, std::uint64_t e) const {
    const std::uint64_t base = 8 + header_size_;
    return detail::cat("file bytes [", base + b, ", ", base + e, ')');
  }

  void parse();

  // Parses with nlohmann (strict, UTF-8 checked), rejecting duplicate keys at any level, which
  // nlohmann would otherwise silently resolve, and nesting deeper than a header can have.
  json parse_json(const char* first, const char* last) const;

  void parse_metadata(const json& value);

  tensor_info parse_entry(const std::string& name, const json& e, std::uint64_t buffer_size) const;

  // The tensors must tile the data buffer exactly, as the reference requires.
  void check_layout(std::uint64_t buffer_size);

  template <class T, class Decode>
  void convert_with(const tensor_info& t, std::span<T> out, std::size_t esize, Decode decode) const {
    const std::byte* p = bytes_.data() + 8 + header_size_ + t.begin;
    for (std::size_t i = 0; i < out.size(); ++i, p += esize) {
      const auto v = decode(p, i);
      if (!detail::st::convert_value(v, out[i]))
        throw std::range_error(detail::cat(prefix(), "tensor '", t.name, "': element ", i, " (",
                                           detail::st::value_string(v), ", dtype ", dtype_name(t.type),
                                           ") is not exactly representable as ", detail::st::type_label<T>()));
    }
  }

  template <class T>
  void convert(const tensor_info& t, std::span<T> out) const {
    using namespace detail::st;
    const std::byte* base = bytes_.data() + 8 + header_size_ + t.begin;
    // Fast path: the stored type is T and the host is little-endian.
    if constexpr (std::endian::native == std::endian::little) {
      if (same_as_stored<T>(t.type)) {
        if (!out.empty()) std::memcpy(out.data(), base, out.size_bytes());
        return;
      }
    }
    auto u8 = [](const std::byte* p, std::size_t) { return std::to_integer<std::uint8_t>(*p); };
    switch (t.type) {
      case dtype::BOOL:
        return convert_with(t, out, 1, [&](const std::byte* p, std::size_t i) {
          const auto b = std::to_integer<std::uint8_t>(*p);
          if (b > 1)
            fail_tensor(t.name, "BOOL element ", i, " (file byte ", 8 + header_size_ + t.begin + i, ") is ",
                        static_cast<unsigned>(b), ", not 0 or 1");
          return b;
        });
      case dtype::U8:
        return convert_with(t, out, 1, u8);
      case dtype::I8:
        return convert_with(t, out, 1, [](const std::byte* p, std::size_t) {
          return static_cast<std::int8_t>(std::to_integer<std::uint8_t>(*p));
        });
      case dtype::F8_E5M2:
        return convert_with(t, out, 1, [](const std::byte* p, std::size_t) {
          return f8_e5m2_to_float(std::to_integer<std::uint8_t>(*p));
        });
      case dtype::F8_E4M3:
        return convert_with(t, out, 1, [](const std::byte* p, std::size_t) {
          return f8_e4m3_to_float(std::to_integer<std::uint8_t>(*p));
        });
      case dtype::I16:
        return convert_with(t, out, 2, [](const std::byte* p, std::size_t) {
          return static_cast<std::int16_t>(load_le<std::uint16_t>(p));
        });
      case dtype::U16:
        return convert_with(t, out, 2, [](const std::byte* p, std::size_t) { return load_le<std::uint16_t>(p); });
      case dtype::F16:
        return convert_with(t, out, 2,
                            [](const std::byte* p, std::size_t) { return half_to_float(load_le<std::uint16_t>(p)); });
      case dtype::BF16:
        return convert_with(t, out, 2,
                            [](const std::byte* p, std::size_t) { return bf16_to_float(load_le<std::uint16_t>(p)); });
      case dtype::I32:
        return convert_with(t, out, 4, [](const std::byte* p, std::size_t) {
          return static_cast<std::int32_t>(load_le<std::uint32_t>(p));
        });
      case dtype::U32:
        return convert_with(t, out, 4, [](const std::byte* p, std::size_t) { return load_le<std::uint32_t>(p); });
      case dtype::F32:
        return convert_with(
            t, out, 4, [](const std::byte* p, std::size_t) { return std::bit_cast<float>(load_le<std::uint32_t>(p)); });
      case dtype::F64:
        return convert_with(t, out, 8, [](const std::byte* p, std::size_t) {
          return std::bit_cast<double>(load_le<std::uint64_t>(p));
        });
      case dtype::I64:
        return convert_with(t, out, 8, [](const std::byte* p, std::size_t) {
          return static_cast<std::int64_t>(load_le<std::uint64_t>(p));
        });
      case dtype::U64:
        return convert_with(t, out, 8, [](const std::byte* p, std::size_t) { return load_le<std::uint64_t>(p); });
    }
  }

  template <class T>
  static bool same_as_stored(dtype t) {
    switch (t) {
      case dtype::U8:
        return std::is_same_v<T, std::uint8_t>;
      case dtype::I8:
        return std::is_same_v<T, std::int8_t>;
      case dtype::I16:
        return std::is_same_v<T, std::int16_t>;
      case dtype::U16:
        return std::is_same_v<T, std::uint16_t>;
      case dtype::I32:
        return std::is_same_v<T, std::int32_t>;
      case dtype::U32:
        return std::is_same_v<T, std::uint32_t>;
      case dtype::I64:
        return std::is_same_v<T, std::int64_t>;
      case dtype::U64:
        return std::is_same_v<T, std::uint64_t>;
      case dtype::F32:
        return std::is_same_v<T, float> && std::numeric_limits<float>::is_iec559;
      case dtype::F64:
        return std::is_same_v<T, double> && std::numeric_limits<double>::is_iec559;
      default:
        return false;
    }
  }

  std::string source_;
  std::vector<std::byte> bytes_;
  std::uint64_t header_size_ = 0;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Little-endian bytes of some dtype, for writing tensors of types the typed spans do not cover
// (F16/BF16 weights copied from another file, say).
struct raw_tensor_data {
  dtype type = dtype::F32;
  std::span<const std::byte> bytes;
};

// One tensor to write. The alternative of `data` picks the dtype: float -> F32, double -> F64,
// int32_t -> I32, int64_t -> I64, raw_tensor_data -> its own dtype. data.size() must equal the
// product of shape (1 for a scalar, shape {}).
struct tensor_to_write {
  std::string name;
  std::vector<std::int64_t> shape;
  std::variant<std::span<const float>, std::span<const double>, std::span<const std::int32_t>,
               std::span<const std::int64_t>, raw_tensor_data>
      data;
};

namespace detail::st {

struct prepared_tensor {
  const tensor_to_write* src;
  dtype type;
  std::uint64_t nbytes;
};

struct prepared_file {
  std::string header;  // JSON, padded with spaces to a multiple of 8
  std::vector<prepared_tensor> order;
};

template <class T>
constexpr dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return dtype::F32;
  else if constexpr (std::is_same_v<T, double>)
    return dtype::F64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return dtype::I32;
  else
    return dtype::I64;
}

// Header and order exactly as the reference serializer: tensors by dtype (descending enum order) then
// name, data_offsets packed from 0, "__metadata__" first when non-empty, compact JSON, space padding.
template <class... A>
[[noreturn]] void bad(const A&... parts) {
  throw std::invalid_argument(cat("save_safetensors: ", parts...));
}

HYBRID_DECL prepared_file prepare(std::span<const tensor_to_write> tensors,
                                  const std::map<std::string, std::string>& metadata);

template <class Sink, class T>
void write_le(Sink& sink, std::span<const T> data) {
  if constexpr (std::endian::native == std::endian::little) {
    sink.write(data.data(), data.size_bytes());
  } else {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    std::byte chunk[4096];
    const std::size_t per = sizeof(chunk) / sizeof(T);
    for (std::size_t i = 0; i < data.size(); i += per) {
      const std::size_t n = std::min(per, data.size() - i);
      for (std::size_t j = 0; j < n; ++j) store_le(std::bit_cast<U>(data[i + j]), chunk + j * sizeof(T));
      sink.write(chunk, n * sizeof(T));
    }
  }
}

template <class Sink>
void emit(Sink& sink, const prepared_file& f) {
  std::byte len[8];
  store_le<std::uint64_t>(f.header.size(), len);
  sink.write(len, 8);
  sink.write(f.header.data(), f.header.size());
  for (const prepared_tensor& p : f.order) {
    std::visit(
        [&](const auto& span) {
          using S = std::decay_t<decltype(span)>;
          if constexpr (std::is_same_v<S, raw_tensor_data>)
            sink.write(span.bytes.data(), span.bytes.size());
          else
            write_le(sink, span);
        },
        p.src->data);
  }
}

struct vector_sink {
  std::vector<std::byte>& out;
  void write(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  }
};

}  // namespace detail::st

// The complete file image save_safetensors would write. Invalid input (duplicate or reserved names,
// negative dimensions, size mismatches, invalid UTF-8) throws std::invalid_argument naming the tensor.
HYBRID_DECL std::vector<std::byte> serialize_safetensors(std::span<const tensor_to_write> tensors,
                                                         const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` to `path` atomically (see atomic_file.hpp), in the reference layout.
HYBRID_DECL void save_safetensors(const std::filesystem::path& path, std::span<const tensor_to_write> tensors,
                                  const std::map<std::string, std::string>& metadata = {});

inline void save_safetensors(const std::filesystem::path& path, std::initializer_list<tensor_to_write> tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  save_safetensors(path, std::span<const tensor_to_write>(tensors.begin(), tensors.size()), metadata);
}

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL std::string detail::st::json_number_string(double v) { return nlohmann::json(v).dump(); }

HYBRID_DECL std::optional<std::uint64_t> detail::st::element_count(std::span<const std::int64_t> shape) {
  std::uint64_t numel = 1;
  bool overflow = false;
  for (std::int64_t d : shape) {
    const auto u = static_cast<std::uint64_t>(d);
    if (u == 0) return 0;
    if (numel > std::numeric_limits<std::uint64_t>::max() / u)
      overflow = true;
    else
      numel *= u;
  }
  if (overflow) return std::nullopt;
  return numel;
}

HYBRID_DECL std::string detail::st::shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) cat_one(s, cat(i ? ", " : "", shape[i]));
  s += ']';
  return s;
}

HYBRID_DECL safetensors_reader safetensors_reader::open(const std::filesystem::path& path) {
  auto io_fail = [&](const char* what, int fallback) {
    const int err = errno ? errno : fallback;
    throw std::system_error(err, std::generic_category(),
                            detail::cat("safetensors: cannot ", what, " '", path, '\''));
  };
  errno = 0;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) io_fail("read", EISDIR);
  std::ifstream in(path, std::ios::binary);
  if (!in) io_fail("open", EIO);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) io_fail("size", EIO);
  in.seekg(0, std::ios::beg);
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) io_fail("read", EIO);
  return safetensors_reader(std::move(bytes), path.string());
}

HYBRID_DECL void safetensors_reader::parse() {
  using detail::st::max_header_size;
  const std::uint64_t file_size = bytes_.size();
  if (file_size < 8) fail("file is ", file_size, " bytes, shorter than the 8-byte header length prefix");
  const std::uint64_t n = detail::st::load_le<std::uint64_t>(bytes_.data());
  if (n > max_header_size) fail("header length ", n, " (bytes [0, 8)) is above the ", max_header_size, "-byte limit");
  if (n > file_size - 8)
    fail("header length ", n, " (bytes [0, 8)) runs past the end of the file: only ", file_size - 8,
         " bytes follow the length prefix");
  header_size_ = n;
  if (n == 0 || bytes_[8] != std::byte{'{'}) fail("header (file bytes [8, ", 8 + n, ")) must begin with '{'");

  const char* text = reinterpret_cast<const char*>(bytes_.data() + 8);
  // nlohmann's lexer takes a NUL byte for the end of input and would accept "{}\0junk"; raw NUL is
  // never valid JSON, so reject it here.
  if (const void* nul = std::memchr(text, 0, static_cast<std::size_t>(n)))
    fail("header (file bytes [8, ", 8 + n, ")) is not valid JSON: NUL byte at file offset ",
         8 + static_cast<std::uint64_t>(static_cast<const char*>(nul) - text));
  json root = parse_json(text, text + n);
  if (!root.is_object()) fail("header is a JSON ", root.type_name(), ", not an object");

  const std::uint64_t buffer_size = file_size - 8 - n;
  for (auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      parse_metadata(value);
      continue;
    }
    tensors_.push_back(parse_entry(key, value, buffer_size));
  }
  check_layout(buffer_size);
  for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

HYBRID_DECL safetensors_reader::json safetensors_reader::parse_json(const char* first, const char* last) const {
  struct frame {
    std::unordered_set<std::string> keys;
    std::string owner;  // key that introduced this object ("" for the root)
  };
  std::vector<frame> stack;
  std::string last_key;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // root object (0) > tensor entry or __metadata__ (1) > shape/data_offsets array (2)
        if (depth > 2)
          fail("header nests JSON containers deeper than a safetensors header can (under key '", last_key, "')");
        if (event == json::parse_event_t::object_start) stack.push_back({{}, depth == 0 ? std::string() : last_key});
        break;
      case json::parse_event_t::object_end:
        stack.pop_back();
        break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        if (!stack.back().keys.insert(key).second) {
          if (stack.size() == 1 && key == "__metadata__") fail("'__metadata__' appears more than once in the header");
          if (stack.size() == 1) fail_tensor(key, "name appears more than once in the header");
          if (stack.back().owner == "__metadata__") fail("__metadata__: key '", key, "' appears more than once");
          fail_tensor(stack.back().owner, "field '", key, "' appears more than once");
        }
        last_key = std::move(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(first, last, callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    fail("header (file bytes [8, ", 8 + header_size_, ")) is not valid JSON: ", e.what());
  }
}

HYBRID_DECL void safetensors_reader::parse_metadata(const json& value) {
  if (!value.is_object()) fail("__metadata__ is a JSON ", value.type_name(), ", not an object");
  for (auto& [k, v] : value.items()) {
    if (!v.is_string()) fail("__metadata__: value of key '", k, "' is a JSON ", v.type_name(), ", not a string");
    metadata_.emplace(k, v.get<std::string>());
  }
}

HYBRID_DECL tensor_info safetensors_reader::parse_entry(const std::string& name, const json& e,
                                                        std::uint64_t buffer_size) const {
  if (!e.is_object()) fail_tensor(name, "entry is a JSON ", e.type_name(), ", not an object");
  auto field = [&](const char* key) -> const json& {
    auto it = e.find(key);
    if (it == e.end()) fail_tensor(name, "missing field '", key, '\'');
    return *it;
  };
  tensor_info t;
  t.name = name;

  const json& jd = field("dtype");
  if (!jd.is_string()) fail_tensor(name, "dtype is a JSON ", jd.type_name(), ", not a string");
  const std::string& dname = jd.get_ref<const std::string&>();
  std::optional<dtype> dt = parse_dtype(dname);
  if (!dt) fail_tensor(name, "unknown dtype '", dname, '\'');
  t.type = *dt;

  const json& js = field("shape");
  if (!js.is_array()) fail_tensor(name, "shape is a JSON ", js.type_name(), ", not an array");
  for (std::size_t i = 0; i < js.size(); ++i) {
    const json& d = js[i];
    if (!d.is_number_unsigned()) fail_tensor(name, "shape[", i, "] = ", d.dump(), " is not a non-negative integer");
    const std::uint64_t v = d.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail_tensor(name, "shape[", i, "] = ", d.dump(), " does not fit in int64");
    t.shape.push_back(static_cast<std::int64_t>(v));
  }
  const std::optional<std::uint64_t> count = detail::st::element_count(t.shape);
  if (!count) fail_tensor(name, "shape ", js.dump(), " has more than 2^64 - 1 elements");
  const std::uint64_t numel = *count;
  const std::uint64_t esize = dtype_size(t.type);
  if (numel > std::numeric_limits<std::uint64_t>::max() / esize)
    fail_tensor(name, "shape ", js.dump(), " with dtype ", dname, " has more than 2^64 - 1 bytes");
  const std::uint64_t nbytes = numel * esize;

  const json& jo = field("data_offsets");
  if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
    fail_tensor(name, "data_offsets = ", jo.dump(), " is not an array of two non-negative integers");
  t.begin = jo[0].get<std::uint64_t>();
  t.end = jo[1].get<std::uint64_t>();
  const std::string offs = detail::st::offsets_string(t.begin, t.end);
  if (t.begin > t.end) fail_tensor(name, "data_offsets ", offs, " has begin > end");
  if (t.end > buffer_size)
    fail_tensor(name, "data_offsets ", offs, " ends beyond the data buffer, which is ", buffer_size,
                " bytes (file bytes [", 8 + header_size_, ", ", bytes_.size(), "))");
  if (t.end - t.begin != nbytes)
    fail_tensor(name, "data_offsets ", offs, " spans ", t.end - t.begin, " bytes but dtype ", dname, " with shape ",
                detail::st::shape_string(t.shape), " needs ", numel, " x ", esize, " = ", nbytes, " bytes");
  return t;
}

HYBRID_DECL void safetensors_reader::check_layout(std::uint64_t buffer_size) {
  std::sort(tensors_.begin(), tensors_.end(), [](const tensor_info& a, const tensor_info& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  using detail::st::offsets_string;
  std::uint64_t expected = 0;
  const tensor_info* prev = nullptr;
  for (const tensor_info& t : tensors_) {
    if (t.begin < expected)
      fail_tensor(t.name, "data_offsets ", offsets_string(t.begin, t.end), " overlap tensor '", prev->name,
                  "' (data_offsets ", offsets_string(prev->begin, prev->end), ')');
    if (t.begin > expected)
      fail_tensor(t.name, "buffer bytes [", expected, ", ", t.begin, ") (", file_range(expected, t.begin),
                  ") before its data_offsets ", offsets_string(t.begin, t.end), " belong to no tensor",
                  prev ? detail::cat(" (previous tensor: '", prev->name, "')") : std::string());
    expected = t.end;
    prev = &t;
  }
  if (expected != buffer_size)
    fail("buffer bytes [", expected, ", ", buffer_size, ") (", file_range(expected, buffer_size),
         ") belong to no tensor",
         prev ? detail::cat(" (they follow the last tensor, '", prev->name, "')")
              : std::string(" (the file has no tensors)"));
}

HYBRID_DECL detail::st::prepared_file detail::st::prepare(std::span<const tensor_to_write> tensors,
                                                          const std::map<std::string, std::string>& metadata) {
  prepared_file out;
  std::unordered_set<std::string_view> names;
  for (const tensor_to_write& t : tensors) {
    const std::string tn = cat("tensor '", t.name, "': ");
    if (t.name == "__metadata__") bad("'__metadata__' is reserved and cannot name a tensor");
    if (!names.insert(t.name).second) bad("tensor name '", t.name, "' appears more than once");
    for (std::int64_t d : t.shape)
      if (d < 0) bad(tn, "shape ", shape_string(t.shape), " has a negative dimension");
    const std::optional<std::uint64_t> count = element_count(t.shape);
    if (!count) bad(tn, "shape ", shape_string(t.shape), " has more than 2^64 - 1 elements");
    const std::uint64_t numel = *count;
    prepared_tensor p{&t, dtype::F32, 0};
    std::visit(
        [&](const auto& span) {
          using S = std::decay_t<decltype(span)>;
          if constexpr (std::is_same_v<S, raw_tensor_data>) {
            p.type = span.type;
            const std::uint64_t esize = dtype_size(span.type);
            if (numel > std::numeric_limits<std::uint64_t>::max() / esize || span.bytes.size() != numel * esize)
              bad(tn, "shape ", shape_string(t.shape), " with dtype ", dtype_name(span.type), " needs ", numel, " x ",
                  esize, " bytes but ", span.bytes.size(), " bytes were given");
            p.nbytes = span.bytes.size();
          } else {
            p.type = dtype_of<typename S::value_type>();
            if (span.size() != numel)
              bad(tn, "shape ", shape_string(t.shape), " has ", numel, " elements but ", span.size(),
                  " values were given");
            p.nbytes = span.size_bytes();
          }
        },
        t.data);
    out.order.push_back(p);
  }
  std::sort(out.order.begin(), out.order.end(), [](const prepared_tensor& a, const prepared_tensor& b) {
    if (a.type != b.type) return a.type > b.type;
    return a.src->name < b.src->name;
  });

  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  std::uint64_t offset = 0;
  for (const prepared_tensor& p : out.order) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = std::string(dtype_name(p.type));
    e["shape"] = p.src->shape;
    e["data_offsets"] = {offset, offset + p.nbytes};
    offset += p.nbytes;
    h[p.src->name] = std::move(e);
  }
  try {
    out.header = h.dump();
  } catch (const nlohmann::json::type_error& e) {
    bad("tensor names and metadata must be valid UTF-8: ", e.what());
  }
  out.header.append((8 - out.header.size() % 8) % 8, ' ');
  if (out.header.size() > max_header_size)
    bad("header of ", out.header.size(), " bytes is above the ", max_header_size, "-byte limit readers enforce");
  return out;
}

HYBRID_DECL std::vector<std::byte> serialize_safetensors(std::span<const tensor_to_write> tensors,
                                                         const std::map<std::string, std::string>& metadata) {
  const detail::st::prepared_file f = detail::st::prepare(tensors, metadata);
  std::vector<std::byte> out;
  detail::st::vector_sink sink{out};
  detail::st::emit(sink, f);
  return out;
}

HYBRID_DECL void save_safetensors(const std::filesystem::path& path, std::span<const tensor_to_write> tensors,
                                  const std::map<std::string, std::string>& metadata) {
  const detail::st::prepared_file f = detail::st::prepare(tensors, metadata);
  write_file_atomically(path, [&](atomic_file_writer& w) { detail::st::emit(w, f); });
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
