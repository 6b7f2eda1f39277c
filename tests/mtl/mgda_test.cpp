// MGDA: the golden two-task case, and Frank-Wolfe for more tasks against a brute-force search of the
// simplex and the min-norm optimality condition.
#include <doctest/doctest.h>

#include <random>

#include <hybrid/mtl/mgda.hpp>
#include <hybrid/mtl/task_gradients.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace hybrid::mtl;

TEST_CASE("MGDA golden: g1 = (1, 0), g2 = (-1, 1) gives gamma = 0.6 and (0.2, 0.4)") {
  gradient_matrix<double> g(2, 2);
  g << 1, 0, -1, 1;
  mgda m;
  Eigen::VectorXd w;
  const auto d = combine(m, g, &w);
  CHECK(w[0] == doctest::Approx(0.6));
  CHECK(w[1] == doctest::Approx(0.4));
  CHECK(d[0] == doctest::Approx(0.2));
  CHECK(d[1] == doctest::Approx(0.4));
  CHECK(mgda::min_norm_pair(1, -1, 2) == doctest::Approx(0.6));
  // One gradient inside the other's half-space far enough: the smaller one is the min-norm point.
  CHECK(mgda::min_norm_pair(1, 2, 5) == 1.0);
  CHECK(mgda::min_norm_pair(1, 1, 1) == 0.5);  // equal gradients
}

TEST_CASE("MGDA with three and four tasks reaches the min-norm point") {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal;
  for (int K : {3, 4}) {
    gradient_matrix<double> g(K, 4);
    for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = normal(rng);
    mgda m;
    Eigen::VectorXd w;
    const Eigen::VectorXd d = combine(m, g, &w);
    CHECK(w.minCoeff() >= 0);
    CHECK(w.sum() == doctest::Approx(1));
    // Optimality: <g_k - d, d> >= 0 for every k (d is the projection of 0 onto the hull).
    for (int k = 0; k < K; ++k) CHECK(g.row(k).dot(d) - d.squaredNorm() >= -1e-6);
    // No point of a fine grid over the simplex does better.
    double best = INFINITY;
    const int n = K == 3 ? 400 : 60;
    for (int a = 0; a <= n; ++a)
      for (int b = 0; a + b <= n; ++b) {
        if (K == 3) {
          Eigen::Vector3d v(a, b, n - a - b);
          best = std::min(best, (g.transpose() * (v / n)).squaredNorm());
        } else {
          for (int c = 0; a + b + c <= n; ++c) {
            Eigen::Vector4d v(a, b, c, n - a - b - c);
            best = std::min(best, (g.transpose() * (v / n)).squaredNorm());
          }
        }
      }
    CHECK(d.squaredNorm() <= best + 1e-9);
  }
}

TEST_CASE("MGDA with one task returns it") {
  gradient_matrix<double> g(1, 2);
  g << 3, -1;
  mgda m;
  CHECK(combine(m, g).isApprox(g.row(0).transpose()));
}

}  // namespace HYBRID_TEST_UNIT
