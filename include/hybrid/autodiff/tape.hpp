// The reverse-mode tape: an arena of value/adjoint buffers plus a list of backward callbacks.
// One tape per thread; it resets itself at the first allocation after a backward pass.
#pragma once
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "hybrid/core/arena.hpp"
#include "hybrid/core/shape.hpp"

namespace hybrid {

// A value on the tape: buffers live in the arena (derived values) or in a parameter (leaves).
// `grad` is null when nothing upstream needs a gradient. Nodes own no memory.
template <class T>
struct node {
  T* value = nullptr;
  T* grad = nullptr;
  hybrid::shape shape;
};

// Backward callbacks are stored in the arena and never destroyed, so they must hold only
// pointers, shapes and numbers: that is what keeps a step free of heap allocations.
struct tape_entry {
  tape_entry* previous = nullptr;
  virtual void backward() = 0;

 protected:
  ~tape_entry() = default;
};

class tape {
  struct adjoint_record {
    adjoint_record* previous;
    void* data;
    std::size_t bytes;
  };

 public:
  struct mark {
    arena::mark memory{};
    tape_entry* head = nullptr;
    std::size_t entries = 0;
    adjoint_record* adjoints = nullptr;
  };

  tape() = default;
  tape(const tape&) = delete;
  tape& operator=(const tape&) = delete;

  static tape& current() {
    thread_local tape t;
    return t;
  }

  bool recording() const { return recording_; }
  void set_recording(bool on) { recording_ = on; }
  // When on, fresh value buffers are filled with NaN so an op that forgets to write an element
  // is caught by the tests (the "poisoned output" check).
  bool poisoning() const { return poison_; }
  void set_poisoning(bool on) { poison_ = on; }

  void* allocate_bytes(std::size_t bytes) {
    if (spent_) reset();
    return arena_.allocate(bytes);
  }
  template <class T>
  T* allocate(index_t count) {
    return static_cast<T*>(allocate_bytes(static_cast<std::size_t>(count) * sizeof(T)));
  }
  template <class T>
  T* allocate_zeroed(index_t count) {
    T* p = allocate<T>(count);
    std::memset(static_cast<void*>(p), 0, static_cast<std::size_t>(count) * sizeof(T));
    return p;
  }

  // A new derived value; its adjoint exists only when `needs_grad` and the tape is recording.
  template <class T>
  node<T>* make_node(const hybrid::shape& s, bool needs_grad) {
    auto* n = new (allocate_bytes(sizeof(node<T>))) node<T>{};
    n->shape = s;
    n->value = allocate<T>(s.numel());
    if (poison_) std::fill_n(n->value, s.numel(), std::numeric_limits<T>::quiet_NaN());
    if (needs_grad && recording_) {
      n->grad = allocate_zeroed<T>(s.numel());
      auto* r = new (allocate_bytes(sizeof(adjoint_record))) adjoint_record{adjoints_, n->grad,
                                                                          static_cast<std::size_t>(s.numel()) * sizeof(T)};
      adjoints_ = r;
    }
    return n;
  }
  // A leaf bound to storage owned elsewhere (a parameter's value and gradient).
  template <class T>
  node<T>* make_leaf(T* value, T* grad, const hybrid::shape& s) {
    auto* n = new (allocate_bytes(sizeof(node<T>))) node<T>{};
    n->value = value;
    n->grad = recording_ ? grad : nullptr;
    n->shape = s;
    return n;
  }

  // Records `f` to run during the backward pass (Stan's reverse_pass_callback).
  template <class F>
  void record(F&& f) {
    using fn = std::decay_t<F>;
    static_assert(std::is_trivially_destructible_v<fn>,
                  "tape::record: a backward callback may capture only pointers, shapes and numbers");
    struct entry final : tape_entry {
      explicit entry(fn&& g) : f(std::move(g)) {}
      void backward() override { f(); }
      fn f;
    };
    if (!recording_) return;
    auto* e = new (allocate_bytes(sizeof(entry))) entry(fn(std::forward<F>(f)));
    e->previous = head_;
    head_ = e;
    ++entries_;
  }

  // Runs every recorded callback in reverse order; the caller has seeded the output adjoint.
  // Afterwards the tape is "spent": values stay readable until the next allocation resets it.
  // With `retain`, the tape stays live for another backward pass (per-task gradients in multi-task
  // learning: one forward, K backward passes, zero_adjoints() in between).
  void run_backward(bool retain = false) { run_backward_until(mark{}, retain); }
  // Runs only the callbacks recorded after `m`: a backward pass through the part of the graph built
  // after the mark (e.g. the task heads above a shared representation).
  void run_backward_until(const mark& m, bool retain = false) {
    for (tape_entry* e = head_; e && e != m.head; e = e->previous) e->backward();
    if (!retain) spent_ = true;
  }
  // Zeroes the adjoint of every derived value on the tape (parameters' gradients are left alone).
  void zero_adjoints() {
    for (adjoint_record* r = adjoints_; r; r = r->previous) std::memset(r->data, 0, r->bytes);
  }

  // A position to rewind to; a spent tape is reset first so the mark stays meaningful.
  mark position() {
    if (spent_) reset();
    return {arena_.position(), head_, entries_, adjoints_};
  }
  void rewind(const mark& m) {
    arena_.rewind(m.memory);
    head_ = m.head;
    entries_ = m.entries;
    adjoints_ = m.adjoints;
  }
  void reset() {
    arena_.reset();
    head_ = nullptr;
    adjoints_ = nullptr;
    entries_ = 0;
    spent_ = false;
  }

  std::size_t entries() const { return entries_; }
  const hybrid::arena& memory() const { return arena_; }

 private:
  hybrid::arena arena_;
  tape_entry* head_ = nullptr;
  adjoint_record* adjoints_ = nullptr;
  std::size_t entries_ = 0;
  bool recording_ = true;
  bool poison_ = false;
  bool spent_ = false;
};

// Inference scope: nothing inside is recorded and no adjoint is allocated.
class no_grad {
 public:
  no_grad() : previous_(tape::current().recording()) { tape::current().set_recording(false); }
  ~no_grad() { tape::current().set_recording(previous_); }
  no_grad(const no_grad&) = delete;
  no_grad& operator=(const no_grad&) = delete;

 private:
  bool previous_;
};

// Everything put on the tape inside this scope is released when it ends (values included), so a
// loop of inference calls reuses the same memory and allocates nothing after the first call.
class tape_scope {
 public:
  tape_scope() : mark_(tape::current().position()) {}
  ~tape_scope() { tape::current().rewind(mark_); }
  tape_scope(const tape_scope&) = delete;
  tape_scope& operator=(const tape_scope&) = delete;

 private:
  tape::mark mark_;
};

}  // namespace hybrid
