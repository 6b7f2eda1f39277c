// A monotonic byte arena with marks: the autodiff tape's memory, rewound once per step.
// After the first few steps it holds one block big enough for a whole step, so a step allocates nothing.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "hybrid/core/aligned.hpp"

namespace hybrid {

class arena {
 public:
  struct mark {
    std::size_t block = 0;
    std::size_t used = 0;
  };

  explicit arena(std::size_t first_block_bytes = std::size_t{1} << 20) : next_block_bytes_(first_block_bytes) {}
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;

  // Returns `bytes` bytes aligned to 64; never null.
  void* allocate(std::size_t bytes) {
    bytes = (bytes + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
    if (bytes == 0) bytes = buffer_alignment;
    while (current_ < blocks_.size()) {
      block& b = blocks_[current_];
      if (b.size - used_ >= bytes) {
        void* p = b.data.get() + used_;
        used_ += bytes;
        high_water_ = std::max(high_water_, bytes_in_use());
        return p;
      }
      ++current_;
      used_ = 0;
    }
    const std::size_t size = std::max(bytes, next_block_bytes_);
    next_block_bytes_ = size * 2;
    blocks_.push_back({std::unique_ptr<std::byte, aligned_deleter>(static_cast<std::byte*>(aligned_alloc_bytes(size))), size});
    current_ = blocks_.size() - 1;
    used_ = bytes;
    high_water_ = std::max(high_water_, bytes_in_use());
    return blocks_.back().data.get();
  }
  template <class T>
  T* allocate_array(std::size_t count) {
    return static_cast<T*>(allocate(count * sizeof(T)));
  }

  mark position() const { return {current_, used_}; }
  void rewind(mark m) {
    current_ = m.block;
    used_ = m.used;
  }
  // Whether `p` (memory of this arena) was handed out after `m`, so a rewind to `m` takes it back.
  bool after(mark m, const void* p) const {
    const auto* b = static_cast<const std::byte*>(p);
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      const std::byte* d = blocks_[i].data.get();
      if (b >= d && b < d + blocks_[i].size) return i > m.block || (i == m.block && std::size_t(b - d) >= m.used);
    }
    return false;
  }
  // Rewinds to empty; when a step needed several blocks, they are merged into one so the next
  // step fits in a single block and allocates nothing.
  void reset() {
    if (blocks_.size() > 1) {
      std::size_t total = 0;
      for (auto& b : blocks_) total += b.size;
      blocks_.clear();
      blocks_.push_back({std::unique_ptr<std::byte, aligned_deleter>(static_cast<std::byte*>(aligned_alloc_bytes(total))), total});
      next_block_bytes_ = total * 2;
    }
    current_ = 0;
    used_ = 0;
  }

  std::size_t bytes_in_use() const {
    std::size_t n = used_;
    for (std::size_t i = 0; i < current_ && i < blocks_.size(); ++i) n += blocks_[i].size;
    return n;
  }
  std::size_t capacity() const {
    std::size_t n = 0;
    for (auto& b : blocks_) n += b.size;
    return n;
  }
  std::size_t block_count() const { return blocks_.size(); }
  std::size_t high_water() const { return high_water_; }

 private:
  struct block {
    std::unique_ptr<std::byte, aligned_deleter> data;
    std::size_t size = 0;
  };
  std::vector<block> blocks_;
  std::size_t current_ = 0;
  std::size_t used_ = 0;
  std::size_t next_block_bytes_;
  std::size_t high_water_ = 0;
};

}  // namespace hybrid
