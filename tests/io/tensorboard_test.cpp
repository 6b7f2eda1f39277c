#include <hybrid/io/tensorboard.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::io::crc32c;
using hybrid::io::crc32c_mask;
using hybrid::io::summary_writer;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hybrid_tb_test_" + std::to_string(rd()) + std::to_string(rd()));
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::uint64_t load_le(std::string_view s, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
  return v;
}

// Splits a TFRecord stream into its payloads, checking both masked CRCs of every record.
std::vector<std::string> read_records(std::string_view file) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < file.size()) {
    REQUIRE(file.size() - at >= 12);
    const std::uint64_t len = load_le(file, at, 8);
    CHECK(load_le(file, at + 8, 4) == crc32c_mask(crc32c(file.substr(at, 8))));
    REQUIRE(file.size() - at - 12 >= len + 4);
    const std::string_view data = file.substr(at + 12, static_cast<std::size_t>(len));
    CHECK(load_le(file, at + 12 + len, 4) == crc32c_mask(crc32c(data)));
    out.emplace_back(data);
    at += 12 + static_cast<std::size_t>(len) + 4;
  }
  return out;
}

// Tiny protobuf reader: walks the fields of one message, failing the test on malformed input.
struct pb_reader {
  std::string_view s;
  std::size_t at = 0;

  bool done() const { return at >= s.size(); }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      REQUIRE(at < s.size());
      const auto b = static_cast<unsigned char>(s[at++]);
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80u) == 0) return v;
    }
    FAIL("varint longer than 10 bytes");
    return 0;
  }
  std::uint64_t fixed(int bytes) {
    REQUIRE(s.size() - at >= static_cast<std::size_t>(bytes));
    const std::uint64_t v = load_le(s, at, bytes);
    at += static_cast<std::size_t>(bytes);
    return v;
  }
  std::string_view bytes() {
    const std::uint64_t n = varint();
    REQUIRE(s.size() - at >= n);
    const std::string_view v = s.substr(at, static_cast<std::size_t>(n));
    at += static_cast<std::size_t>(n);
    return v;
  }
  // Reads a key; returns {field number, wire type}.
  std::pair<std::uint32_t, std::uint32_t> key() {
    const std::uint64_t k = varint();
    return {static_cast<std::uint32_t>(k >> 3), static_cast<std::uint32_t>(k & 7u)};
  }
};

struct scalar_value {
  std::string tag;
  float value = 0;
};
struct event {
  double wall_time = 0;
  std::int64_t step = 0;
  std::optional<std::string> file_version;
  std::vector<scalar_value> values;
  bool has_summary = false;
};

scalar_value parse_value(std::string_view msg) {
  scalar_value v;
  pb_reader r{msg};
  while (!r.done()) {
    const auto [field, wt] = r.key();
    if (field == 1) {
      REQUIRE(wt == 2);
      v.tag = std::string(r.bytes());
    } else if (field == 2) {
      REQUIRE(wt == 5);
      const auto bits = static_cast<std::uint32_t>(r.fixed(4));
      std::memcpy(&v.value, &bits, 4);
    } else {
      FAIL("unexpected Summary.Value field " << field);
    }
  }
  return v;
}

event parse_event(std::string_view msg) {
  event e;
  pb_reader r{msg};
  while (!r.done()) {
    const auto [field, wt] = r.key();
    switch (field) {
      case 1: {
        REQUIRE(wt == 1);
        const std::uint64_t bits = r.fixed(8);
        std::memcpy(&e.wall_time, &bits, 8);
        break;
      }
      case 2:
        REQUIRE(wt == 0);
        e.step = static_cast<std::int64_t>(r.varint());
        break;
      case 3:
        REQUIRE(wt == 2);
        e.file_version = std::string(r.bytes());
        break;
      case 5: {
        REQUIRE(wt == 2);
        e.has_summary = true;
        pb_reader s{r.bytes()};
        while (!s.done()) {
          const auto [sf, swt] = s.key();
          REQUIRE(sf == 1);
          REQUIRE(swt == 2);
          e.values.push_back(parse_value(s.bytes()));
        }
        break;
      }
      default:
        FAIL("unexpected Event field " << field);
    }
  }
  return e;
}

std::vector<event> read_events(const fs::path& p) {
  std::vector<event> out;
  for (const auto& rec : read_records(read_file(p))) out.push_back(parse_event(rec));
  return out;
}

}  // namespace

TEST_CASE("summary_writer: file name, file_version event and scalars round-trip") {
  temp_dir tmp;
  const fs::path log_dir = tmp.path / "runs" / "exp1";  // nested and missing: must be created
  const double t0 = summary_writer::now();

  struct point {
    std::string tag;
    double value;
    std::int64_t step;
  };
  const std::vector<point> points = {
      {"train/loss", 2.5, 0},          {"train/loss", 1.25, 1},  {"train/accuracy", 0.875, 1},
      {"eval/loss", -3.0e-7, 1000000}, {"lr", 3e-4, 42},         {"huge_step", 1.0, std::int64_t{1} << 40},
      {"negative_step", 7.0, -5},      {"unicode/λ", 0.1, 3},
  };
  fs::path file;
  {
    summary_writer w(log_dir);
    file = w.path();
    CHECK(fs::is_directory(log_dir));
    CHECK(file.parent_path() == log_dir);
    for (const auto& p : points) w.add_scalar(p.tag, p.value, p.step);
  }  // destructor flushes

  const std::string name = file.filename().string();
  CHECK(name.rfind("events.out.tfevents.", 0) == 0);
  {
    // events.out.tfevents.<unix-seconds>.<hostname>
    const std::string rest = name.substr(std::strlen("events.out.tfevents."));
    const auto dot = rest.find('.');
    REQUIRE(dot != std::string::npos);
    const long long secs = std::stoll(rest.substr(0, dot));
    CHECK(secs >= static_cast<long long>(t0) - 1);
    CHECK(secs <= static_cast<long long>(summary_writer::now()) + 1);
    CHECK(rest.substr(dot + 1) == hybrid::io::detail::host_name());
  }

  const auto events = read_events(file);
  REQUIRE(events.size() == points.size() + 1);
  REQUIRE(events[0].file_version.has_value());
  CHECK(*events[0].file_version == "brain.Event:2");
  CHECK_FALSE(events[0].has_summary);
  CHECK(events[0].wall_time >= t0 - 1);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const event& e = events[i + 1];
    INFO("event " << i + 1 << " tag " << points[i].tag);
    CHECK_FALSE(e.file_version.has_value());
    CHECK(e.step == points[i].step);
    CHECK(e.wall_time >= events[0].wall_time);
    CHECK(e.wall_time <= summary_writer::now() + 1);
    REQUIRE(e.values.size() == 1);
    CHECK(e.values[0].tag == points[i].tag);
    CHECK(e.values[0].value == static_cast<float>(points[i].value));
  }
}

TEST_CASE("summary_writer: explicit wall_time is stored bit-exactly") {
  temp_dir tmp;
  fs::path file;
  {
    summary_writer w(tmp.path);
    file = w.path();
    w.add_scalar("a", 1.0, 7, 1700000000.123456);
  }
  const auto events = read_events(file);
  REQUIRE(events.size() == 2);
  CHECK(events[1].wall_time == 1700000000.123456);
  CHECK(events[1].step == 7);
}

TEST_CASE("summary_writer: flush makes records visible while the writer is alive") {
  temp_dir tmp;
  summary_writer w(tmp.path);
  CHECK(read_events(w.path()).size() == 1);  // the file_version record is flushed at once
  for (int step = 0; step < 1000; ++step) w.add_scalar("loss", 1.0 / (step + 1), step);
  w.flush();
  const auto events = read_events(w.path());
  REQUIRE(events.size() == 1001);
  CHECK(events.back().step == 999);
  CHECK(events.back().values.at(0).value == static_cast<float>(1.0 / 1000));
}

TEST_CASE("summary_writer: a long tag needs a multi-byte length varint") {
  temp_dir tmp;
  const std::string tag(300, 'x');
  fs::path file;
  {
    summary_writer w(tmp.path);
    file = w.path();
    w.add_scalar(tag, 0.5, 1);
  }
  const auto events = read_events(file);
  REQUIRE(events.size() == 2);
  REQUIRE(events[1].values.size() == 1);
  CHECK(events[1].values[0].tag == tag);
}

TEST_CASE("summary_writer: writers sharing a log dir get distinct files") {
  temp_dir tmp;
  summary_writer a(tmp.path);
  summary_writer b(tmp.path);
  summary_writer c(tmp.path, ".eval");
  CHECK(a.path() != b.path());
  CHECK(c.path().filename().string().find(".eval") != std::string::npos);
  a.add_scalar("x", 1, 1);
  b.add_scalar("x", 2, 1);
  a.flush();
  b.flush();
  CHECK(read_events(a.path()).at(1).values.at(0).value == 1.0f);
  CHECK(read_events(b.path()).at(1).values.at(0).value == 2.0f);
}

TEST_CASE("summary_writer: move and misuse") {
  temp_dir tmp;
  summary_writer a(tmp.path);
  const fs::path file = a.path();
  summary_writer b(std::move(a));
  b.add_scalar("moved", 3.0, 3);
  CHECK_THROWS_AS(b.add_scalar("", 1.0, 0), std::invalid_argument);
  CHECK_THROWS_AS(a.flush(), std::logic_error);  // NOLINT(bugprone-use-after-move): moved-from state is defined
  b.flush();
  const auto events = read_events(file);
  REQUIRE(events.size() == 2);
  CHECK(events[1].values.at(0).tag == "moved");
}

TEST_CASE("summary_writer: an unusable log dir throws") {
  temp_dir tmp;
  fs::create_directories(tmp.path);
  const fs::path blocker = tmp.path / "not_a_dir";
  std::ofstream(blocker) << "x";
  CHECK_THROWS_AS(summary_writer(blocker / "sub"), std::system_error);
}

}  // namespace HYBRID_TEST_UNIT
