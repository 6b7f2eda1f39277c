// Tests for hybrid/io/atomic_file.hpp: replacement is all-or-nothing and leaves no temp files behind; temp files
// of killed writers can be cleaned up.
#include <doctest/doctest.h>

#include <hybrid/io/atomic_file.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::io::atomic_file_writer;
using hybrid::io::write_file_atomically;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    std::string name = "hybrid_atomic_file_test_";
    name += std::to_string(::getpid());
    name += '_';
    name += std::to_string(rd());
    path = fs::temp_directory_path() / name;
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    return out;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

}  // namespace

TEST_CASE("atomic_file: writes a new file and leaves only it") {
  temp_dir d;
  const fs::path target = d.path / "out.bin";
  fs::path seen_temp;
  write_file_atomically(target, [&](atomic_file_writer& w) {
    seen_temp = w.temp_path();
    CHECK(seen_temp.parent_path() == target.parent_path());
    CHECK(fs::exists(seen_temp));
    CHECK_FALSE(fs::exists(target));  // nothing visible before the rename
    w.write(std::string_view("hello "));
    w.write("world", 5);
    CHECK(w.bytes_written() == 11);
  });
  CHECK(slurp(target) == "hello world");
  CHECK_FALSE(fs::exists(seen_temp));
  CHECK(d.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("atomic_file: replaces an existing file") {
  temp_dir d;
  const fs::path target = d.path / "ckpt";
  spit(target, "old contents that are longer than the new ones");
  const std::string s = "new";
  write_file_atomically(target, std::as_bytes(std::span(s.data(), s.size())));
  CHECK(slurp(target) == "new");
  CHECK(d.entries() == std::vector<std::string>{"ckpt"});
}

TEST_CASE("atomic_file: a throwing callback leaves the old file untouched and no temp file") {
  temp_dir d;
  const fs::path target = d.path / "model.safetensors";
  spit(target, "precious");
  fs::path seen_temp;
  CHECK_THROWS_WITH_AS(write_file_atomically(target,
                                             [&](atomic_file_writer& w) {
                                               seen_temp = w.temp_path();
                                               std::vector<char> big(200000, 'x');  // beyond the buffer: hits the disk
                                               w.write(big.data(), big.size());
                                               throw std::runtime_error("tensor went away");
                                             }),
                       "tensor went away", std::runtime_error);
  CHECK(slurp(target) == "precious");
  CHECK_FALSE(seen_temp.empty());
  CHECK_FALSE(fs::exists(seen_temp));
  CHECK(d.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("atomic_file: a throwing callback with no previous file creates nothing") {
  temp_dir d;
  const fs::path target = d.path / "new.bin";
  CHECK_THROWS_AS(write_file_atomically(target, [](atomic_file_writer&) { throw 42; }), int);
  CHECK_FALSE(fs::exists(target));
  CHECK(d.entries().empty());
}

TEST_CASE("atomic_file: mixed small and large writes arrive in order") {
  temp_dir d;
  const fs::path target = d.path / "big.bin";
  std::string expected;
  std::mt19937 rng(7);
  write_file_atomically(target, [&](atomic_file_writer& w) {
    for (int i = 0; i < 60; ++i) {
      const std::size_t n = (i % 7 == 0) ? 100000 + rng() % 50000 : rng() % 3000;
      std::string chunk(n, '\0');
      for (char& c : chunk) c = static_cast<char>('a' + rng() % 26);
      w.write(chunk.data(), chunk.size());
      expected += chunk;
    }
    CHECK(w.bytes_written() == expected.size());
  });
  CHECK(slurp(target) == expected);
}

TEST_CASE("atomic_file: a missing directory is a system_error naming the target") {
  temp_dir d;
  const fs::path target = d.path / "no" / "such" / "dir" / "x.bin";
  try {
    write_file_atomically(target, [](atomic_file_writer& w) { w.write("x", 1); });
    FAIL("expected std::system_error");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    CHECK(std::string(e.what()).find(target.string()) != std::string::npos);
  }
  CHECK(d.entries().empty());
}

TEST_CASE("atomic_file: a target without a file name is rejected") {
  CHECK_THROWS_AS(write_file_atomically(fs::path("some/dir/"), [](atomic_file_writer&) {}), std::invalid_argument);
}

TEST_CASE("atomic_file: relative target in the current directory") {
  temp_dir d;
  const fs::path old = fs::current_path();
  fs::current_path(d.path);
  write_file_atomically("rel.txt", [](atomic_file_writer& w) { w.write(std::string_view("ok")); });
  fs::current_path(old);
  CHECK(slurp(d.path / "rel.txt") == "ok");
  CHECK(d.entries() == std::vector<std::string>{"rel.txt"});
}

TEST_CASE("atomic_file: a failing rename removes the temp file") {
  temp_dir d;
  const fs::path target = d.path / "is_a_dir";
  fs::create_directories(target / "child");  // rename(file, non-empty directory) fails
  CHECK_THROWS_AS(write_file_atomically(target, [](atomic_file_writer& w) { w.write("data", 4); }), std::system_error);
  CHECK(fs::is_directory(target / "child"));
  CHECK(d.entries() == std::vector<std::string>{"is_a_dir"});
}

TEST_CASE("atomic_file: remove_stale_temp_files removes only dead writers' temp files") {
  temp_dir d;
  const fs::path target = d.path / "state.safetensors";
  spit(target, "current");
  // A pid that no longer exists: a child that exited and was reaped.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  const std::string dead = ".state.safetensors.tmp." + std::to_string(child) + ".0.12345";
  const std::string mine = ".state.safetensors.tmp." + std::to_string(::getpid()) + ".3.777";
  const std::string alive = ".state.safetensors.tmp.1.0.9";  // init never dies
  for (const std::string& name : {dead, mine, alive, std::string(".state.safetensors.tmp.x.1.2"),
                                  std::string(".other.bin.tmp.") + std::to_string(child) + ".0.1", std::string("notes")})
    spit(d.path / name, "partial");
  CHECK(hybrid::io::remove_stale_temp_files(target) == 1);
  CHECK_FALSE(fs::exists(d.path / dead));
  for (const std::string& name : {mine, alive, std::string(".state.safetensors.tmp.x.1.2"),
                                  std::string(".other.bin.tmp.") + std::to_string(child) + ".0.1", std::string("notes"),
                                  std::string("state.safetensors")})
    CHECK(fs::exists(d.path / name));
  CHECK(hybrid::io::remove_stale_temp_files(target) == 0);
  CHECK(hybrid::io::remove_stale_temp_files(d.path / "missing_dir" / "x") == 0);  // no directory: nothing to do
}

}  // namespace HYBRID_TEST_UNIT
