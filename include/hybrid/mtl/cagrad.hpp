// CAGrad (Liu et al. 2021, "Conflict-Averse Gradient Descent"): the update that maximises the worst
// task's improvement within a ball of radius c |g0| around the average gradient g0.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace hybrid::mtl {

struct cagrad_options {
  double c = 0.5;      // radius (0: plain average gradient)
  int rescale = 1;     // as the official code: 0 none, 1 divide by 1 + c^2, 2 divide by 1 + c
  int max_iterations = 2000;
  double tolerance = 1e-13;
};

// The dual over task weights w in the simplex (the official implementation's objective):
//   min_w  g_w . g0 + c |g0| |g_w|,   g_w = sum_k w_k g_k,  g0 = (1/K) sum_k g_k,
// solved by projected gradient descent with backtracking on the Gram matrix; then
//   d = (g0 + (c |g0| / |g_w|) g_w) / rescale  =  sum_k alpha_k g_k.
class cagrad {
 public:
  cagrad() = default;
  explicit cagrad(cagrad_options opt) : opt_(opt) {}

  // The dual's minimiser w (exposed for tests and logs).
  Eigen::VectorXd dual_weights(const Eigen::MatrixXd& gram) const {
    const Eigen::Index K = gram.rows();
    const Eigen::VectorXd b = Eigen::VectorXd::Constant(K, 1.0 / double(K));
    const Eigen::VectorXd gb = gram * b;
    const double r = opt_.c * std::sqrt(std::max(b.dot(gb), 0.0));
    auto f = [&](const Eigen::VectorXd& w) { return w.dot(gb) + r * std::sqrt(std::max(w.dot(gram * w), 0.0)); };
    Eigen::VectorXd w = b;
    double fw = f(w), step = 1.0 / std::max(gram.diagonal().maxCoeff(), 1e-300);
    for (int it = 0; it < opt_.max_iterations; ++it) {
      const Eigen::VectorXd gw = gram * w;
      const double n = std::sqrt(std::max(w.dot(gw), 0.0));
      const Eigen::VectorXd grad = n > 0 ? Eigen::VectorXd(gb + (r / n) * gw) : gb;
      Eigen::VectorXd next;
      double fn = fw;
      for (int tries = 0; tries < 60; ++tries, step *= 0.5) {  // backtracking (Armijo)
        next = project_to_simplex(w - step * grad);
        fn = f(next);
        if (fn <= fw + grad.dot(next - w) + (next - w).squaredNorm() / (2 * step)) break;
      }
      const double moved = (next - w).lpNorm<1>();
      w = next;
      fw = fn;
      step *= 2;  // let the step grow back
      if (moved < opt_.tolerance) break;
    }
    return w;
  }

  Eigen::VectorXd task_weights(const Eigen::MatrixXd& gram) const {
    const Eigen::Index K = gram.rows();
    const Eigen::VectorXd b = Eigen::VectorXd::Constant(K, 1.0 / double(K));
    const double r = opt_.c * std::sqrt(std::max(b.dot(gram * b), 0.0));
    Eigen::VectorXd alpha = b;
    if (r > 0) {
      const Eigen::VectorXd w = dual_weights(gram);
      const double gw = std::sqrt(std::max(w.dot(gram * w), 0.0));
      alpha += (r / (gw + 1e-8)) * w;
    }
    const double div = opt_.rescale == 1 ? 1 + opt_.c * opt_.c : opt_.rescale == 2 ? 1 + opt_.c : 1.0;
    return alpha / div;
  }

  // Euclidean projection onto {w >= 0, sum w = 1} (Duchi et al. 2008).
  static Eigen::VectorXd project_to_simplex(const Eigen::VectorXd& v) {
    std::vector<double> u(v.data(), v.data() + v.size());
    std::sort(u.begin(), u.end(), std::greater<>());
    double cumulative = 0, theta = 0;
    for (std::size_t j = 0; j < u.size(); ++j) {
      cumulative += u[j];
      const double t = (cumulative - 1) / double(j + 1);
      if (u[j] - t > 0) theta = t;
    }
    return (v.array() - theta).max(0.0).matrix();
  }

 private:
  cagrad_options opt_{};
};

}  // namespace hybrid::mtl
