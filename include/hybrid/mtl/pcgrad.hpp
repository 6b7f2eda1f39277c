// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"): each task's gradient loses its
// component along any other task's gradient it conflicts with (cos < 0), in a random order per step.
#pragma once
#include <Eigen/Core>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace hybrid::mtl {

// g_i' = g_i; for j in a random order (seeded, new each step): if g_i'.g_j < 0, g_i' -= (g_i'.g_j / |g_j|^2) g_j.
// The update is sum_i g_i' (the paper's sum). Every g_i' stays in the span of the g's, so the
// projections run on Gram-matrix coefficients and the result is sum_k alpha_k g_k.
class pcgrad {
 public:
  pcgrad() : pcgrad(0x9c6ad) {}
  explicit pcgrad(std::uint64_t seed) : rng_(seed) {}

  Eigen::VectorXd task_weights(const Eigen::MatrixXd& gram) {
    const Eigen::Index K = gram.rows();
    Eigen::VectorXd alpha = Eigen::VectorXd::Zero(K);
    std::vector<Eigen::Index> order(static_cast<std::size_t>(K));
    for (Eigen::Index i = 0; i < K; ++i) {
      Eigen::VectorXd a = Eigen::VectorXd::Unit(K, i);  // g_i' = sum_j a_j g_j
      std::iota(order.begin(), order.end(), Eigen::Index{0});
      shuffle(order);
      for (Eigen::Index j : order) {
        if (j == i || gram(j, j) <= 0) continue;
        const double d = a.dot(gram.col(j));  // g_i' . g_j
        if (d < 0) a[j] -= d / gram(j, j);
      }
      alpha += a;
    }
    return alpha;
  }

 private:
  // Fisher-Yates with mt19937_64's raw output: the same order for every standard library.
  void shuffle(std::vector<Eigen::Index>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<std::size_t>(rng_() % i)]);
  }
  std::mt19937_64 rng_;
};

}  // namespace hybrid::mtl
