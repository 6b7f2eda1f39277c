// The error of a binary file format reader: names the source (file or buffer) and the byte offset of the
// problem. Each reader derives its own type (io::idx_error, io::wav_error) so callers can catch one format.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace hybrid::io {

// what() reads "<source>: byte offset <n>: <problem>".
class file_offset_error : public std::runtime_error {
 public:
  file_offset_error(std::string source, std::uint64_t offset, const std::string& problem)
      : std::runtime_error(source + ": byte offset " + std::to_string(offset) + ": " + problem),
        source_(std::move(source)),
        offset_(offset) {}
  const std::string& source() const noexcept { return source_; }
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::string source_;
  std::uint64_t offset_;
};

}  // namespace hybrid::io
