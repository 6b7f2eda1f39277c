#include <hybrid/io/csv_log.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::io::csv_log;

namespace {

// A unique file path under the system temp dir, removed at scope exit.
struct temp_file {
  fs::path path;
  temp_file() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hybrid_csv_test_" + std::to_string(rd()) + std::to_string(rd()) + ".csv");
  }
  ~temp_file() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// RFC 4180 reader: quoted fields may hold commas, doubled quotes and line breaks.
std::vector<std::vector<std::string>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '"') {
      for (++i;; ++i) {
        REQUIRE(i < s.size());
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            field.push_back('"');
            ++i;
          } else {
            ++i;
            break;
          }
        } else {
          field.push_back(s[i]);
        }
      }
      REQUIRE((i == s.size() || s[i] == ',' || s[i] == '\n'));
    }
    if (i == s.size()) break;
    if (s[i] == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (s[i] == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
    } else {
      field.push_back(s[i]);
    }
    ++i;
  }
  REQUIRE(field.empty());
  REQUIRE(row.empty());  // every row ends in a newline
  return rows;
}

using rows_t = std::vector<std::vector<std::string>>;

}  // namespace

TEST_CASE("csv_log: header and typed rows round-trip") {
  temp_file tmp;
  {
    csv_log log(tmp.path, {"step", "loss", "acc", "note", "ok"});
    CHECK(log.columns().size() == 5);
    CHECK(log.path() == tmp.path);
    log.row(0, 2.5, 0.125f, "plain", true);
    log.row(std::int64_t{1} << 40, 1e-300, -0.0, std::string("has, comma"), false);
    log.row(2u, std::optional<double>{}, std::nullopt, "say \"hi\"", std::optional<bool>{true});
    log.row(3, 0.1, 1.0 / 3.0, "line\nbreak\r\nand \"both\", ok", 'c');
    log.row(-4, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(), "", "");
  }
  const auto rows = parse_csv(read_file(tmp.path));
  REQUIRE(rows.size() == 6);
  CHECK(rows[0] == std::vector<std::string>{"step", "loss", "acc", "note", "ok"});
  CHECK(rows[1] == std::vector<std::string>{"0", "2.5", "0.125", "plain", "true"});
  CHECK(rows[2] == std::vector<std::string>{"1099511627776", "1e-300", "-0", "has, comma", "false"});
  CHECK(rows[3] == std::vector<std::string>{"2", "", "", "say \"hi\"", "true"});
  CHECK(rows[4][3] == "line\nbreak\r\nand \"both\", ok");
  CHECK(rows[4][4] == "c");
  // Shortest round-trip formatting: doubles read back exactly.
  CHECK(std::stod(rows[4][1]) == 0.1);
  CHECK(std::stod(rows[4][2]) == 1.0 / 3.0);
  CHECK(rows[5] == std::vector<std::string>{"-4", "inf", "nan", "", ""});
}

TEST_CASE("csv_log: quoting of header and fields") {
  temp_file tmp;
  {
    csv_log log(tmp.path, {"a,b", "q\"uote", "plain"});
    log.row("x", "y", "z");
  }
  CHECK(read_file(tmp.path) == "\"a,b\",\"q\"\"uote\",plain\nx,y,z\n");
  std::string s;
  hybrid::io::csv_append_field(s, "\"");
  CHECK(s == "\"\"\"\"");
}

TEST_CASE("csv_log: every row is on disk as soon as row() returns") {
  temp_file tmp;
  csv_log log(tmp.path, {"step", "loss"});
  CHECK(read_file(tmp.path) == "step,loss\n");
  for (int step = 0; step < 50; ++step) {
    log.row(step, 1.0 / (step + 1));
    const auto rows = parse_csv(read_file(tmp.path));  // no flush() call, no destruction
    REQUIRE(rows.size() == static_cast<std::size_t>(step) + 2);
    CHECK(rows.back()[0] == std::to_string(step));
    CHECK(std::stod(rows.back()[1]) == 1.0 / (step + 1));
  }
}

TEST_CASE("csv_log: log(step, metrics) fills columns by name") {
  temp_file tmp;
  {
    csv_log log(tmp.path, {"epoch_loss", "step", "acc", "lr"});
    log.log(10, {{"acc", 0.5}, {"epoch_loss", 1.5}});
    log.log(11, std::map<std::string, double>{{"lr", 3e-4}});
    log.log(12, std::unordered_map<std::string, float>{{"acc", 0.75f}, {"lr", 1e-4f}, {"epoch_loss", 0.25f}});
    log.log(13, std::vector<std::pair<std::string, int>>{{"acc", 1}});
    CHECK_THROWS_AS(log.log(14, {{"missing", 1.0}}), std::invalid_argument);
    CHECK_THROWS_AS(log.log(14, {{"acc", 1.0}, {"acc", 2.0}}), std::invalid_argument);
    CHECK_THROWS_AS(log.log(14, {{"step", 1.0}}), std::invalid_argument);
  }
  const auto rows = parse_csv(read_file(tmp.path));
  REQUIRE(rows.size() == 5);  // the rejected calls wrote nothing
  CHECK(rows[1] == std::vector<std::string>{"1.5", "10", "0.5", ""});
  CHECK(rows[2] == std::vector<std::string>{"", "11", "", "3e-04"});
  CHECK(rows[3] == std::vector<std::string>{"0.25", "12", "0.75", "1e-04"});
  CHECK(rows[4] == std::vector<std::string>{"", "13", "1", ""});

  temp_file no_step;
  csv_log bad(no_step.path, {"loss"});
  CHECK_THROWS_AS(bad.log(1, {{"loss", 1.0}}), std::invalid_argument);
}

TEST_CASE("csv_log: append mode resumes a run and checks the header") {
  temp_file tmp;
  {
    csv_log log(tmp.path, {"step", "loss"}, csv_log::open_mode::append);  // missing file: header written
    log.row(1, 0.5);
  }
  {
    csv_log log(tmp.path, {"step", "loss"}, csv_log::open_mode::append);
    log.row(2, 0.25);
  }
  CHECK(read_file(tmp.path) == "step,loss\n1,0.5\n2,0.25\n");

  // A run killed mid-row: the next row starts on a fresh line.
  std::ofstream(tmp.path, std::ios::binary | std::ios::app) << "3,0.1";
  {
    csv_log log(tmp.path, {"step", "loss"}, csv_log::open_mode::append);
    log.row(4, 0.125);
  }
  CHECK(read_file(tmp.path) == "step,loss\n1,0.5\n2,0.25\n3,0.1\n4,0.125\n");

  CHECK_THROWS_AS(csv_log(tmp.path, {"step", "acc"}, csv_log::open_mode::append), std::runtime_error);
  CHECK(read_file(tmp.path) == "step,loss\n1,0.5\n2,0.25\n3,0.1\n4,0.125\n");  // untouched

  {
    csv_log log(tmp.path, {"step", "acc"});  // truncate (default) starts over
    log.row(1, 0.9);
  }
  CHECK(read_file(tmp.path) == "step,acc\n1,0.9\n");
}

TEST_CASE("csv_log: misuse is rejected") {
  temp_file tmp;
  CHECK_THROWS_AS(csv_log(tmp.path, {}), std::invalid_argument);
  CHECK_THROWS_AS(csv_log(tmp.path, {"a", "a"}), std::invalid_argument);
  CHECK_THROWS_AS(csv_log(tmp.path, {"a\nb"}), std::invalid_argument);
  CHECK_THROWS_AS(csv_log(tmp.path / "no" / "such" / "dir.csv", {"a"}), std::system_error);

  csv_log log(tmp.path, {"a", "b"});
  CHECK_THROWS_AS(log.row(1), std::invalid_argument);
  CHECK_THROWS_AS(log.row(1, 2, 3), std::invalid_argument);
  csv_log moved(std::move(log));
  moved.row(1, 2);
  CHECK_THROWS_AS(log.row(1, 2), std::logic_error);  // NOLINT(bugprone-use-after-move)
  CHECK(read_file(tmp.path) == "a,b\n1,2\n");
}

}  // namespace HYBRID_TEST_UNIT
