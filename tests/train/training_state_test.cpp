// training_state: a run stopped at step k, saved, loaded into fresh objects and continued reproduces the
// uninterrupted run's losses bit for bit; loads are all-or-nothing; a saver killed by SIGKILL at random
// moments always leaves one complete checkpoint at the final path.
#include <hybrid/train/training_state.hpp>

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/layers/linear.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/optim/adam.hpp>
#include <hybrid/optim/schedule.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at the end of the test.
struct temp_dir {
  fs::path path;
  explicit temp_dir(const std::string& tag)
      : path(fs::temp_directory_path() / ("hybrid_training_state_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
};

struct toy_model {
  using value_type = float;
  layers::linear<float> fc1, fc2;
  explicit toy_model(index_t hidden = 16) : fc1(6, hidden), fc2(hidden, 3) { assign_names(*this); }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    fc1.visit(join_name(prefix, "fc1"), f);
    fc2.visit(join_name(prefix, "fc2"), f);
  }
};

// 64 random samples of 6 features and 3 classes (the data itself is not training state).
struct toy_data {
  static constexpr index_t n = 64, features = 6, batch = 8;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  toy_data() {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal;
    for (index_t i = 0; i < n * features; ++i) x.push_back(normal(rng));
    for (index_t i = 0; i < n; ++i) y.push_back(static_cast<std::int32_t>(rng() % 3));
  }
};

constexpr index_t total_steps = 120;  // 2k
constexpr index_t resume_at = 60;     // k

// Everything a training loop owns: model, AdamW, warmup-cosine schedule, guard, a shuffling engine and its
// current order, a dropout stream, the step. Seeds differ per instance so a load must overwrite them all.
struct toy_run {
  toy_model net;
  optim::adamw<float> opt;
  optim::lr_schedule sched = optim::cosine_schedule_with_warmup(10, total_steps);
  train::step_guard<float> guard;
  std::mt19937_64 shuffle;
  dropout_rng drop;
  std::vector<index_t> order;
  index_t step = 0;

  explicit toy_run(unsigned seed)
      : opt(parameters_of(net), {.lr = 3e-2, .weight_decay = 0.01}), guard(opt, {.max_consecutive_skips = 3}),
        shuffle(seed * 7 + 1), drop{seed * 13 + 5, 0}, order(toy_data::n) {
    std::mt19937 init(seed);
    net.fc1.init(init);
    net.fc2.init(init);
    std::iota(order.begin(), order.end(), index_t{0});
  }

  train::training_state state() {
    train::training_state st;
    st.step(step).model(net).optimizer(opt).rng("shuffle", shuffle).rng("dropout", drop).indices("order", order).guard(
        guard);
    return st;
  }

  // Trains until `end` updates are done; returns each step's loss. Steps 7 and 75 get a NaN gradient, so
  // skipped steps and the guard's counters take part in the resume too.
  std::vector<float> train_until(index_t end, const toy_data& d) {
    std::vector<float> losses;
    constexpr index_t per_epoch = toy_data::n / toy_data::batch;
    for (; step < end; ++step) {
      if (step % per_epoch == 0) std::shuffle(order.begin(), order.end(), shuffle);
      tensor<float> x({toy_data::batch, toy_data::features});
      std::vector<std::int32_t> y;
      for (index_t b = 0; b < toy_data::batch; ++b) {
        const index_t row = order[static_cast<std::size_t>((step % per_epoch) * toy_data::batch + b)];
        std::copy_n(d.x.begin() + row * toy_data::features, toy_data::features, x.data() + b * toy_data::features);
        y.push_back(d.y[static_cast<std::size_t>(row)]);
      }
      tape_scope scope;
      opt.zero_grad();
      const var<float> h = dropout(var<float>(relu(net.fc1(constant(x)))), 0.25, drop);
      const var<float> loss = cross_entropy(net.fc2(h), std::span<const std::int32_t>(y));
      loss.backward();
      if (step == 7 || step == 75) net.fc2.bias().grad()[1] = std::numeric_limits<float>::quiet_NaN();
      opt.scale_lr(sched(step));
      guard.step(loss);
      losses.push_back(loss.item());
    }
    return losses;
  }
};

std::vector<float> values_of(toy_model& m) {
  std::vector<float> v;
  m.visit("", [&](const std::string&, parameter<float>& p) { v.insert(v.end(), p.value().begin(), p.value().end()); });
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The kill test's state: every tensor and the step equal one version number.
struct versioned {
  parameter<float> big{"big", shape{256, 512}}, small{"small", shape{1000}};
  index_t step = 0;
  using value_type = float;
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    f(join_name(prefix, "big"), big);
    f(join_name(prefix, "small"), small);
  }
  train::training_state state() {
    train::training_state st;
    st.step(step).model(*this);
    return st;
  }
  void set(index_t v) {
    step = v;
    big.value().fill(float(v));
    small.value().fill(float(v));
  }
};

}  // namespace

TEST_CASE("resuming at step k reproduces the uninterrupted run's losses exactly") {
  const toy_data d;
  temp_dir dir("resume");
  const fs::path file = dir.path / "state.safetensors";

  toy_run full(1);
  const std::vector<float> want = full.train_until(total_steps, d);
  REQUIRE(full.guard.skipped() == 2);

  std::vector<float> got;
  {
    toy_run first(1);
    got = first.train_until(resume_at, d);
    first.state().save(file, {{"run", "toy"}});
  }
  toy_run resumed(99);  // different weights, shuffle and dropout seeds: the load must replace them all
  const auto meta = resumed.state().load(file);
  CHECK(meta.at("run") == "toy");
  CHECK(resumed.step == resume_at);
  CHECK(resumed.opt.step_count() == resume_at - 1);  // step 7 was skipped
  CHECK(resumed.guard.skipped() == 1);
  const std::vector<float> rest = resumed.train_until(total_steps, d);
  got.insert(got.end(), rest.begin(), rest.end());

  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(std::memcmp(&got[i], &want[i], sizeof(float)) == 0);
  }
  CHECK(same_bits(values_of(resumed.net), values_of(full.net)));
  CHECK(resumed.opt.step_count() == full.opt.step_count());
  CHECK(resumed.guard.skipped() == full.guard.skipped());
  CHECK(resumed.shuffle == full.shuffle);
  CHECK(resumed.drop.counter == full.drop.counter);
  CHECK(resumed.opt.lr() == full.opt.lr());

  // Without the state (weights alone) the run diverges: the test can tell.
  toy_run weights_only(1);
  weights_only.train_until(resume_at, d);
  toy_run other(99);
  io::load_parameters(other.net, file, {.strip_prefix = "model", .unexpected = io::unexpected_tensors::ignore});
  CHECK(same_bits(values_of(other.net), values_of(weights_only.net)));
  other.step = resume_at;
  CHECK_FALSE(other.train_until(total_steps, d) == rest);
}

TEST_CASE("a load that does not fit changes nothing and names the problem") {
  const toy_data d;
  temp_dir dir("mismatch");
  const fs::path file = dir.path / "state.safetensors";
  toy_run a(1);
  a.train_until(12, d);
  a.state().save(file);

  auto expect_unchanged = [](toy_run& r, const std::vector<float>& w, index_t step, const std::mt19937_64& sh) {
    CHECK(same_bits(values_of(r.net), w));
    CHECK(r.step == step);
    CHECK(r.opt.step_count() == 0);
    CHECK(r.shuffle == sh);
  };

  SUBCASE("another width") {
    toy_model wide(24);
    optim::adamw<float> opt(parameters_of(wide), {});
    index_t step = 3;
    train::training_state st;
    st.step(step).model(wide).optimizer(opt);
    const std::vector<float> w = values_of(wide);
    try {
      st.load(file);
      FAIL("no exception");
    } catch (const io::checkpoint_error& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find("'model.fc1.weight' is F32 [16, 6], but the state expects F32 [24, 6]") != std::string::npos);
      CHECK(what.find(file.string()) != std::string::npos);
    }
    CHECK(same_bits(values_of(wide), w));
    CHECK(step == 3);
  }
  SUBCASE("a tensor nothing claims") {
    toy_run b(2);
    const auto w = values_of(b.net);
    const auto sh = b.shuffle;
    train::training_state st;
    st.step(b.step).model(b.net).rng("shuffle", b.shuffle);  // no optimizer registered
    CHECK_THROWS_WITH_AS(st.load(file), doctest::Contains("belongs to nothing registered in this training state"),
                         io::checkpoint_error);
    expect_unchanged(b, w, 0, sh);
  }
  SUBCASE("missing or malformed metadata") {
    const io::safetensors_reader r = io::safetensors_reader::open(file);
    std::vector<io::tensor_to_write> tensors;
    std::vector<std::vector<float>> floats;
    std::vector<std::vector<std::int64_t>> ints;
    floats.reserve(r.tensors().size());
    ints.reserve(r.tensors().size());
    for (const auto& t : r.tensors()) {
      if (t.type == io::dtype::I64)
        tensors.push_back({t.name, t.shape, std::span<const std::int64_t>(ints.emplace_back(r.read<std::int64_t>(t.name)))});
      else
        tensors.push_back({t.name, t.shape, std::span<const float>(floats.emplace_back(r.read<float>(t.name)))});
    }
    auto meta = r.metadata();
    const fs::path bad = dir.path / "bad.safetensors";
    toy_run b(2);
    const auto w = values_of(b.net);
    const auto sh = b.shuffle;

    meta["shuffle"] = "12 34";
    io::save_safetensors(bad, tensors, meta);
    CHECK_THROWS_WITH_AS(b.state().load(bad), doctest::Contains("metadata 'shuffle' is not the state of this random engine"),
                         io::checkpoint_error);
    expect_unchanged(b, w, 0, sh);

    meta = r.metadata();
    meta["step"] = "12x";
    io::save_safetensors(bad, tensors, meta);
    CHECK_THROWS_WITH_AS(b.state().load(bad), doctest::Contains("metadata 'step' = '12x' is not an integer"),
                         io::checkpoint_error);
    expect_unchanged(b, w, 0, sh);

    meta = r.metadata();
    meta.erase("dropout");
    io::save_safetensors(bad, tensors, meta);
    CHECK_THROWS_WITH_AS(b.state().load(bad), doctest::Contains("no metadata 'dropout'"), io::checkpoint_error);
    expect_unchanged(b, w, 0, sh);

    meta = r.metadata();
    meta.erase("hybrid.training_state");
    io::save_safetensors(bad, tensors, meta);
    CHECK_THROWS_AS(b.state().load(bad), io::checkpoint_error);
    expect_unchanged(b, w, 0, sh);
  }
  SUBCASE("registration errors") {
    toy_run b(2);
    train::training_state st;
    st.step(b.step);
    CHECK_THROWS_AS(st.counter("step", b.step), std::invalid_argument);
    CHECK_THROWS_AS(st.counter("", b.step), std::invalid_argument);
    CHECK_THROWS_AS(st.save(dir.path / "x.safetensors", {{"step", "1"}}), std::invalid_argument);
    CHECK_FALSE(fs::exists(dir.path / "x.safetensors"));
    CHECK(st.keys() == std::vector<std::string>{"step"});
  }
}

// A child process saves versions 1, 2, 3, ... of a state (every tensor and the step equal to the version)
// as fast as it can; the parent SIGKILLs it at seeded random moments. After every kill the file at the
// final path must load and hold exactly one version, never older than the last one seen, and the only
// other files are the writer's hidden temp files, which no loader reads (they do not carry the name) and
// io::remove_stale_temp_files removes.
TEST_CASE("SIGKILL while saving never leaves a broken or mixed checkpoint") {
  temp_dir dir("kill");
  const fs::path file = dir.path / "state.safetensors";
  versioned v;
  v.state().save(file);  // version 0 exists before the first writer starts

  // The child reports each completed save on a pipe. Every fourth round the parent waits for one before its
  // random delay, so versions advance however slow the machine (or a sanitizer build) is; the other rounds
  // kill at any moment, from the fork on.
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  std::mt19937 rng(2024);
  index_t last = 0, torn_writes = 0;
  constexpr int rounds = 40;
  for (int round = 0; round < rounds; ++round) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // The child: never returns into doctest.
      try {
        ::close(pipefd[0]);
        versioned w;
        for (index_t i = last + 1;; ++i) {
          w.set(i);
          w.state().save(file);
          const char done = 1;
          if (::write(pipefd[1], &done, 1) != 1) ::_exit(4);
        }
      } catch (...) {
        ::_exit(3);
      }
    }
    if (round % 4 == 0) {
      char done = 0;
      REQUIRE(::read(pipefd[0], &done, 1) == 1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 40000)(rng)));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));  // killed, not an exit (an exit 3 would be a save error in the child)
    // Drop the reports of the killed child (the pipe would fill up and block the next one).
    while (true) {
      pollfd p{pipefd[0], POLLIN, 0};
      char buf[256];
      if (::poll(&p, 1, 0) != 1 || ::read(pipefd[0], buf, sizeof buf) <= 0) break;
    }

    versioned got;
    got.set(-1);
    REQUIRE_NOTHROW(got.state().load(file));
    CAPTURE(round);
    CAPTURE(got.step);
    CHECK(got.step >= last);
    const float want = float(got.step);
    CHECK(std::all_of(got.big.value().begin(), got.big.value().end(), [&](float x) { return x == want; }));
    CHECK(std::all_of(got.small.value().begin(), got.small.value().end(), [&](float x) { return x == want; }));
    last = got.step;

    index_t temps = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) {
      const std::string name = e.path().filename().string();
      if (name == file.filename().string()) continue;
      CHECK(name.starts_with(".state.safetensors.tmp."));  // hidden, and not named *.safetensors
      ++temps;
    }
    // The killed writer's temp file is recognised as stale and cleaned up.
    CHECK(io::remove_stale_temp_files(file) == static_cast<std::size_t>(temps));
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
    torn_writes += temps;
  }
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  MESSAGE("kill rounds: ", rounds, ", last version seen: ", last, ", kills that left a temp file: ", torn_writes);
  CHECK(last > 0);  // the writers did get checkpoints through
}

}  // namespace HYBRID_TEST_UNIT
