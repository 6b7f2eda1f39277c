// PCGrad: the golden two-task case, no-conflict sums, and the Gram-coefficient form against the
// vector-space algorithm with the same random order.
#include <doctest/doctest.h>

#include <hybrid/mtl/pcgrad.hpp>
#include <hybrid/mtl/task_gradients.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace hybrid::mtl;

TEST_CASE("PCGrad golden: g1 = (1, 0), g2 = (-1, 1) gives (0.5, 1.5)") {
  gradient_matrix<double> g(2, 2);
  g << 1, 0, -1, 1;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    pcgrad pc(seed);
    Eigen::VectorXd w;
    const auto d = combine(pc, g, &w);
    CHECK(d[0] == doctest::Approx(0.5));
    CHECK(d[1] == doctest::Approx(1.5));
    // g1' = g1 + 0.5 g2 = (0.5, 0.5), g2' = g2 + g1 = (0, 1): alpha = (2, 1.5).
    CHECK(w[0] == doctest::Approx(2.0));
    CHECK(w[1] == doctest::Approx(1.5));
  }
  gradient_matrix<float> gf = g.cast<float>();
  pcgrad pc;
  const auto df = combine(pc, gf);
  CHECK(df[0] == doctest::Approx(0.5f));
  CHECK(df[1] == doctest::Approx(1.5f));
}

TEST_CASE("PCGrad leaves agreeing gradients alone: the plain sum") {
  gradient_matrix<double> g(3, 2);
  g << 1, 0.5, 0.2, 1, 0.7, 0.1;
  pcgrad pc;
  const auto d = combine(pc, g);
  CHECK(d[0] == doctest::Approx(1.9));
  CHECK(d[1] == doctest::Approx(1.6));
}

TEST_CASE("PCGrad on three conflicting tasks equals the vector algorithm with the same order") {
  gradient_matrix<double> g(3, 5);
  g << 1, -2, 0.5, 0.3, -1,  //
      -1, 1, 0.2, -0.4, 0.8,  //
      0.5, 1.5, -1, 0.1, 0.2;
  for (std::uint64_t seed : {7u, 8u, 9u, 10u}) {
    pcgrad pc(seed);
    std::mt19937_64 rng(seed);  // the reference draws the same orders
    for (int step = 0; step < 3; ++step) {
      Eigen::VectorXd expected = Eigen::VectorXd::Zero(5);
      for (int i = 0; i < 3; ++i) {
        std::vector<Eigen::Index> order{0, 1, 2};
        for (std::size_t n = 3; n > 1; --n) std::swap(order[n - 1], order[static_cast<std::size_t>(rng() % n)]);
        Eigen::VectorXd gi = g.row(i).transpose();
        for (Eigen::Index j : order) {
          if (j == i) continue;
          const Eigen::VectorXd gj = g.row(j).transpose();
          const double d = gi.dot(gj);
          if (d < 0) gi -= d / gj.squaredNorm() * gj;
        }
        expected += gi;
      }
      const auto got = combine(pc, g);
      for (int c = 0; c < 5; ++c) CHECK(got[c] == doctest::Approx(expected[c]).epsilon(1e-12));
    }
  }
}

TEST_CASE("PCGrad with one task is the identity, and a zero gradient is no obstacle") {
  gradient_matrix<double> one(1, 3);
  one << 1, -2, 3;
  pcgrad pc;
  CHECK(combine(pc, one).isApprox(one.row(0).transpose()));
  gradient_matrix<double> g(2, 2);
  g << 0, 0, 1, -1;
  const auto d = combine(pc, g);
  CHECK(d[0] == 1.0);
  CHECK(d[1] == -1.0);
}

}  // namespace HYBRID_TEST_UNIT
