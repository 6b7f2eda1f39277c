// Tests for hybrid/io/safetensors.hpp: byte-exact fixtures, round trips, dtype conversion, and one test per
// rejection rule (each checks that the message names the file and the tensor).
#include <doctest/doctest.h>

#include <hybrid/io/safetensors.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using namespace hybrid::io;
using namespace std::string_literals;

namespace {

// Concatenation by appending (`"lit" + std::string&&` trips GCC 12's false -Wrestrict, GCC bug 105329).
template <class... A>
std::string str(const A&... parts) {
  std::string s;
  ((s += parts), ...);
  return s;
}

fs::path fixture(const std::string& name) {
  return fs::path(HYBRID_SOURCE_DIR) / "tests" / "io" / "fixtures" / "safetensors" / name;
}

std::vector<std::byte> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  std::vector<char> c{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

std::vector<std::byte> to_bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

// A file image: 8-byte little-endian length, `header` verbatim, then `data_len` bytes of `fill`.
std::vector<std::byte> image(const std::string& header, std::size_t data_len = 0, int fill = 0) {
  std::vector<std::byte> out(8);
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  out.insert(out.end(), data_len, static_cast<std::byte>(fill));
  return out;
}

std::vector<std::byte> with_length(std::uint64_t n, std::size_t total) {
  std::vector<std::byte> out(total, std::byte{'{'});
  for (std::size_t i = 0; i < 8 && i < total; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  return out;
}

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           str("hybrid_safetensors_test_", std::to_string(::getpid()), "_", std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Parsing `bytes` must fail with a format_error whose message contains the source name and every needle.
void check_rejects(const std::vector<std::byte>& bytes, std::initializer_list<std::string> needles) {
  try {
    (void)safetensors_reader::from_bytes(std::span<const std::byte>(bytes), "bad.safetensors");
    FAIL("expected a format_error");
  } catch (const format_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("'bad.safetensors'") != std::string::npos);
    for (const std::string& n : needles) {
      INFO("needle: " << n);
      CHECK(msg.find(n) != std::string::npos);
    }
  }
}

const std::string f32x2_at(const std::string& name, int b) {
  return str("\"", name, "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[", std::to_string(b), ",",
             std::to_string(b + 8), "]}");
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// dtypes and conversions

TEST_CASE("dtype helpers") {
  CHECK(dtype_name(dtype::BF16) == "BF16");
  CHECK(dtype_size(dtype::F8_E4M3) == 1);
  CHECK(dtype_size(dtype::U64) == 8);
  for (dtype t : all_dtypes) CHECK(parse_dtype(dtype_name(t)) == t);
  CHECK_FALSE(parse_dtype("F4").has_value());
  CHECK_FALSE(parse_dtype("f32").has_value());
}

TEST_CASE("all dtypes convert correctly from the fixture") {
  const auto r = safetensors_reader::open(fixture("dtypes.safetensors"));
  CHECK(r.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"source", "make_fixtures.py"}});

  // tensors() is in data order, which the reference writer makes dtype-descending, then name.
  std::vector<std::string> names;
  for (const tensor_info& t : r.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"u64", "i64", "f64", "f32", "u32", "i32", "bf16", "f16", "u16", "i16",
                                          "f8_e4m3", "f8_e5m2", "i8", "u8", "bool"});
  REQUIRE(r.find("i32") != nullptr);
  CHECK(r.find("i32")->shape == std::vector<std::int64_t>{2, 2});
  CHECK(r.find("i32")->type == dtype::I32);
  CHECK(r.find("nope") == nullptr);

  const double inf = std::numeric_limits<double>::infinity();
  SUBCASE("F32") {
    const auto v = r.read<float>("f32");
    REQUIRE(v.size() == 8);
    CHECK(v[0] == 1.0f);
    CHECK((v[1] == 0.0f && std::signbit(v[1])));
    CHECK(v[2] == std::numeric_limits<float>::denorm_min());
    CHECK(v[3] == std::numeric_limits<float>::infinity());
    CHECK(v[4] == -std::numeric_limits<float>::infinity());
    CHECK(std::bit_cast<std::uint32_t>(v[5]) == 0x7fc00000u);
    CHECK(v[6] == std::numeric_limits<float>::max());
    CHECK(v[7] == 0.1f);
    const auto d = r.read<double>("f32");
    CHECK(d[7] == static_cast<double>(0.1f));
    CHECK(d[2] == std::ldexp(1.0, -149));
  }
  SUBCASE("F64") {
    const auto v = r.read<double>("f64");
    REQUIRE(v.size() == 7);
    CHECK(v[0] == 1.0);
    CHECK(v[1] == -2.5);
    CHECK(v[2] == std::numeric_limits<double>::denorm_min());
    CHECK(v[3] == 1e300);
    CHECK(v[4] == inf);
    CHECK(std::isnan(v[5]));
    CHECK(v[6] == 0.1);
    const auto f = r.read<float>("f64");  // narrowing rounds, overflows to inf, underflows to 0
    CHECK(f[1] == -2.5f);
    CHECK(f[2] == 0.0f);
    CHECK(f[3] == std::numeric_limits<float>::infinity());
    CHECK(f[6] == 0.1f);
  }
  SUBCASE("F16 including subnormals, inf and nan") {
    const auto v = r.read<float>("f16");
    REQUIRE(v.size() == 13);
    CHECK((v[0] == 0.0f && !std::signbit(v[0])));
    CHECK((v[1] == 0.0f && std::signbit(v[1])));
    CHECK(v[2] == std::ldexp(1.0f, -24));            // smallest subnormal
    CHECK(v[3] == 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
    CHECK(v[4] == std::ldexp(1.0f, -14));            // smallest normal
    CHECK(v[5] == 1.0f);
    CHECK(v[6] == -2.0f);
    CHECK(v[7] == 0.333251953125f);
    CHECK(v[8] == 65504.0f);
    CHECK(v[9] == std::numeric_limits<float>::infinity());
    CHECK(v[10] == -std::numeric_limits<float>::infinity());
    CHECK(std::isnan(v[11]));
    CHECK(v[12] == -std::ldexp(1.0f, -24));
    const auto d = r.read<double>("f16");
    CHECK(d[2] == std::ldexp(1.0, -24));
    CHECK(d[9] == inf);
  }
  SUBCASE("BF16 including subnormals, inf and nan") {
    const auto v = r.read<float>("bf16");
    REQUIRE(v.size() == 12);
    CHECK((v[0] == 0.0f && !std::signbit(v[0])));
    CHECK((v[1] == 0.0f && std::signbit(v[1])));
    CHECK(v[2] == std::ldexp(1.0f, -133));
    CHECK(v[3] == 127.0f * std::ldexp(1.0f, -133));
    CHECK(v[4] == std::numeric_limits<float>::min());
    CHECK(v[5] == 1.0f);
    CHECK(v[6] == -3.0f);
    CHECK(v[7] == 3.140625f);
    CHECK(v[8] == 255.0f * std::ldexp(1.0f, 120));  // bf16 max: 0x7f7f = 1.9921875 * 2^127
    CHECK(v[9] == std::numeric_limits<float>::infinity());
    CHECK(v[10] == -std::numeric_limits<float>::infinity());
    CHECK(std::isnan(v[11]));
  }
  SUBCASE("F8_E5M2 and F8_E4M3") {
    const auto a = r.read<float>("f8_e5m2");
    REQUIRE(a.size() == 9);
    CHECK(a[0] == 0.0f);
    CHECK(a[1] == std::ldexp(1.0f, -16));
    CHECK(a[2] == std::ldexp(1.0f, -14));
    CHECK(a[3] == 1.0f);
    CHECK(a[4] == -2.0f);
    CHECK(a[5] == 57344.0f);
    CHECK(a[6] == std::numeric_limits<float>::infinity());
    CHECK(a[7] == -std::numeric_limits<float>::infinity());
    CHECK(std::isnan(a[8]));
    const auto b = r.read<double>("f8_e4m3");
    REQUIRE(b.size() == 9);
    CHECK(b[0] == 0.0);
    CHECK(b[1] == std::ldexp(1.0, -9));
    CHECK(b[2] == 7 * std::ldexp(1.0, -9));
    CHECK(b[3] == std::ldexp(1.0, -6));
    CHECK(b[4] == 1.0);
    CHECK(b[5] == -2.0);
    CHECK(b[6] == 448.0);
    CHECK(std::isnan(b[7]));
    CHECK(std::isnan(b[8]));
  }
  SUBCASE("integers") {
    CHECK(r.read<std::int64_t>("i64") == std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(),
                                                                   std::numeric_limits<std::int64_t>::max(), -1, 0,
                                                                   42});
    CHECK(r.read<std::uint64_t>("u64") == std::vector<std::uint64_t>{0, std::numeric_limits<std::uint64_t>::max(), 9});
    CHECK(r.read<std::int32_t>("i32") == std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(),
                                                                   std::numeric_limits<std::int32_t>::max(), -1, 7});
    CHECK(r.read<std::int64_t>("u32") == std::vector<std::int64_t>{0, 4294967295LL, 5});
    CHECK(r.read<int>("i16") == std::vector<int>{-32768, 32767, -1});
    CHECK(r.read<int>("u16") == std::vector<int>{0, 65535, 1234});
    CHECK(r.read<int>("i8") == std::vector<int>{-128, 127, -1});
    CHECK(r.read<int>("u8") == std::vector<int>{0, 255, 7});
    CHECK(r.read<std::uint8_t>("bool") == std::vector<std::uint8_t>{0, 1, 1, 0});
    CHECK(r.read<float>("bool") == std::vector<float>{0, 1, 1, 0});
    CHECK(r.read<double>("i64")[0] == -std::ldexp(1.0, 63));
    CHECK(r.read<float>("i32")[3] == 7.0f);
    CHECK(r.read<double>("u64")[1] == std::ldexp(1.0, 64));  // rounds to nearest
  }
}

TEST_CASE("lossy conversions to integers throw range_error naming the tensor and element") {
  const auto r = safetensors_reader::open(fixture("dtypes.safetensors"));
  auto message = [&](auto fn) -> std::string {
    try {
      fn();
    } catch (const std::range_error& e) {
      return e.what();
    }
    return "(no exception)";
  };
  std::string m = message([&] { (void)r.read<std::int32_t>("f64"); });  // -2.5 is element 1
  CHECK(m.find("'f64'") != std::string::npos);
  CHECK(m.find("element 1") != std::string::npos);
  CHECK(m.find("-2.5") != std::string::npos);
  CHECK(m.find("int32") != std::string::npos);
  CHECK(m.find("dtypes.safetensors") != std::string::npos);
  m = message([&] { (void)r.read<std::int64_t>("u64"); });
  CHECK(m.find("element 1") != std::string::npos);
  m = message([&] { (void)r.read<std::uint32_t>("i32"); });
  CHECK(m.find("element 0") != std::string::npos);
  m = message([&] { (void)r.read<std::int8_t>("u8"); });  // 255
  CHECK(m.find("element 1") != std::string::npos);
  m = message([&] { (void)r.read<int>("f16"); });  // 0, -0 fine; 2^-24 is not integral
  CHECK(m.find("element 2") != std::string::npos);
  m = message([&] { (void)r.read<std::int64_t>("f32"); });
  CHECK(m.find("element 2") != std::string::npos);

  // Exactly representable floating values do convert.
  const std::vector<std::byte> ok = serialize_safetensors(std::vector<tensor_to_write>{
      {"x", {4}, std::vector<double>{-3.0, 0.0, 9007199254740992.0, -9223372036854775808.0}}});
  const auto r2 = safetensors_reader::from_bytes(std::span<const std::byte>(ok));
  CHECK(r2.read<std::int64_t>("x") ==
        std::vector<std::int64_t>{-3, 0, 9007199254740992LL, std::numeric_limits<std::int64_t>::min()});
  const std::vector<std::byte> big =
      serialize_safetensors(std::vector<tensor_to_write>{{"x", {1}, std::vector<double>{9223372036854775808.0}}});
  CHECK_THROWS_AS((void)safetensors_reader::from_bytes(std::span<const std::byte>(big)).read<std::int64_t>("x"),
                  std::range_error);
  CHECK(safetensors_reader::from_bytes(std::span<const std::byte>(big)).read<std::uint64_t>("x")[0] ==
        (std::uint64_t{1} << 63));
}

// ---------------------------------------------------------------------------------------------------------
// shapes, metadata, padding

TEST_CASE("scalar and empty tensors, unpadded non-compact header in name order") {
  const auto r = safetensors_reader::open(fixture("shapes.safetensors"));
  CHECK(r.header_size() % 8 != 0);
  CHECK(r.metadata().at("note") ==
        "unpadded, h\xc3\xa9"
        "ader");
  const tensor_info& s = r.at("scalar");
  CHECK(s.shape.empty());
  CHECK(s.numel() == 1);
  CHECK(r.read<float>("scalar") == std::vector<float>{3.5f});
  float one = 0;
  r.read_into<float>("scalar", std::span<float>(&one, 1));
  CHECK(one == 3.5f);

  const tensor_info& e = r.at("empty");
  CHECK(e.shape == std::vector<std::int64_t>{0});
  CHECK(e.numel() == 0);
  CHECK(e.nbytes() == 0);
  CHECK(r.read<float>("empty").empty());
  CHECK(r.raw("empty").empty());
  CHECK(r.at("empty2d").shape == std::vector<std::int64_t>{2, 0});
  CHECK(r.read<std::int64_t>("empty2d").empty());
  r.read_into<double>("empty2d", std::span<double>());

  CHECK(r.read<double>("matrix") == std::vector<double>{0.0, 0.5, 1.0, 1.5, 2.0, 2.5});
  std::vector<std::string> names;
  for (const tensor_info& t : r.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"scalar", "empty", "empty2d", "matrix"});  // by offset, ties by name
}

TEST_CASE("writer: empty tensors and scalars round trip") {
  const std::vector<float> none;
  const std::vector<double> scalar{-0.125};
  const std::vector<std::int64_t> zero;
  const std::vector<tensor_to_write> ts{{"none", {3, 0, 2}, none}, {"s", {}, scalar}, {"z", {0}, zero}};
  const auto bytes = serialize_safetensors(ts);
  const auto r = safetensors_reader::from_bytes(std::span<const std::byte>(bytes));
  CHECK(r.at("none").shape == std::vector<std::int64_t>{3, 0, 2});
  CHECK(r.at("none").numel() == 0);
  CHECK(r.at("s").shape.empty());
  CHECK(r.at("s").type == dtype::F64);
  CHECK(r.read<double>("s") == scalar);
  CHECK(r.at("z").type == dtype::I64);
  CHECK(r.data_size() == 8);
}

TEST_CASE("metadata round trips, including non-ASCII and JSON-special characters") {
  const std::map<std::string, std::string> meta{{"format", "pt"},
                                                {"quote\"back\\slash", "line\nbreak\ttab \x01"},
                                                {"utf8", "\xe2\x82\xac \xf0\x9f\x98\x80"},
                                                {"", ""}};
  const std::vector<float> x{1, 2};
  const auto bytes = serialize_safetensors(std::vector<tensor_to_write>{{"x", {2}, x}}, meta);
  const auto r = safetensors_reader::from_bytes(std::span<const std::byte>(bytes));
  CHECK(r.metadata() == meta);
  CHECK(r.header_size() % 8 == 0);
}

// ---------------------------------------------------------------------------------------------------------
// writer: byte-exact against the reference, round trips

TEST_CASE("writer reproduces the reference implementation's bytes") {
  // safetensors/src/tensor.rs test_serialization, also checked by make_fixtures.py.
  const std::vector<float> data{0, 1, 2, 3, 4, 5};
  const std::vector<tensor_to_write> ts{{"attn.0", {1, 2, 3}, data}};
  CHECK(serialize_safetensors(ts) == slurp(fixture("reference_f32.safetensors")));

  // test_empty: no tensors, with and without metadata.
  CHECK(serialize_safetensors({}) == to_bytes({8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32}));
  CHECK(serialize_safetensors({}, {{"framework", "pt"}}) ==
        to_bytes({40,  0,   0,   0,  0,  0,  0,   0,   123, 34,  95,  95,  109, 101, 116, 97,
                  100, 97,  116, 97, 95, 95, 34,  58,  123, 34,  102, 114, 97,  109, 101, 119,
                  111, 114, 107, 34, 58, 34, 112, 116, 34,  125, 125, 32,  32,  32,  32,  32}));

  // test_serialization_forced_alignement: the header is space-padded to 8 bytes.
  const std::vector<tensor_to_write> ts2{{"attn0", {1, 1, 2, 3}, data}};
  const auto out = serialize_safetensors(ts2);
  CHECK(out.size() == 8 + 72 + 24);
  CHECK(out[0] == std::byte{72});
  for (std::size_t i = 8 + 65; i < 8 + 72; ++i) CHECK(out[i] == std::byte{' '});
}

TEST_CASE("writer matches the reference layout: dtype-descending, then name; metadata first") {
  temp_dir d;
  const std::vector<float> bw{1, 2, 3, 4}, ab{0.5f, -0.5f};
  const std::vector<double> zs{0.25}, mt{1e-300, -0.0, 1e300};
  const std::vector<std::int64_t> ids{-1, std::int64_t{1} << 40};
  const std::vector<std::int32_t> mask{-7};
  const fs::path p = d.path / "w.safetensors";
  save_safetensors(p,
                   {{"b.weight", {2, 2}, bw},
                    {"a.bias", {2}, ab},
                    {"z.scale", {}, zs},
                    {"m.table", {3}, mt},
                    {"ids", {2}, ids},
                    {"mask", {1, 1, 1}, mask}},
                   {{"format", "pt"}, {"creator", "hybrid"}});
  CHECK(slurp(p) == slurp(fixture("writer_expected.safetensors")));
}

TEST_CASE("round trip through a file is bit-exact") {
  temp_dir d;
  std::mt19937 rng(1234);
  std::vector<float> f(1000);
  for (float& v : f) v = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));  // any bits, NaNs included
  f[0] = -0.0f;
  f[1] = std::numeric_limits<float>::denorm_min();
  f[2] = std::bit_cast<float>(0x7f800001u);  // signalling NaN payload
  std::vector<double> g(333);
  for (double& v : g) v = std::bit_cast<double>((std::uint64_t{rng()} << 32) | rng());
  std::vector<std::int32_t> i32{std::numeric_limits<std::int32_t>::min(), 0, 5};
  std::vector<std::int64_t> i64{std::numeric_limits<std::int64_t>::max(), -1};
  const std::vector<std::uint16_t> bf16_bits{0x3f80, 0x0001, 0xff80};
  const raw_tensor_data bf16{dtype::BF16, std::as_bytes(std::span(bf16_bits))};

  const std::vector<tensor_to_write> ts{{"enc.layer.0.w", {10, 100}, f},
                                        {"enc.layer.0.b", {333}, g},
                                        {"ids", {3}, i32},
                                        {"pos", {1, 2}, i64},
                                        {"half", {3}, bf16}};
  const fs::path p = d.path / "model.safetensors";
  save_safetensors(p, ts, {{"format", "pt"}});
  const auto r = safetensors_reader::open(p);
  CHECK(r.source() == p.string());
  CHECK(r.tensors().size() == 5);
  CHECK(r.metadata().at("format") == "pt");

  const auto f2 = r.read<float>("enc.layer.0.w");
  REQUIRE(f2.size() == f.size());
  bool all = true;
  for (std::size_t i = 0; i < f.size(); ++i) all = all && same_bits(f[i], f2[i]);
  CHECK(all);
  std::vector<double> g2(g.size());
  r.read_into<double>("enc.layer.0.b", g2);
  all = true;
  for (std::size_t i = 0; i < g.size(); ++i) all = all && same_bits(g[i], g2[i]);
  CHECK(all);
  CHECK(r.read<std::int32_t>("ids") == i32);
  CHECK(r.read<std::int64_t>("pos") == i64);
  CHECK(r.at("enc.layer.0.w").shape == std::vector<std::int64_t>{10, 100});
  CHECK(r.at("half").type == dtype::BF16);
  const auto raw = r.raw("half");
  REQUIRE(raw.size() == 6);
  CHECK(std::memcmp(raw.data(), bf16_bits.data(), 6) == 0);
  CHECK(r.read<float>("half") ==
        std::vector<float>{1.0f, std::ldexp(1.0f, -133), -std::numeric_limits<float>::infinity()});

  // Rewriting replaces the file atomically and leaves nothing else in the directory.
  save_safetensors(p, {{"only", {1}, std::vector<float>{7}}});
  CHECK(safetensors_reader::open(p).tensors().size() == 1);
  CHECK(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()) == 1);
}

TEST_CASE("writer rejects invalid input, naming the tensor") {
  const std::vector<float> two{1, 2};
  auto rejects = [](const std::vector<tensor_to_write>& ts, const std::string& needle) {
    try {
      (void)serialize_safetensors(ts);
      FAIL("expected std::invalid_argument");
    } catch (const std::invalid_argument& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  rejects({{"w", {2}, two}, {"w", {2}, two}}, "'w' appears more than once");
  rejects({{"__metadata__", {2}, two}}, "'__metadata__' is reserved");
  rejects({{"neg", {-1, -2}, two}}, "tensor 'neg': shape [-1, -2] has a negative dimension");
  rejects({{"count", {3}, two}}, "tensor 'count': shape [3] has 3 elements but 2 values");
  rejects({{"huge", {1LL << 62, 1LL << 62}, two}}, "tensor 'huge': shape [4611686018427387904, 4611686018427387904] "
                                                    "has more than 2^64 - 1 elements");
  // As in the reader, a zero dimension makes the count 0 whatever the others multiply to.
  const auto zeros =
      serialize_safetensors(std::vector<tensor_to_write>{{"z", {1LL << 62, 1LL << 62, 0}, std::vector<float>{}}});
  CHECK(safetensors_reader::from_bytes(std::span<const std::byte>(zeros)).at("z").numel() == 0);
  const std::vector<std::byte> five(5);
  rejects({{"raw", {2}, raw_tensor_data{dtype::F16, five}}}, "tensor 'raw'");
  rejects({{"bad\xff utf8", {2}, two}}, "UTF-8");
  temp_dir d;
  CHECK_THROWS_AS(save_safetensors(d.path / "x.safetensors", {{"c", {3}, two}}), std::invalid_argument);
  CHECK_FALSE(fs::exists(d.path / "x.safetensors"));
}

// ---------------------------------------------------------------------------------------------------------
// reader: usage errors

TEST_CASE("reading an unknown name or into the wrong size names the tensor") {
  const auto r = safetensors_reader::open(fixture("reference_f32.safetensors"));
  CHECK(r.read<float>("attn.0") == std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK_THROWS_WITH_AS((void)r.read<float>("attn.1"), doctest::Contains("no tensor named 'attn.1'"), std::out_of_range);
  std::vector<float> five(5);
  CHECK_THROWS_WITH_AS(
      r.read_into<float>("attn.0", five),
      doctest::Contains("tensor 'attn.0' has 6 elements (dtype F32, shape [1, 2, 3]) but the destination holds 5"),
      std::invalid_argument);
  try {
    r.read_into<float>("attn.0", five);
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("reference_f32.safetensors") != std::string::npos);
  }
}

TEST_CASE("missing files are system errors") {
  CHECK_THROWS_AS(safetensors_reader::open(fixture("does_not_exist.safetensors")), std::system_error);
  CHECK_THROWS_AS(safetensors_reader::open(fixture("")), std::system_error);  // a directory
}

// ---------------------------------------------------------------------------------------------------------
// reader: one test per rejection rule

TEST_CASE("reject: file shorter than 8 bytes") {
  temp_dir d;
  const fs::path p = d.path / "tiny.safetensors";
  {
    std::ofstream out(p, std::ios::binary);
    out << "abcde";
  }
  const std::string expected = str("'", p.string(), "': file is 5 bytes, shorter than the 8-byte");
  CHECK_THROWS_WITH_AS(safetensors_reader::open(p), doctest::Contains(expected.c_str()), format_error);
  check_rejects({}, {"file is 0 bytes"});
}

TEST_CASE("reject: header length larger than the file") {
  check_rejects(with_length(100, 50), {"header length 100", "only 42 bytes follow"});
  check_rejects(with_length(std::numeric_limits<std::uint64_t>::max(), 16), {"above the 100000000-byte limit"});
}

TEST_CASE("reject: header length above 100 MB") {
  check_rejects(with_length(100'000'001, 64), {"header length 100000001", "100000000-byte limit"});
}

TEST_CASE("reject: header does not begin with '{' (not an object)") {
  check_rejects(image("[1,2]"), {"must begin with '{'"});
  check_rejects(image("\"str\""), {"must begin with '{'"});
  check_rejects(image(" {}"), {"must begin with '{'"});
  check_rejects(with_length(0, 8), {"must begin with '{'"});
}

TEST_CASE("reject: header is not valid JSON") {
  check_rejects(image("{\"a\":"), {"is not valid JSON"});
  check_rejects(image("{}xyz"), {"is not valid JSON"});
  check_rejects(image("{}\0\0\0\0\0\0"s), {"is not valid JSON", "NUL byte at file offset 10"});  // not JSON whitespace
  check_rejects(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\0{}"s, 1), {"NUL byte"});
  check_rejects(image("{\"\xff\":1}"), {"is not valid JSON"});  // invalid UTF-8
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[NaN],\"data_offsets\":[0,0]}}"), {"is not valid JSON"});
}

TEST_CASE("reject: entries with missing fields or wrong JSON types") {
  check_rejects(image("{\"w\":3}"), {"tensor 'w'", "entry is a JSON number, not an object"});
  check_rejects(image("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8), {"tensor 'w'", "missing field 'dtype'"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8),
                {"tensor 'w'", "missing field 'shape'"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8), {"tensor 'w'", "missing field 'data_offsets'"});
  check_rejects(image("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                {"tensor 'w'", "dtype is a JSON number"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8),
                {"tensor 'w'", "shape is a JSON string"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8),
                {"tensor 'w'", "shape[0] = \"2\" is not a non-negative integer"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8),
                {"tensor 'w'", "data_offsets = [0] is not an array of two"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8),
                {"tensor 'w'", "data_offsets"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8),
                {"tensor 'w'", "data_offsets"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,7]}}", 8),
                {"tensor 'w'", "data_offsets"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":0}}}", 8),
                {"tensor 'w'", "data_offsets"});
  check_rejects(image("{\"__metadata__\":[1]}"), {"__metadata__ is a JSON array"});
  check_rejects(image("{\"__metadata__\":{\"epoch\":3}}"), {"__metadata__: value of key 'epoch' is a JSON number"});
}

TEST_CASE("reject: negative, fractional or overflowing shapes") {
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,0]}}"),
                {"tensor 'w'", "shape[1] = -2 is not a non-negative integer"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,0]}}"),
                {"tensor 'w'", "shape[0] = 2.5"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,0]}}"),
                {"tensor 'w'", "does not fit in int64"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}"),
                {"tensor 'w'", "is not a non-negative integer"});
  check_rejects(image("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}"),
                {"tensor 'w'", "more than 2^64 - 1 elements"});
  check_rejects(image("{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}"),
                {"tensor 'w'", "more than 2^64 - 1 bytes"});
  // A zero dimension makes the product 0 even if the others overflow.
  const auto r = safetensors_reader::from_bytes(
      image("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}"));
  CHECK(r.at("w").numel() == 0);
}

TEST_CASE("reject: unknown dtype") {
  check_rejects(image("{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1),
                {"tensor 'w'", "unknown dtype 'F4'"});
  check_rejects(image("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                {"tensor 'w'", "unknown dtype 'f32'"});
}

TEST_CASE("reject: data_offsets with begin > end") {
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8),
                {"tensor 'w'", "data_offsets [8, 4] has begin > end"});
}

TEST_CASE("reject: end beyond the buffer") {
  const std::string h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  const std::string at = std::to_string(8 + h.size());
  check_rejects(image(h, 8),
                {"tensor 'w'", "data_offsets [0, 16] ends beyond the data buffer, which is 8 bytes", "[" + at + ", "});
  check_rejects(
      image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551615,18446744073709551615]}}", 1),
      {"tensor 'w'", "ends beyond the data buffer"});
}

TEST_CASE("reject: byte size different from numel x dtype size") {
  check_rejects(
      image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12),
      {"tensor 'w'", "data_offsets [0, 12] spans 12 bytes but dtype F32 with shape [2] needs 2 x 4 = 8 bytes"});
  check_rejects(image("{\"w\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,4]}}", 4),
                {"tensor 'w'", "needs 1 x 2 = 2 bytes"});
}

TEST_CASE("reject: overlapping tensors") {
  check_rejects(image(str("{", f32x2_at("a", 0), ",", f32x2_at("b", 4), "}"), 12),
                {"tensor 'b'", "data_offsets [4, 12] overlap tensor 'a' (data_offsets [0, 8])"});
  // The same range twice.
  check_rejects(image(str("{", f32x2_at("a", 0), ",", f32x2_at("b", 0), "}"), 8), {"tensor 'b'", "overlap tensor 'a'"});
}

TEST_CASE("reject: gaps between tensors and uncovered buffer bytes") {
  const std::string h = str("{", f32x2_at("a", 0), ",", f32x2_at("b", 12), "}");
  check_rejects(image(h, 20), {"tensor 'b'", "buffer bytes [8, 12)", "belong to no tensor", "previous tensor: 'a'"});
  check_rejects(image(str("{", f32x2_at("b", 4), "}"), 12), {"tensor 'b'", "buffer bytes [0, 4)"});
  const std::string h2 = str("{", f32x2_at("a", 0), "}");
  check_rejects(image(h2, 12), {"buffer bytes [8, 12)", str("file bytes [", std::to_string(8 + h2.size() + 8)),
                                "the last tensor, 'a'"});
  check_rejects(image("{}", 3), {"buffer bytes [0, 3)", "no tensors"});
}

TEST_CASE("reject: duplicate names and fields (nlohmann would keep the last silently)") {
  check_rejects(image(str("{", f32x2_at("w", 0), ",", f32x2_at("w", 8), "}"), 16),
                {"tensor 'w': name appears more than once in the header"});
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                {"tensor 'w'", "field 'dtype' appears more than once"});
  check_rejects(image("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}"),
                {"__metadata__: key 'a' appears more than once"});
  check_rejects(image("{\"__metadata__\":{},\"__metadata__\":{}}"), {"'__metadata__' appears more than once"});
}

TEST_CASE("reject: nesting deeper than a header has") {
  check_rejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[[2]],\"data_offsets\":[0,8]}}", 8), {"nests", "'shape'"});
  const std::string deep = str("{\"x\":", std::string(100000, '['), std::string(100000, ']'), "}");
  check_rejects(image(deep), {"nests"});
}

TEST_CASE("reject: BOOL bytes other than 0 and 1, when read") {
  const auto r = safetensors_reader::from_bytes(
      image("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3, 2), "bad.safetensors");
  CHECK_THROWS_WITH_AS((void)r.read<int>("m"), doctest::Contains("tensor 'm': BOOL element 0"), format_error);
}

// ---------------------------------------------------------------------------------------------------------
// reader: what the reference accepts

TEST_CASE("accept: reference edge cases") {
  // test_whitespace_padded_header: any JSON whitespace may pad the header.
  auto r = safetensors_reader::from_bytes(image("{}\r \t\n"));
  CHECK(r.tensors().empty());
  CHECK(r.metadata().empty());
  // test_zero_sized_tensor (header length 60, unpadded, a space inside data_offsets).
  r = safetensors_reader::from_bytes(image("{\"test\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[0, 0]}}"));
  CHECK(r.header_size() == 60);
  CHECK(r.at("test").numel() == 0);
  // Unknown fields in an entry are ignored (the reference's serde does the same).
  r = safetensors_reader::from_bytes(
      image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":{}}}", 1, 9));
  CHECK(r.read<int>("w") == std::vector<int>{9});
  // Empty tensors may share offsets with their neighbours.
  r = safetensors_reader::from_bytes(
      image(str("{\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},", f32x2_at("a", 0),
                ",\"e0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},", f32x2_at("b", 8), "}"),
            16));
  std::vector<std::string> names;
  for (const tensor_info& t : r.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"e0", "a", "e1", "b"});
}

TEST_CASE("robustness: every truncation and many corruptions throw format_error, nothing else") {
  const std::vector<std::byte> good = slurp(fixture("dtypes.safetensors"));
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK_THROWS_AS((void)safetensors_reader::from_bytes(std::span<const std::byte>(cut)), format_error);
  }
  std::mt19937 rng(99);
  const std::uint64_t header_end = 8 + safetensors_reader::from_bytes(std::span<const std::byte>(good)).header_size();
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<std::byte> bad = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) bad[rng() % header_end] = static_cast<std::byte>(rng() & 0xff);
    try {
      const auto r = safetensors_reader::from_bytes(std::move(bad));
      for (const tensor_info& t : r.tensors()) (void)r.read<double>(t.name);
      ++parsed;
    } catch (const format_error&) {
      ++rejected;
    }
  }
  CHECK(parsed + rejected == 3000);
  CHECK(rejected > 0);
}

}  // namespace HYBRID_TEST_UNIT
