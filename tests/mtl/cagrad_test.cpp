// CAGrad: a two-task example solved by hand, one solved numerically (1-D search over the dual),
// the c = 0 limit, more tasks against random points of the simplex, and the simplex projection.
#include <doctest/doctest.h>

#include <random>

#include <hybrid/mtl/cagrad.hpp>
#include <hybrid/mtl/task_gradients.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace hybrid::mtl;

TEST_CASE("CAGrad by hand: g1 = (1, 0), g2 = (-1, 1), c = 0.5") {
  // g0 = (0, 0.5), |g0| = 0.5, radius 0.25. Dual F(t) = 0.5 (1 - t) + 0.25 sqrt(5t^2 - 6t + 2) on w = (t, 1 - t):
  // F'(t) = 0 at t = 1 (5t^2 - 6t + 1 = 0, t >= 0.6), so g_w = g1, |g_w| = 1, lambda = 0.25:
  // d = g0 + 0.25 g1 = (0.25, 0.5); rescaled by 1 / (1 + c^2): (0.2, 0.4).
  gradient_matrix<double> g(2, 2);
  g << 1, 0, -1, 1;
  cagrad raw({.c = 0.5, .rescale = 0});
  const Eigen::VectorXd w = raw.dual_weights(mtl::gram(g));
  CHECK(w[0] == doctest::Approx(1.0));
  CHECK(w[1] == doctest::Approx(0.0));
  const auto d = combine(raw, g);
  CHECK(d[0] == doctest::Approx(0.25));
  CHECK(d[1] == doctest::Approx(0.5));
  cagrad scaled({.c = 0.5});
  const auto ds = combine(scaled, g);
  CHECK(ds[0] == doctest::Approx(0.2));
  CHECK(ds[1] == doctest::Approx(0.4));
  // Both tasks improve: d . g_k > 0.
  CHECK(d.dot(g.row(0).transpose()) > 0);
  CHECK(d.dot(g.row(1).transpose()) > 0);
}

TEST_CASE("CAGrad on a two-task example against a 1-D numerical solution of the dual") {
  gradient_matrix<double> g(2, 3);
  g << 1, 0.2, 0, -0.5, 1, 0.3;
  const double c = 0.4;
  const Eigen::Vector3d g1 = g.row(0).transpose(), g2 = g.row(1).transpose(), g0 = (g1 + g2) / 2;
  auto F = [&](double t) {
    const Eigen::Vector3d gw = t * g1 + (1 - t) * g2;
    return gw.dot(g0) + c * g0.norm() * gw.norm();
  };
  double lo = 0, hi = 1;  // ternary search: F is convex
  for (int i = 0; i < 200; ++i) {
    const double m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
    (F(m1) < F(m2) ? hi : lo) = F(m1) < F(m2) ? m2 : m1;
  }
  const double t = (lo + hi) / 2;
  const Eigen::Vector3d gw = t * g1 + (1 - t) * g2;
  const Eigen::Vector3d expected = g0 + c * g0.norm() / gw.norm() * gw;

  cagrad method({.c = c, .rescale = 0});
  const Eigen::VectorXd w = method.dual_weights(mtl::gram(g));
  CHECK(w[0] == doctest::Approx(t).epsilon(1e-6));
  const auto d = combine(method, g);
  for (int i = 0; i < 3; ++i) CHECK(d[i] == doctest::Approx(expected[i]).epsilon(1e-6));
  cagrad halved({.c = c, .rescale = 2});
  CHECK(combine(halved, g)[0] == doctest::Approx(expected[0] / (1 + c)).epsilon(1e-6));
}

TEST_CASE("CAGrad with c = 0 is the average gradient") {
  gradient_matrix<double> g(3, 2);
  g << 1, 2, -3, 1, 0.5, 0.5;
  cagrad m({.c = 0});
  const auto d = combine(m, g);
  CHECK(d[0] == doctest::Approx(-0.5));
  CHECK(d[1] == doctest::Approx(3.5 / 3));
}

TEST_CASE("CAGrad's dual with four tasks beats random points of the simplex") {
  std::mt19937 rng(6);
  std::normal_distribution<double> normal;
  gradient_matrix<double> g(4, 6);
  for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = normal(rng);
  const Eigen::MatrixXd G = mtl::gram(g);
  const Eigen::VectorXd b = Eigen::VectorXd::Constant(4, 0.25);
  const double r = 0.5 * std::sqrt(b.dot(G * b));
  auto F = [&](const Eigen::VectorXd& w) { return w.dot(G * b) + r * std::sqrt(w.dot(G * w)); };
  cagrad m({.c = 0.5});
  const Eigen::VectorXd w = m.dual_weights(G);
  CHECK(w.sum() == doctest::Approx(1));
  CHECK(w.minCoeff() >= 0);
  std::exponential_distribution<double> e;
  for (int i = 0; i < 5000; ++i) {
    Eigen::VectorXd v(4);
    for (int k = 0; k < 4; ++k) v[k] = e(rng);
    CHECK(F(w) <= F(v / v.sum()) + 1e-10);
  }
}

TEST_CASE("projection onto the simplex") {
  const Eigen::VectorXd p = cagrad::project_to_simplex(Eigen::Vector3d(0.5, 0.2, 0.1));
  CHECK(p[0] == doctest::Approx(0.5 + 0.2 / 3));
  CHECK(p.sum() == doctest::Approx(1));
  const Eigen::VectorXd q = cagrad::project_to_simplex(Eigen::Vector3d(2, -1, 0));
  CHECK(q[0] == doctest::Approx(1));
  CHECK(q[1] == 0.0);
  CHECK(q[2] == 0.0);
}

}  // namespace HYBRID_TEST_UNIT
