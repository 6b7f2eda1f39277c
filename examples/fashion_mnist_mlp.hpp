// A two-layer MLP on Fashion-MNIST, shared by the example (full run) and its test (short run).
// Reads the IDX files with the project's own loader; trains with AdamW on mini-batches.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/io/idx.hpp>
#include <hybrid/layers/linear.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/optim/adam.hpp>

namespace fashion {

struct split {
  hybrid::tensor<float> images;  // [N, 784] in [0, 1]
  std::vector<std::int32_t> labels;
};

inline split load(const std::filesystem::path& dir, const std::string& prefix, hybrid::index_t limit = 0) {
  const auto images = hybrid::io::read_idx(dir / (prefix + "-images-idx3-ubyte"));
  const auto labels = hybrid::io::read_idx(dir / (prefix + "-labels-idx1-ubyte"));
  const auto& px = images.as<std::uint8_t>();
  const auto& lb = labels.as<std::uint8_t>();
  hybrid::index_t n = images.dims[0];
  if (limit > 0) n = std::min(n, limit);
  split s{hybrid::tensor<float>({n, 784}), std::vector<std::int32_t>(lb.begin(), lb.begin() + n)};
  for (hybrid::index_t i = 0; i < n * 784; ++i) s.images[i] = px[static_cast<std::size_t>(i)] / 255.0f;
  return s;
}

struct mlp {
  using value_type = float;
  hybrid::layers::linear<float> fc1{784, 256}, fc2{256, 10};
  explicit mlp(unsigned seed) {
    std::mt19937 rng(seed);
    fc1.init(rng);
    fc2.init(rng);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    fc1.visit(hybrid::join_name(prefix, "fc1"), f);
    fc2.visit(hybrid::join_name(prefix, "fc2"), f);
  }
  hybrid::var<float> operator()(const hybrid::var<float>& x) const {
    return fc2(fc1(x, [](const auto& z) { return hybrid::relu(z); }));
  }
};

inline float accuracy(const mlp& m, const split& s) {
  hybrid::no_grad ng;
  hybrid::index_t correct = 0;
  const hybrid::index_t n = s.images.dim(0);
  for (hybrid::index_t start = 0; start < n; start += 1000) {
    hybrid::tape_scope scope;
    const hybrid::index_t len = std::min<hybrid::index_t>(1000, n - start);
    auto logits = m(hybrid::constant(s.images.slice(start, len)));
    for (hybrid::index_t i = 0; i < len; ++i) {
      const float* row = logits.data() + i * 10;
      correct += std::max_element(row, row + 10) - row == s.labels[static_cast<std::size_t>(start + i)];
    }
  }
  return static_cast<float>(correct) / static_cast<float>(n);
}

// Trains for `epochs` over `train`; `report(epoch, mean_loss, seconds)` after each epoch.
template <class Report>
void train(mlp& m, const split& train, int epochs, hybrid::index_t batch, Report&& report, unsigned seed = 1) {
  hybrid::optim::adamw<float> opt(hybrid::parameters_of(m), {.lr = 1e-3, .weight_decay = 1e-4});
  std::mt19937 rng(seed);
  const hybrid::index_t n = train.images.dim(0);
  std::vector<hybrid::index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  hybrid::tensor<float> xb({batch, 784});
  std::vector<std::int32_t> yb(static_cast<std::size_t>(batch));
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), rng);
    double total = 0;
    hybrid::index_t steps = 0;
    for (hybrid::index_t start = 0; start + batch <= n; start += batch, ++steps) {
      for (hybrid::index_t i = 0; i < batch; ++i) {
        const hybrid::index_t src = order[static_cast<std::size_t>(start + i)];
        std::copy_n(train.images.data() + src * 784, 784, xb.data() + i * 784);
        yb[static_cast<std::size_t>(i)] = train.labels[static_cast<std::size_t>(src)];
      }
      opt.zero_grad();
      auto loss = hybrid::cross_entropy(m(hybrid::constant(xb)), std::span<const std::int32_t>(yb));
      total += loss.item();
      loss.backward();
      opt.step();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    report(epoch, total / static_cast<double>(std::max<hybrid::index_t>(steps, 1)), secs);
  }
}

}  // namespace fashion
