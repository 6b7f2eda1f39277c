// Execution policy: every parallel loop in hybrid goes through oneTBB (no second thread pool).
// Work is cut into a fixed number of chunks decided by sizes alone, so results are bitwise identical
// for any thread count and for the serial policy.
#pragma once
#include <algorithm>
#include <memory>
#include <type_traits>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#ifdef HYBRID_TSAN_STD_THREADS
#include <thread>
#include <vector>
#endif

#include "hybrid/core/shape.hpp"

namespace hybrid::exec {

struct serial {
  template <class F>
  static void for_each(index_t n, F&& f) {
    for (index_t i = 0; i < n; ++i) f(i);
  }
  // How many threads a loop may run on (callers pick one big task over many small ones when it is 1).
  static int concurrency() { return 1; }
  static constexpr const char* name = "serial";
};

struct tbb {
  template <class F>
  static void for_each(index_t n, F&& f) {
    if (n <= 1) {
      if (n == 1) f(index_t{0});
      return;
    }
#ifdef HYBRID_TSAN_STD_THREADS
    // ThreadSanitizer builds only (scripts/test_tsan.sh): libtbb is not instrumented, so TSan cannot see its
    // synchronisation and reports its internals as races. The same body runs here on std::threads, whose
    // start and join TSan does see, with neighbouring chunks on different threads: a report is our race.
    const index_t workers = std::min<index_t>(n, 4);
    std::vector<std::thread> threads;
    for (index_t w = 1; w < workers; ++w)
      threads.emplace_back([&f, w, n, workers] {
        for (index_t i = w; i < n; i += workers) f(i);
      });
    for (index_t i = 0; i < n; i += workers) f(i);
    for (std::thread& t : threads) t.join();
#else
    using body = std::remove_reference_t<F>;
    run_ranges(
        n,
        [](void* b, index_t begin, index_t end) {
          // A local copy of the closure, not a reference to it: the body's captures (scales, keys, sizes)
          // then live in registers. Read through the pointer, any float store in the loop might alias them,
          // so the compiler reloads them per element and keeps the loop scalar (dropout was 4x slower).
          if constexpr (std::is_trivially_copyable_v<body>) {
            body g = *static_cast<const body*>(b);
            for (index_t i = begin; i != end; ++i) g(i);
          } else {
            body& g = *static_cast<body*>(b);
            for (index_t i = begin; i != end; ++i) g(i);
          }
        },
        const_cast<void*>(static_cast<const void*>(std::addressof(f))));
#endif
  }
  static constexpr const char* name = "tbb";
  // The smaller of this arena's size and a global_control limit (what `tbb::global_control(
  // max_allowed_parallelism, 1)` sets for a one-thread run).
  static int concurrency() {
    const auto limit = ::tbb::global_control::active_value(::tbb::global_control::max_allowed_parallelism);
    return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(::tbb::this_task_arena::max_concurrency()), limit));
  }

 private:
  // The one place oneTBB's parallel_for is instantiated. Templating it on every loop body made each of the
  // ~100 loops in a model instantiate (and optimise) oneTBB's partitioner anew: a quarter of the flagship's
  // compile time. Bodies come in through a function pointer, called once per range, not per index.
  static void run_ranges(index_t n, void (*call)(void*, index_t, index_t), void* body) {
    ::tbb::parallel_for(::tbb::blocked_range<index_t>(0, n, 1),
                        [=](const ::tbb::blocked_range<index_t>& r) { call(body, r.begin(), r.end()); });
  }
};

#ifdef HYBRID_EXEC_SERIAL
using default_policy = serial;
#else
using default_policy = tbb;
#endif

// Rows of a rows x cols problem grouped so each chunk holds about `grain` elements.
struct row_chunks {
  index_t rows = 0, rows_per_chunk = 1, count = 0;
  row_chunks(index_t rows_, index_t cols, index_t grain = 16384) : rows(rows_) {
    rows_per_chunk = std::max<index_t>(1, grain / std::max<index_t>(cols, 1));
    count = rows == 0 ? 0 : (rows + rows_per_chunk - 1) / rows_per_chunk;
  }
  index_t begin(index_t k) const { return k * rows_per_chunk; }
  index_t end(index_t k) const { return std::min(rows, (k + 1) * rows_per_chunk); }
};

}  // namespace hybrid::exec
