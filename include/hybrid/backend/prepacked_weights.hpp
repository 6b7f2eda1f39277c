// gemm::prepacked_weights: while one lives, products with a parameter as right operand reuse a copy of it packed
// once into the GEMM kernel's layout (inference: the weights do not change, so packing them per call is waste).
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "hybrid/backend/gemm_avx512.hpp"

namespace hybrid::gemm {

// A scope for serving (RAII, any thread, nestable): from its start to the end of the last one alive, every
// product `x * W` or `x * W^T` whose W is a parameter's value (parameter::use(); matmul, linear layers) and whose
// GEMM policy runs our AVX-512 kernel packs W on first use and reuses that copy; the copies are freed when the
// last scope ends. The contract: weights do not change while a scope lives. Optimizer steps are refused
// (std::logic_error) and a weight whose values are not those it was packed from (a checksum of 64 sampled
// values, asked at every use) is packed again, but an edit of a few single values inside a scope may go unseen.
// Memory: one packed copy of every weight used (about the model's size). Batch-1 BERT inference spends about a
// fifth of its time packing weights without it (docs/performance.md).
class prepacked_weights {
 public:
  prepacked_weights() { state().scopes.fetch_add(1); }
  ~prepacked_weights() {
    registry& r = state();
    std::lock_guard lock(r.mutex);
    if (r.scopes.fetch_sub(1) == 1) r.packed.clear();
  }
  prepacked_weights(const prepacked_weights&) = delete;
  prepacked_weights& operator=(const prepacked_weights&) = delete;

  static bool active() { return state().scopes.load() > 0; }
  // How many weights are held packed now.
  static std::size_t size() {
    registry& r = state();
    std::lock_guard lock(r.mutex);
    return r.packed.size();
  }

#if HYBRID_GEMM_AVX512_COMPILED
  // op(B) (K x N; B stored N x K when tb) packed, from the cache when it holds B with the same values.
  static const avx512_detail::packed_weight& get(bool tb, index_t K, index_t N, const float* B, index_t ldb) {
    registry& r = state();
    const std::uint64_t sum = checksum(tb, K, N, B, ldb);
    std::lock_guard lock(r.mutex);
    entry& e = r.packed[{B, tb, ldb, K, N}];
    if (!e.weight.data || e.checksum != sum) {
      e.weight.pack(tb, K, N, B, ldb);
      e.checksum = sum;
    }
    return e.weight;
  }
#endif

 private:
  struct entry {
#if HYBRID_GEMM_AVX512_COMPILED
    avx512_detail::packed_weight weight;
#endif
    std::uint64_t checksum = 0;
  };
  struct registry {
    std::mutex mutex;
    std::atomic<int> scopes{0};
    std::map<std::tuple<const float*, bool, index_t, index_t, index_t>, entry> packed;
  };
  static registry& state() {
    static registry r;
    return r;
  }
  // The bits of 64 values spread over the matrix (first and last included), mixed: a change of the weights as a
  // whole (an optimizer step, a checkpoint loaded, another model at the same address) changes it.
  static std::uint64_t checksum(bool tb, index_t K, index_t N, const float* B, index_t ldb) {
    const index_t count = K * N;
    std::uint64_t h = 0x9E3779B97F4A7C15ull;
    for (index_t s = 0; s < 64 && count > 0; ++s) {
      const index_t i = s * (count - 1) / 63, k = i / N, n = i % N;
      const float v = tb ? B[n * ldb + k] : B[k * ldb + n];
      std::uint32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      h = (h ^ bits) * 0x100000001B3ull;
    }
    return h;
  }
};

}  // namespace hybrid::gemm
