// exec::tbb::for_each: every index exactly once, for bodies copied per range (trivially copyable captures)
// and for bodies run through a reference (captures that are not trivially copyable, or move-only).
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <numeric>
#include <vector>

#include <hybrid/backend/parallel.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("exec::tbb::for_each visits each index once, whatever the body captures") {
  const index_t n = 5000;
  std::vector<float> out(static_cast<std::size_t>(n), -1.f);
  float* dst = out.data();

  SUBCASE("trivially copyable body (copied into each range's loop)") {
    const float scale = 0.5f;
    auto body = [=](index_t i) { dst[i] = scale * static_cast<float>(i); };
    static_assert(std::is_trivially_copyable_v<decltype(body)>);
    exec::tbb::for_each(n, body);
    for (index_t i = 0; i < n; ++i) REQUIRE(out[static_cast<std::size_t>(i)] == 0.5f * static_cast<float>(i));
  }
  SUBCASE("a vector captured by value (run through a reference, not copied per range)") {
    std::vector<float> table(static_cast<std::size_t>(n));
    std::iota(table.begin(), table.end(), 1.f);
    auto body = [=](index_t i) { dst[i] = table[static_cast<std::size_t>(i)]; };
    static_assert(!std::is_trivially_copyable_v<decltype(body)>);
    exec::tbb::for_each(n, body);
    for (index_t i = 0; i < n; ++i) REQUIRE(out[static_cast<std::size_t>(i)] == static_cast<float>(i + 1));
  }
  SUBCASE("a move-only capture, and a count shared through a reference") {
    auto offset = std::make_unique<float>(3.f);
    std::atomic<index_t> calls{0};
    exec::tbb::for_each(n, [dst, &calls, offset = std::move(offset)](index_t i) {
      dst[i] = *offset + static_cast<float>(i);
      calls.fetch_add(1, std::memory_order_relaxed);
    });
    CHECK(calls.load() == n);
    for (index_t i = 0; i < n; ++i) REQUIRE(out[static_cast<std::size_t>(i)] == 3.f + static_cast<float>(i));
  }
}

}  // namespace HYBRID_TEST_UNIT
