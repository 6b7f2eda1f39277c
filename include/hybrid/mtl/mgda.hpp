// MGDA (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization"): the min-norm point
// of the convex hull of the task gradients, a direction that decreases every task (Desideri's MGDA).
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace hybrid::mtl {

struct mgda_options {
  int max_iterations = 250;  // Frank-Wolfe steps (K > 2)
  double tolerance = 1e-9;   // stop when the weights move less than this (L1)
};

// alpha = argmin_{alpha in simplex} |sum_k alpha_k g_k|^2: closed form for two tasks, Frank-Wolfe with
// exact line search beyond (started from the best pair), on the Gram matrix only. The direction is a
// convex combination, so its size is about that of one task's gradient (not K of them).
class mgda {
 public:
  mgda() = default;
  explicit mgda(mgda_options opt) : opt_(opt) {}

  // min_{gamma in [0, 1]} |gamma v1 + (1 - gamma) v2|^2 from v1.v1, v1.v2, v2.v2.
  static double min_norm_pair(double v11, double v12, double v22) {
    const double den = v11 + v22 - 2 * v12;  // |v1 - v2|^2
    if (den <= 0) return 0.5;                // equal vectors: any point
    return std::clamp((v22 - v12) / den, 0.0, 1.0);
  }

  Eigen::VectorXd task_weights(const Eigen::MatrixXd& gram) const {
    const Eigen::Index K = gram.rows();
    Eigen::VectorXd a = Eigen::VectorXd::Zero(K);
    if (K == 1) return Eigen::VectorXd::Ones(1);
    // The best pair.
    double best = INFINITY;
    for (Eigen::Index i = 0; i < K; ++i)
      for (Eigen::Index j = i + 1; j < K; ++j) {
        const double g = min_norm_pair(gram(i, i), gram(i, j), gram(j, j));
        const double norm2 = g * g * gram(i, i) + 2 * g * (1 - g) * gram(i, j) + (1 - g) * (1 - g) * gram(j, j);
        if (norm2 < best) {
          best = norm2;
          a.setZero();
          a[i] = g;
          a[j] = 1 - g;
        }
      }
    // Frank-Wolfe: move toward the vertex with the smallest directional derivative, exact line search.
    for (int it = 0; K > 2 && it < opt_.max_iterations; ++it) {
      const Eigen::VectorXd ga = gram * a;
      Eigen::Index t = 0;
      ga.minCoeff(&t);
      const double g = min_norm_pair(a.dot(ga), ga[t], gram(t, t));  // between v = sum a g and g_t
      Eigen::VectorXd next = g * a;
      next[t] += 1 - g;
      const double change = (next - a).lpNorm<1>();
      a = next;
      if (change < opt_.tolerance) break;
    }
    return a;
  }

 private:
  mgda_options opt_{};
};

}  // namespace hybrid::mtl
