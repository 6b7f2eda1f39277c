// Atomic file replacement for checkpoint writers: a reader sees the old file or the complete new one.
// Writes a temp file in the target's directory, fsyncs it, renames it over the target, fsyncs the directory.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "hybrid/core/compiled.hpp"

namespace hybrid::io {

class atomic_file_writer;

namespace detail {

struct atomic_access;

// Message building by appending: `"literal" + std::string(...)` trips GCC 12's false -Wrestrict
// (GCC bug 105329) once inlined, so the io headers concatenate with cat() instead.
inline void cat_one(std::string& s, std::string_view v) { s.append(v); }
inline void cat_one(std::string& s, char c) { s.push_back(c); }
template <class P>
requires std::same_as<P, std::filesystem::path>
void cat_one(std::string& s, const P& p) { s.append(p.string()); }
template <class I>
requires std::integral<I>
void cat_one(std::string& s, I v) { s.append(std::to_string(v)); }
template <class... A>
std::string cat(const A&... parts) {
  std::string s;
  (cat_one(s, parts), ...);
  return s;
}

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

inline std::string quoted(const std::filesystem::path& p) { return cat('\'', p, '\''); }

// Owns a POSIX descriptor; closes it on scope exit.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports close()'s error (it can carry a deferred write error).
  int close() {
    int fd = std::exchange(fd_, -1);
    return fd >= 0 && ::close(fd) != 0 ? errno : 0;
  }

 private:
  int fd_;
};

HYBRID_DECL std::filesystem::path temp_path_for(const std::filesystem::path& target);

}  // namespace detail

// The sink handed to the fill callback of write_file_atomically. Buffered; not copyable.
class atomic_file_writer {
 public:
  atomic_file_writer(const atomic_file_writer&) = delete;
  atomic_file_writer& operator=(const atomic_file_writer&) = delete;

  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::byte*>(data);
    if (n <= buffer_.capacity() - buffer_.size()) {
      buffer_.insert(buffer_.end(), p, p + n);
    } else {
      flush();
      if (n < buffer_.capacity()) {
        buffer_.insert(buffer_.end(), p, p + n);
      } else {
        write_all(p, n);
      }
    }
    written_ += n;
  }
  void write(std::span<const std::byte> bytes) { write(bytes.data(), bytes.size()); }
  void write(std::string_view s) { write(s.data(), s.size()); }

  // Bytes accepted so far (buffered or on disk).
  std::uint64_t bytes_written() const { return written_; }
  // The temporary file being written (it becomes the target only after a successful return).
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  friend struct detail::atomic_access;

  static constexpr std::size_t buffer_size = std::size_t{1} << 16;

  atomic_file_writer(int fd, std::filesystem::path temp) : fd_(fd), temp_(std::move(temp)) {
    buffer_.reserve(buffer_size);
  }

  void flush() {
    write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

  void write_all(const std::byte* p, std::size_t n);

  int fd_;
  std::filesystem::path temp_;
  std::vector<std::byte> buffer_;
  std::uint64_t written_ = 0;
};

namespace detail {
struct atomic_access {
  static atomic_file_writer make(int fd, std::filesystem::path temp) { return {fd, std::move(temp)}; }
  static void flush(atomic_file_writer& w) { w.flush(); }
};
}  // namespace detail

// Replaces `target` with the bytes `fill(atomic_file_writer&)` writes, atomically (POSIX rename):
// the temp file lives in target's directory, is fsynced, renamed over target, then the directory is
// fsynced. If fill or any step before the rename throws, the temp file is removed, target is untouched,
// and the exception propagates (system errors as std::system_error naming the paths). The new file
// gets mode 0666 minus the umask (an existing target's mode is not carried over). POSIX only.
template <class F>
requires std::invocable<F&, atomic_file_writer&>
void write_file_atomically(const std::filesystem::path& target, F&& fill) {
  namespace fs = std::filesystem;
  if (target.filename().empty())
    throw std::invalid_argument(detail::cat("atomic write: target ", detail::quoted(target), " names no file"));
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();

  // Captures errno before building the message (allocation must not clobber it).
  auto fail = [&](const char* step, const fs::path& what, const char* tail = "") {
    const int err = errno;
    detail::throw_errno(
        err, detail::cat("atomic write of ", detail::quoted(target), ": ", step, ' ', detail::quoted(what), tail));
  };

  fs::path temp;
  int raw = -1;
  for (int attempt = 0; raw < 0; ++attempt) {
    temp = detail::temp_path_for(target);
    raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (raw < 0 && errno != EINTR && !(errno == EEXIST && attempt < 16)) fail("creating temp file", temp);
  }
  detail::unique_fd fd(raw);
  // Declared after fd so that it is destroyed first; removes the temp file unless disarmed.
  struct remove_guard {
    const fs::path* path;
    ~remove_guard() {
      if (path) ::unlink(path->c_str());
    }
  } guard{&temp};

  atomic_file_writer writer = detail::atomic_access::make(fd.get(), temp);
  fill(writer);
  detail::atomic_access::flush(writer);
  while (::fsync(fd.get()) != 0) {
    if (errno != EINTR) fail("fsync of temp file", temp);
  }
  if (int err = fd.close()) {
    errno = err;
    fail("closing temp file", temp);
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) fail("renaming temp file", temp, " over it");
  guard.path = nullptr;  // the temp name is gone; target now holds the new contents

  // Make the rename durable. Failure here is reported: the new contents are in place but may not
  // survive a crash.
  detail::unique_fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0) fail("opening directory", dir, " to fsync it");
  while (::fsync(dfd.get()) != 0) {
    if (errno != EINTR) fail("fsync of directory", dir);
  }
}

// Convenience overload: replaces `target` with `contents`.
inline void write_file_atomically(const std::filesystem::path& target, std::span<const std::byte> contents) {
  write_file_atomically(target, [&](atomic_file_writer& w) { w.write(contents); });
}

// Removes the temp files of `target` that writers killed before their rename left behind (SIGKILL or a
// power loss skips the cleanup; each can be a whole checkpoint's size): those named as write_file_atomically
// names them whose process id no longer exists. Files of live processes (this one included) and files not
// named so are kept. Returns how many were removed. Call it at start-up rather than before every save: on a
// directory shared between machines a pid names a process of this machine only, so a writer on another
// machine could lose its temp file.
HYBRID_DECL std::size_t remove_stale_temp_files(const std::filesystem::path& target);

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL std::filesystem::path detail::temp_path_for(const std::filesystem::path& target) {
  static std::atomic<std::uint64_t> counter{0};
  std::random_device rd;
  const std::string name = cat('.', target.filename(), ".tmp.", ::getpid(), '.', counter.fetch_add(1), '.', rd());
  return target.parent_path() / name;
}

HYBRID_DECL void atomic_file_writer::write_all(const std::byte* p, std::size_t n) {
  while (n > 0) {
    const ::ssize_t r = ::write(fd_, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      detail::throw_errno(err, detail::cat("atomic write: writing temp file ", detail::quoted(temp_)));
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

HYBRID_DECL std::size_t remove_stale_temp_files(const std::filesystem::path& target) {
  namespace fs = std::filesystem;
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = detail::cat('.', target.filename(), ".tmp.");
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    // "<pid>.<counter>.<random>" after the prefix.
    const std::string_view rest = std::string_view(name).substr(prefix.size());
    const std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string_view::npos || dot > 9) continue;
    ::pid_t pid = 0;
    bool digits = true;
    for (char c : rest.substr(0, dot)) {
      digits = digits && c >= '0' && c <= '9';
      pid = pid * 10 + (c - '0');
    }
    if (!digits || pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge (EPERM)
    if (::unlink(e.path().c_str()) == 0) ++removed;
  }
  return removed;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
