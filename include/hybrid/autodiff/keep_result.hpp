// keep_result(f): under no_grad, runs f and frees everything f put on the tape except its result, so an
// inference pass through many layers keeps their outputs and one layer's intermediates, not all of them.
#pragma once
#include <algorithm>
#include <vector>

#include "hybrid/autodiff/var.hpp"

namespace hybrid {

// While recording, every intermediate is needed by the backward pass: f's result is returned as is. Under
// no_grad the result is copied out, the tape rewound to where it stood before f, and the result copied back
// to the bottom of the freed space. The copy (one activation per layer) is cheap next to the layer; a
// thread-local buffer keeps it free of allocations after the first call.
template <class F>
auto keep_result(F&& f) {
  tape& tp = tape::current();
  if (tp.recording()) return f();
  const tape::mark before = tp.position();
  auto result = f();
  using T = typename decltype(result)::value_type;
  thread_local std::vector<T> scratch;
  scratch.assign(result.data(), result.data() + result.numel());
  const hybrid::shape s = result.shape();
  tp.rewind(before);
  auto kept = make_result<T>(s, false);
  std::copy(scratch.begin(), scratch.end(), kept.data());
  return kept;
}

}  // namespace hybrid
