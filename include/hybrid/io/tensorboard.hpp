// Native TensorBoard event-file writer: scalar summaries as tfevents records, no protobuf or TensorFlow needed.
// Point `tensorboard --logdir <dir>` at the log dir; records are framed and checksummed like TFRecord files.
#pragma once

#include <hybrid/io/crc32c.hpp>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#if defined(_WIN32)
#include <cstdlib>
#else
#include <unistd.h>
#endif

namespace hybrid::io {

namespace detail::pb {

// The handful of protobuf wire-format encoders the Event / Summary messages need.
enum class wire : std::uint32_t { varint = 0, fixed64 = 1, bytes = 2, fixed32 = 5 };

inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80u) {
    out.push_back(static_cast<char>((v & 0x7Fu) | 0x80u));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void put_key(std::string& out, std::uint32_t field, wire w) {
  put_varint(out, (std::uint64_t{field} << 3) | static_cast<std::uint32_t>(w));
}
inline void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline void put_double(std::string& out, std::uint32_t field, double v) {
  put_key(out, field, wire::fixed64);
  put_le(out, std::bit_cast<std::uint64_t>(v), 8);
}
inline void put_float(std::string& out, std::uint32_t field, float v) {
  put_key(out, field, wire::fixed32);
  put_le(out, std::bit_cast<std::uint32_t>(v), 4);
}
// int64 fields are plain varints of the two's-complement value (negative numbers take 10 bytes).
inline void put_int64(std::string& out, std::uint32_t field, std::int64_t v) {
  put_key(out, field, wire::varint);
  put_varint(out, static_cast<std::uint64_t>(v));
}
inline void put_bytes(std::string& out, std::uint32_t field, std::string_view v) {
  put_key(out, field, wire::bytes);
  put_varint(out, v.size());
  out.append(v);
}

}  // namespace detail::pb

namespace detail {

struct file_closer {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

inline std::string host_name() {
#if defined(_WIN32)
  const char* h = std::getenv("COMPUTERNAME");
  std::string name = h != nullptr ? h : "";
#else
  char buf[256] = {};
  std::string name = ::gethostname(buf, sizeof buf - 1) == 0 ? buf : "";
#endif
  for (char& c : name)
    if (c == '/' || c == '\\') c = '_';
  return name.empty() ? std::string("localhost") : name;
}

}  // namespace detail

// Writes one TensorBoard event file, `events.out.tfevents.<unix-seconds>.<hostname>[suffix]`, in a log dir
// (created if missing). Each record is: u64 little-endian length, u32 masked CRC-32C of those 8 bytes,
// the serialized tensorflow.Event, u32 masked CRC-32C of it. The first event carries file_version
// "brain.Event:2"; each add_scalar writes Event{wall_time=1, step=2, summary=5: Summary{value=1:
// Value{tag=1, simple_value=2}}}, which TensorBoard's scalar dashboard reads directly.
// Writes go through a buffered FILE*; flush() (and destruction) makes them visible. Not thread-safe.
class summary_writer {
 public:
  static constexpr std::string_view file_version = "brain.Event:2";

  explicit summary_writer(const std::filesystem::path& log_dir, std::string_view filename_suffix = {}) {
    std::error_code ec;
    std::filesystem::create_directories(log_dir, ec);
    if (ec) fail("cannot create log dir " + log_dir.string(), ec);
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    const std::string base = "events.out.tfevents." + std::to_string(secs) + "." + detail::host_name() +
                             std::string(filename_suffix);
    // Exclusive creation: a second writer started in the same second gets "<name>.1", "<name>.2", ...
    for (int n = 0; !file_; ++n) {
      path_ = log_dir / (n == 0 ? base : base + "." + std::to_string(n));
      file_.reset(std::fopen(path_.string().c_str(), "wbx"));
      if (!file_ && (errno != EEXIST || n >= 1000))
        fail("cannot create event file " + path_.string(), std::error_code(errno, std::generic_category()));
    }
    event_.clear();
    detail::pb::put_double(event_, 1, now());
    detail::pb::put_bytes(event_, 3, file_version);
    write_record(event_);
    flush();  // the file is valid, and visible to TensorBoard, from the start
  }

  summary_writer(summary_writer&&) noexcept = default;
  summary_writer& operator=(summary_writer&&) noexcept = default;
  summary_writer(const summary_writer&) = delete;
  summary_writer& operator=(const summary_writer&) = delete;
  ~summary_writer() = default;  // closing the FILE* flushes it

  // One scalar point: `tag` (slashes group charts, e.g. "train/loss") at `step`, stored as float.
  void add_scalar(std::string_view tag, double value, std::int64_t step) { add_scalar(tag, value, step, now()); }
  void add_scalar(std::string_view tag, double value, std::int64_t step, double wall_time) {
    if (tag.empty()) throw std::invalid_argument("hybrid::io::summary_writer::add_scalar: empty tag");
    value_.clear();
    detail::pb::put_bytes(value_, 1, tag);
    detail::pb::put_float(value_, 2, static_cast<float>(value));
    summary_.clear();
    detail::pb::put_bytes(summary_, 1, value_);
    event_.clear();
    detail::pb::put_double(event_, 1, wall_time);
    detail::pb::put_int64(event_, 2, step);
    detail::pb::put_bytes(event_, 5, summary_);
    write_record(event_);
  }

  // Hands buffered records to the OS, so TensorBoard (or a crash) sees everything written so far.
  void flush() {
    if (std::fflush(checked_file()) != 0)
      fail("cannot flush " + path_.string(), std::error_code(errno, std::generic_category()));
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  // Seconds since the Unix epoch, the unit of Event.wall_time.
  static double now() noexcept {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

 private:
  std::FILE* checked_file() const {
    if (!file_) throw std::logic_error("hybrid::io::summary_writer: used after being moved from");
    return file_.get();
  }

  [[noreturn]] static void fail(const std::string& what, std::error_code ec) {
    throw std::system_error(ec, "hybrid::io::summary_writer: " + what);
  }

  void write_record(std::string_view data) {
    record_.clear();
    detail::pb::put_le(record_, data.size(), 8);
    detail::pb::put_le(record_, crc32c_mask(crc32c(std::string_view(record_).substr(0, 8))), 4);
    record_.append(data);
    detail::pb::put_le(record_, crc32c_mask(crc32c(data)), 4);
    if (std::fwrite(record_.data(), 1, record_.size(), checked_file()) != record_.size())
      fail("cannot write to " + path_.string(), std::error_code(errno, std::generic_category()));
  }

  std::unique_ptr<std::FILE, detail::file_closer> file_;
  std::filesystem::path path_;
  std::string value_, summary_, event_, record_;  // scratch, reused so steady-state logging does not allocate
};

}  // namespace hybrid::io
