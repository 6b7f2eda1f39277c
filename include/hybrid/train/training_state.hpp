// Resumable training: model, optimizer state, step (the schedule's input), RNG states, data order and
// counters in one safetensors file, written atomically; loading restores all of them or, on any mismatch, none.
#pragma once
#include <charconv>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include "hybrid/io/checkpoint.hpp"
#include "hybrid/io/safetensors.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/ops/dropout.hpp"
#include "hybrid/optim/optimizer.hpp"
#include "hybrid/train/guard.hpp"

namespace hybrid::train {

// A random engine whose whole state round-trips through its text form (every standard engine: the
// standard fixes the text format of mersenne_twister_engine and friends, so files move between
// machines and standard libraries).
template <class E>
concept text_serializable_engine = requires(E& e, std::ostream& os, std::istream& is) {
  typename E::result_type;
  { os << e } -> std::same_as<std::ostream&>;
  { is >> e } -> std::same_as<std::istream&>;
};

// Names what a training loop must restore to continue exactly where it stopped, then saves or loads it:
//
//   train::training_state st;
//   st.step(step).model(net).optimizer(opt).rng("shuffle", shuffle_rng).rng("dropout", drop)
//     .indices("order", order).guard(guard);
//   st.save("run/state.safetensors");     // atomic: a reader sees the old file or the complete new one
//   st.load("run/state.safetensors");     // restores all, or throws leaving everything as it was
//
// Nothing needs saving for an lr_schedule: it is a pure function of the step. Each registered item has a
// key; tensors are named "<key>.<...>" (the model's parameters "model.<dotted name>", so
// io::load_parameters(net, file, {.strip_prefix = "model", .unexpected = io::unexpected_tensors::ignore})
// reads the weights alone), scalars and RNG states live in the file's __metadata__. Floating-point
// tensors are stored in their own type (F32 / F64) so a resumed run reproduces the uninterrupted one bit
// for bit. The registered objects must outlive the training_state.
class training_state {
 public:
  // The loop's count of updates done (the input of opt.scale_lr(schedule(step))).
  training_state& step(index_t& s) { return counter("step", s); }

  // Every parameter of m as "<key>.<dotted name>"; the file must hold exactly these, shaped alike.
  template <module M>
  training_state& model(M& m, std::string key = "model") {
    using T = typename M::value_type;
    item& it = add(std::move(key));
    it.save = [&m, k = it.key](writer& w) {
      m.visit("", [&](const std::string& name, parameter<T>& p) { w.add(cat(k, '.', name), p.value()); });
    };
    it.prepare = [&m, k = it.key](const reader& r) -> commit_fn {
      std::vector<std::pair<std::string, parameter<T>*>> plan;
      m.visit("", [&](const std::string& name, parameter<T>& p) {
        plan.emplace_back(cat(k, '.', name), &p);
        r.check<T>(plan.back().first, p.shape());
      });
      // Same dtype, checked shape: read_into is a copy that cannot fail, so parameters load in place.
      return [plan = std::move(plan), &r] {
        for (auto& [name, p] : plan) r.file.read_into<T>(name, p->value().span());
      };
    };
    return *this;
  }

  // The optimizer's per-parameter tensors ("<key>.<parameter>.<slot>"), its step count and each group's
  // learning rate (so a loop that does not set the lr every step also resumes exactly).
  template <class T>
  training_state& optimizer(optim::optimizer<T>& o, std::string key = "optimizer") {
    item& it = add(std::move(key));
    it.save = [&o, k = it.key](writer& w) {
      auto st = std::make_shared<optim::optimizer_state<T>>(o.state());
      for (const auto& nt : st->tensors) w.add(cat(k, '.', nt.name), nt.value);
      w.keep.push_back(st);
      w.meta[cat(k, ".step")] = std::to_string(st->step);
      std::string lrs;
      for (const auto& g : o.groups()) lrs += cat(lrs.empty() ? "" : " ", exact(g.lr), ' ', exact(g.initial_lr));
      w.meta[cat(k, ".lr")] = lrs;
    };
    it.prepare = [&o, k = it.key](const reader& r) -> commit_fn {
      // Read into copies first: load_state copies from a separate state, and a failure here leaves o as it was.
      optim::optimizer_state<T> st = o.state();
      for (auto& nt : st.tensors) {
        const std::string name = cat(k, '.', nt.name);
        r.check<T>(name, nt.value.shape());
        tensor<T> copy(nt.value.shape());
        r.file.read_into<T>(name, copy.span());
        nt.value = std::move(copy);
      }
      st.step = r.integer(cat(k, ".step"));
      const std::vector<double> lrs = r.doubles(cat(k, ".lr"));
      if (lrs.size() != 2 * o.groups().size())
        r.fail(cat("'", k, ".lr' holds ", lrs.size(), " numbers, but the optimizer has ", o.groups().size(),
                   " parameter groups (2 numbers each)"));
      return [&o, st = std::move(st), lrs] {
        o.load_state(st);
        for (std::size_t i = 0; i < o.groups().size(); ++i) {
          o.groups()[i].lr = lrs[2 * i];
          o.groups()[i].initial_lr = lrs[2 * i + 1];
        }
      };
    };
    return *this;
  }

  // A standard random engine (std::mt19937_64 for shuffling, say), by its full text state.
  template <text_serializable_engine E>
  training_state& rng(std::string key, E& e) {
    item& it = add(std::move(key));
    it.save = [&e, k = it.key](writer& w) {
      std::ostringstream os;
      os << e;
      w.meta[k] = os.str();
    };
    it.prepare = [&e, k = it.key](const reader& r) -> commit_fn {
      std::istringstream is(r.text(k));
      E copy;
      is >> copy;
      if (is.fail() || !(is >> std::ws).eof())
        r.fail(cat("metadata '", k, "' is not the state of this random engine"));
      return [&e, copy] { e = copy; };
    };
    return *this;
  }
  // A dropout stream: its seed and counter.
  training_state& rng(std::string key, dropout_rng& d) {
    item& it = add(std::move(key));
    it.save = [&d, k = it.key](writer& w) { w.meta[k] = cat(std::to_string(d.seed), ' ', std::to_string(d.counter)); };
    it.prepare = [&d, k = it.key](const reader& r) -> commit_fn {
      const std::vector<std::uint64_t> v = r.unsigned_list(k);
      if (v.size() != 2) r.fail(cat("metadata '", k, "' must hold a dropout seed and counter, found ", v.size(), " numbers"));
      return [&d, v] { d = dropout_rng{v[0], v[1]}; };
    };
    return *this;
  }

  // A data order (a permutation being walked, say), as an I64 tensor "<key>"; loading resizes v.
  training_state& indices(std::string key, std::vector<index_t>& v) {
    item& it = add(std::move(key));
    it.save = [&v, k = it.key](writer& w) {
      w.tensors.push_back({k, {static_cast<std::int64_t>(v.size())}, std::span<const std::int64_t>(v)});
    };
    it.prepare = [&v, k = it.key](const reader& r) -> commit_fn {
      const io::tensor_info& t = r.claim(k);
      if (t.type != io::dtype::I64 || t.shape.size() != 1)
        r.fail(cat("tensor '", k, "' must be a 1-D I64 tensor of indices, found ", io::dtype_name(t.type), ' ',
                   io::detail::st::shape_string(t.shape)));
      return [&v, &r, k] { v = r.file.read<std::int64_t>(k); };
    };
    return *this;
  }

  // An integer the loop keeps (epoch, cursor into the data order, samples seen).
  training_state& counter(std::string key, index_t& v) {
    item& it = add(std::move(key));
    it.save = [&v, k = it.key](writer& w) { w.meta[k] = std::to_string(v); };
    it.prepare = [&v, k = it.key](const reader& r) -> commit_fn {
      const index_t x = r.integer(k);
      return [&v, x] { v = x; };
    };
    return *this;
  }

  // A step_guard's counters ("<key>.steps", ".skipped", ".consecutive").
  template <class T, class Exec>
  training_state& guard(step_guard<T, Exec>& g, const std::string& key = "guard") {
    guard_counters& c = g.counters();
    return counter(cat(key, ".steps"), c.steps)
        .counter(cat(key, ".skipped"), c.skipped)
        .counter(cat(key, ".consecutive"), c.consecutive);
  }

  // Writes everything registered to `path` atomically (io::write_file_atomically). `extra` metadata
  // (a run name, a config hash) is stored alongside; its keys must not clash with the items'.
  void save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra = {}) const {
    writer w;
    w.meta[format_key] = format_version;
    for (const item& it : items_) it.save(w);
    for (const auto& [k, v] : extra)
      if (!w.meta.emplace(k, v).second)
        throw std::invalid_argument(cat("training_state::save: extra metadata key '", k, "' is taken by the state"));
    io::save_safetensors(path, w.tensors, w.meta);
  }

  // Restores every registered item from `path`. Everything is read and checked first (each tensor
  // present with this type and shape, each scalar well formed, no tensor left unclaimed), so on any
  // error (io::checkpoint_error naming the file and item; std::system_error; io::format_error) nothing
  // registered has changed. Returns the file's metadata (with any `extra` given to save).
  std::map<std::string, std::string> load(const std::filesystem::path& path) {
    return load(io::safetensors_reader::open(path));
  }
  std::map<std::string, std::string> load(const io::safetensors_reader& file) {
    const reader r{file, {}};
    if (r.text(format_key) != format_version)
      r.fail(cat("metadata '", format_key, "' is '", r.text(format_key), "'; this build reads version ",
                 format_version));
    std::vector<commit_fn> commits;
    for (const item& it : items_) commits.push_back(it.prepare(r));
    for (const io::tensor_info& t : file.tensors())
      if (!r.claimed.contains(t.name))
        r.fail(cat("tensor '", t.name, "' belongs to nothing registered in this training state (another model?)"));
    for (auto& c : commits) c();
    return file.metadata();
  }

  // The registered keys, in order.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const item& it : items_) out.push_back(it.key);
    return out;
  }

 private:
  static constexpr const char* format_key = "hybrid.training_state";
  static constexpr const char* format_version = "1";

  template <class... A>
  static std::string cat(const A&... parts) {
    return io::detail::cat(parts...);
  }
  // Shortest decimal that reads back as the same double.
  static std::string exact(double x) {
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, res.ptr);
  }

  struct writer {
    std::vector<io::tensor_to_write> tensors;
    std::map<std::string, std::string> meta;
    std::vector<std::shared_ptr<const void>> keep;  // storage the tensors view, alive until written
    template <class T>
    void add(std::string name, const tensor<T>& t) {
      std::vector<std::int64_t> dims;
      for (int i = 0; i < t.shape().rank(); ++i) dims.push_back(t.shape()[i]);
      tensors.push_back({std::move(name), std::move(dims), std::span<const T>(t.data(), static_cast<std::size_t>(t.numel()))});
    }
  };

  // The file being loaded, with the checks every item shares; `claimed` records the tensors items use.
  struct reader {
    const io::safetensors_reader& file;
    mutable std::unordered_set<std::string> claimed;

    template <class... A>
    [[noreturn]] void fail(const A&... parts) const {
      throw io::checkpoint_error(cat("training_state::load: '", file.source(), "': ", parts...));
    }
    const io::tensor_info& claim(const std::string& name) const {
      const io::tensor_info* t = file.find(name);
      if (!t) fail(cat("no tensor '", name, "'"));
      claimed.insert(name);
      return *t;
    }
    template <class T>
    void check(const std::string& name, const hybrid::shape& s) const {
      const io::tensor_info& t = claim(name);
      bool same = t.shape.size() == static_cast<std::size_t>(s.rank());
      for (int i = 0; same && i < s.rank(); ++i) same = t.shape[static_cast<std::size_t>(i)] == s[i];
      if (t.type != io::detail::st::dtype_of<T>() || !same)
        fail(cat("tensor '", name, "' is ", io::dtype_name(t.type), ' ', io::detail::st::shape_string(t.shape),
                 ", but the state expects ", io::dtype_name(io::detail::st::dtype_of<T>()), ' ', s.str()));
    }
    const std::string& text(const std::string& key) const {
      const auto& meta = file.metadata();
      auto it = meta.find(key);
      if (it == meta.end()) fail(cat("no metadata '", key, "'"));
      return it->second;
    }
    index_t integer(const std::string& key) const {
      const std::string& s = text(key);
      index_t v = 0;
      const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
      if (res.ec != std::errc{} || res.ptr != s.data() + s.size() || s.empty())
        fail(cat("metadata '", key, "' = '", s, "' is not an integer"));
      return v;
    }
    template <class N>
    std::vector<N> numbers(const std::string& key, const char* what) const {
      const std::string& s = text(key);
      std::vector<N> out;
      const char *p = s.data(), *end = s.data() + s.size();
      while (p != end) {
        if (*p == ' ') {
          ++p;
          continue;
        }
        N v{};
        const auto res = std::from_chars(p, end, v);
        if (res.ec != std::errc{}) fail(cat("metadata '", key, "' = '", s, "' is not a list of ", what));
        out.push_back(v);
        p = res.ptr;
      }
      return out;
    }
    std::vector<double> doubles(const std::string& key) const { return numbers<double>(key, "numbers"); }
    std::vector<std::uint64_t> unsigned_list(const std::string& key) const {
      return numbers<std::uint64_t>(key, "unsigned integers");
    }
  };

  using commit_fn = std::function<void()>;
  struct item {
    std::string key;
    std::function<void(writer&)> save;
    std::function<commit_fn(const reader&)> prepare;  // reads and checks; the returned commit cannot fail
  };

  item& add(std::string key) {
    if (key.empty()) throw std::invalid_argument("training_state: an empty key");
    if (key == format_key) throw std::invalid_argument(cat("training_state: the key '", key, "' is reserved"));
    for (const item& it : items_)
      if (it.key == key) throw std::invalid_argument(cat("training_state: the key '", key, "' is registered twice"));
    return items_.emplace_back(item{std::move(key), {}, {}});
  }

  std::vector<item> items_;
};

}  // namespace hybrid::train
