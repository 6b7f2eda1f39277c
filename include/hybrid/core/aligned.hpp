// 64-byte aligned heap buffers: cache-line and AVX-512 aligned so SIMD loads never split lines.
// Used by tensor storage and the autodiff arena.
#pragma once
#include <cstddef>
#include <memory>
#include <new>

namespace hybrid {

inline constexpr std::size_t buffer_alignment = 64;

inline void* aligned_alloc_bytes(std::size_t bytes) {
  if (bytes == 0) bytes = buffer_alignment;
  return ::operator new(bytes, std::align_val_t{buffer_alignment});
}
inline void aligned_free_bytes(void* p) noexcept { ::operator delete(p, std::align_val_t{buffer_alignment}); }

struct aligned_deleter {
  void operator()(void* p) const noexcept { aligned_free_bytes(p); }
};

}  // namespace hybrid
