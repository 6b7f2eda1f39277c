// The reverse-mode tape: an arena of values, lazily allocated adjoints and backward callbacks.
// One tape per thread; it resets itself at the first allocation after a backward pass.
#pragma once
#include <algorithm>
#include <array>
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

namespace detail {
// One adjoint handed out by the tape: zero_adjoints() zeroes it, rewind() detaches it from its node
// (the buffer may lie above the mark), and release() marks it dead (data null) when the buffer returns
// to the free list.
struct adjoint_record {
  adjoint_record* previous;
  void* owner;
  void* data;
  std::size_t bytes;
  void (*detach)(void* owner);
};
}  // namespace detail

// A value on the tape: buffers live in the arena (derived values) or in a parameter (leaves).
// A derived value records only THAT it needs a gradient; its adjoint is allocated by tape::adjoint()
// when the first contribution arrives in backward, and released once its producer's callback has run.
// A view (reshape, contiguous slice) has no adjoint of its own: it reads `base`'s from `offset` on.
// Nodes own no memory.
template <class T>
struct node {
  T* value = nullptr;
  T* grad = nullptr;  // the adjoint: bound for leaves, allocated lazily for derived values
  hybrid::shape shape;
  node* base = nullptr;
  index_t offset = 0;
  detail::adjoint_record* adjoint_record = nullptr;
  bool needs_grad = false;
  bool retain_grad = false;  // keep the adjoint after backward (var::retain_grad)
  bool released = false;     // the adjoint was consumed and given back: nothing may read it again
  bool weight = false;       // a parameter's value (parameter::use): constant inside gemm::prepacked_weights
};

// Backward callbacks are stored in the arena and never destroyed, so they must hold only
// pointers, shapes and numbers: that is what keeps a step free of heap allocations.
class tape;
struct tape_entry {
  tape_entry* previous = nullptr;
  // Whether some output got an adjoint: an entry nothing downstream contributed to is skipped
  // (forward passes never followed by backward, heads without labels).
  virtual bool live() const = 0;
  virtual void backward() = 0;
  virtual void release_outputs(tape& t) = 0;

 protected:
  ~tape_entry() = default;
};

class tape {
  using adjoint_record = detail::adjoint_record;
  // Released adjoints of one rounded byte size, linked through their own first bytes.
  struct free_bin {
    free_bin* next;
    std::size_t bytes;
    void* head;
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

  // A new derived value; no adjoint yet, only whether it needs one (when recording).
  template <class T>
  node<T>* make_node(const hybrid::shape& s, bool needs_grad) {
    auto* n = new (allocate_bytes(sizeof(node<T>))) node<T>{};
    n->shape = s;
    n->value = allocate<T>(s.numel());
    n->needs_grad = needs_grad && recording_;
    if (poison_) std::fill_n(n->value, s.numel(), std::numeric_limits<T>::quiet_NaN());
    return n;
  }
  // A leaf bound to storage owned elsewhere (a parameter's value and gradient).
  template <class T>
  node<T>* make_leaf(T* value, T* grad, const hybrid::shape& s) {
    auto* n = new (allocate_bytes(sizeof(node<T>))) node<T>{};
    n->value = value;
    n->grad = recording_ ? grad : nullptr;
    n->needs_grad = n->grad != nullptr;
    n->shape = s;
    return n;
  }
  // `x`'s buffers from `offset` on, seen with shape `s`: no copy and no tape entry, a gradient added
  // to the view lands in x's adjoint.
  template <class T>
  node<T>* make_view(node<T>* x, index_t offset, const hybrid::shape& s) {
    auto* n = new (allocate_bytes(sizeof(node<T>))) node<T>{};
    n->value = x->value + offset;
    n->shape = s;
    if (recording_ && x->needs_grad) {
      n->needs_grad = true;
      n->base = x->base ? x->base : x;
      n->offset = x->offset + offset;
    }
    return n;
  }

  // The adjoint of `n` for a backward callback to read or accumulate into: allocated (zeroed) at the
  // first call, null when `n` needs no gradient, was released, or the tape is spent. Not thread-safe:
  // callbacks take their pointers before their parallel loops.
  template <class T>
  T* adjoint(node<T>* n) {
    if (n->base) {
      T* b = adjoint(n->base);
      return b ? b + n->offset : nullptr;
    }
    if (n->grad || !n->needs_grad || n->released || spent_) return n->grad;
    return allocate_adjoint(n, true);
  }
  // The same for a callback whose contribution writes every element of the adjoint when it is the first one
  // (a product with beta = 0 instead of 1): `fresh` tells it so, and a fresh adjoint is not zeroed first
  // (zeroing was about 2% of a training step). Views and adjoints that exist already: as adjoint(), not fresh.
  template <class T>
  T* adjoint_to_overwrite(node<T>* n, bool& fresh) {
    fresh = !n->base && !n->grad && n->needs_grad && !n->released && !spent_;
    return fresh ? allocate_adjoint(n, false) : adjoint(n);
  }
  // The adjoint if it exists, never allocating (for reading gradients).
  template <class T>
  T* existing_adjoint(const node<T>* n) const {
    if (n->base) {
      T* b = existing_adjoint(n->base);
      return b ? b + n->offset : nullptr;
    }
    return n->grad;
  }

  // Records `f` to run during the backward pass (Stan's reverse_pass_callback). `outputs` are the
  // values whose adjoints `f` reads: when none of them got one, `f` is skipped.
  template <class T, class F>
  void record(node<T>* output, F&& f) {
    record(std::array<node<T>*, 1>{output}, std::forward<F>(f));
  }
  template <class T, std::size_t N, class F>
  void record(const std::array<node<T>*, N>& outputs, F&& f) {
    using fn = std::decay_t<F>;
    static_assert(std::is_trivially_destructible_v<fn>,
                  "tape::record: a backward callback may capture only pointers, shapes and numbers");
    struct entry final : tape_entry {
      entry(const std::array<node<T>*, N>& o, fn&& g) : out(o), f(std::move(g)) {}
      bool live() const override {
        for (node<T>* o : out)
          if (o->grad) return true;
        return false;
      }
      void backward() override { f(); }
      void release_outputs(tape& t) override {
        for (node<T>* o : out) t.release(o);
      }
      std::array<node<T>*, N> out;
      fn f;
    };
    if (!recording_) return;
    auto* e = new (allocate_bytes(sizeof(entry))) entry(outputs, fn(std::forward<F>(f)));
    e->previous = head_;
    head_ = e;
    ++entries_;
  }

  // Runs the recorded callbacks in reverse order; the caller has seeded the output adjoint.
  // Afterwards the tape is "spent": values stay readable until the next allocation resets it.
  // With `retain`, the tape stays live for another backward pass (per-task gradients in multi-task
  // learning: one forward, K backward passes, zero_adjoints() in between).
  void run_backward(bool retain = false) { run_backward_until(mark{}, retain); }
  // Runs only the callbacks recorded after `m`: a backward pass through the part of the graph built
  // after the mark (e.g. the task heads above a shared representation). Without `retain`, an entry's
  // outputs' adjoints are released after its callback ran: every consumer was recorded later, so has
  // run already; their buffers serve the adjoints allocated further down.
  void run_backward_until(const mark& m, bool retain = false) {
    for (tape_entry* e = head_; e && e != m.head; e = e->previous) {
      if (!e->live()) continue;
      e->backward();
      if (!retain) e->release_outputs(*this);
    }
    if (!retain) spent_ = true;
  }
  // Zeroes the adjoint of every derived value on the tape (parameters' gradients are left alone).
  void zero_adjoints() {
    for (adjoint_record* r = adjoints_; r; r = r->previous)
      if (r->data) std::memset(r->data, 0, r->bytes);
  }

  // A position to rewind to; a spent tape is reset first so the mark stays meaningful.
  mark position() {
    if (spent_) reset();
    return {arena_.position(), head_, entries_, adjoints_};
  }
  // Adjoints handed out after the mark may lie above it: their nodes forget them (a node made before
  // the mark gets a fresh one if asked again). Callbacks that rewind scratch (conv) take their adjoints
  // before their tape_scope.
  void rewind(const mark& m) {
    for (adjoint_record* r = adjoints_; r && r != m.adjoints; r = r->previous)
      if (r->data) r->detach(r->owner);
    // Free bins and buffers above the mark are dropped (bins below it keep their other buffers).
    free_bin** link = &free_;
    while (free_bin* b = *link) {
      if (arena_.after(m.memory, b)) {
        *link = b->next;
        continue;
      }
      void** at = &b->head;
      while (*at) {
        if (arena_.after(m.memory, *at)) *at = *static_cast<void**>(*at);
        else at = static_cast<void**>(*at);
      }
      link = &b->next;
    }
    arena_.rewind(m.memory);
    head_ = m.head;
    entries_ = m.entries;
    adjoints_ = m.adjoints;
  }
  void reset() {
    arena_.reset();
    head_ = nullptr;
    adjoints_ = nullptr;
    free_ = nullptr;
    entries_ = 0;
    spent_ = false;
  }

  std::size_t entries() const { return entries_; }
  const hybrid::arena& memory() const { return arena_; }

 private:
  // The adjoint of a value whose producer has run goes back to the free list (retained ones stay).
  template <class T>
  void release(node<T>* n) {
    if (n->retain_grad || !n->needs_grad) return;
    n->released = true;
    if (!n->grad || !n->adjoint_record) return;
    adjoint_record* r = n->adjoint_record;
    give_free(r->data, r->bytes);
    r->data = nullptr;
    n->grad = nullptr;
  }
  static std::size_t bin_bytes(std::size_t bytes) {
    return (std::max<std::size_t>(bytes, 1) + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
  }
  void give_free(void* p, std::size_t bytes) {
    bytes = bin_bytes(bytes);
    free_bin* b = free_;
    while (b && b->bytes != bytes) b = b->next;
    if (!b) free_ = b = new (arena_.allocate(sizeof(free_bin))) free_bin{free_, bytes, nullptr};
    *static_cast<void**>(p) = b->head;
    b->head = p;
  }
  template <class T>
  T* allocate_adjoint(node<T>* n, bool zero) {
    const std::size_t bytes = static_cast<std::size_t>(n->shape.numel()) * sizeof(T);
    void* p = take_free(bytes);
    if (!p) p = arena_.allocate(bytes);
    if (zero) std::memset(p, 0, bytes);
    else if (poison_) std::fill_n(static_cast<T*>(p), n->shape.numel(), std::numeric_limits<T>::quiet_NaN());
    n->grad = static_cast<T*>(p);
    adjoints_ = n->adjoint_record = new (arena_.allocate(sizeof(adjoint_record)))
        adjoint_record{adjoints_, n, p, bytes, [](void* o) { static_cast<node<T>*>(o)->grad = nullptr; }};
    return n->grad;
  }
  void* take_free(std::size_t bytes) {
    bytes = bin_bytes(bytes);
    for (free_bin* b = free_; b; b = b->next)
      if (b->bytes == bytes && b->head) {
        void* p = b->head;
        b->head = *static_cast<void**>(p);
        return p;
      }
    return nullptr;
  }

  hybrid::arena arena_;
  tape_entry* head_ = nullptr;
  adjoint_record* adjoints_ = nullptr;
  free_bin* free_ = nullptr;
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
