// Shared helpers of the libFuzzer targets in fuzz/: the input as bytes, and a check that fails loudly.
// Every target catches std::exception (the library's documented way to reject bad input); crashes,
// sanitizer reports and failed invariants (FUZZ_CHECK) are findings.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace fuzz {

inline std::span<const std::byte> bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}
inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, what);
  std::abort();
}

}  // namespace fuzz

// An invariant the library promises for every input it accepts; a violation aborts (a finding).
#define FUZZ_CHECK(cond) ((cond) ? void(0) : ::fuzz::check_failed(#cond, __FILE__, __LINE__))
