// gemm::avx512 and the default gemm::fastest: values against a double reference (all transposes, edge sizes,
// alpha/beta, leading dimensions, C not read when beta == 0), serial/tbb bitwise equality, the fallback path.
#include <doctest/doctest.h>

#include <array>

#include <cmath>
#include <cstdlib>
#include <hybrid/backend/gemm.hpp>
#include <limits>
#include <random>
#include <string>
#include <tbb/global_control.h>
#include <tuple>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

struct gemm_problem {
  bool ta, tb;
  index_t m, n, k, lda, ldb, ldc;
  std::vector<float> a, b;
  std::vector<double> prod, mag;  // op(A) op(B) in double, and sum |a||b| per element (the error scale)
  gemm_problem(bool ta_, bool tb_, index_t m_, index_t n_, index_t k_, std::mt19937& rng)
      : ta(ta_), tb(tb_), m(m_), n(n_), k(k_) {
    lda = (ta ? m : k) + 3;  // leading dimensions larger than the widths
    ldb = (tb ? k : n) + 5;
    ldc = n + 2;
    std::uniform_real_distribution<float> u(-1, 1);
    a.resize(static_cast<std::size_t>((ta ? k : m) * lda));
    b.resize(static_cast<std::size_t>((tb ? n : k) * ldb));
    for (float& v : a) v = u(rng);
    for (float& v : b) v = u(rng);
    prod.assign(static_cast<std::size_t>(m * n), 0.0);
    mag.assign(static_cast<std::size_t>(m * n), 0.0);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        double s = 0, g = 0;
        for (index_t p = 0; p < k; ++p) {
          const double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
          s += x * y;
          g += std::abs(x * y);
        }
        prod[i * n + j] = s;
        mag[i * n + j] = g;
      }
  }
};

// Runs Policy on p with alpha, beta; C starts as NaN (beta == 0: must not be read) or random values; the
// padding between rows (ldc > n) must stay untouched. Returns the number of wrong elements.
template <class Policy, class Exec>
int check(const gemm_problem& p, float alpha, float beta, std::mt19937& rng, bool use_tile = false) {
  const float pad = 12345.f;
  std::vector<float> c(static_cast<std::size_t>(std::max<index_t>(p.m, 1) * p.ldc), pad);
  std::uniform_real_distribution<float> u(-1, 1);
  for (index_t i = 0; i < p.m; ++i)
    for (index_t j = 0; j < p.n; ++j) c[i * p.ldc + j] = beta == 0.f ? std::numeric_limits<float>::quiet_NaN() : u(rng);
  const std::vector<float> c0 = c;
  if (use_tile)
    Policy::template tile<float>(p.ta, p.tb, p.m, p.n, p.k, alpha, p.a.data(), p.lda, p.b.data(), p.ldb, beta, c.data(),
                                 p.ldc);
  else
    Policy::template run<float, Exec>(p.ta, p.tb, p.m, p.n, p.k, alpha, p.a.data(), p.lda, p.b.data(), p.ldb, beta,
                                      c.data(), p.ldc);
  int bad = 0;
  for (index_t i = 0; i < p.m; ++i) {
    for (index_t j = 0; j < p.n; ++j) {
      const std::size_t e = static_cast<std::size_t>(i * p.n + j), at = static_cast<std::size_t>(i * p.ldc + j);
      const double old = beta == 0.f ? 0.0 : c0[at];
      const double want = alpha * p.prod[e] + beta * old;
      const double tol = 1e-5 * (std::abs(alpha) * p.mag[e] + std::abs(beta * old)) + 1e-30;
      if (!(std::abs(c[at] - want) <= tol)) ++bad;
    }
    for (index_t j = p.n; j < p.ldc; ++j) bad += c[i * p.ldc + j] != pad;
  }
  return bad;
}

template <class Policy>
void check_all(const char* label) {
  std::mt19937 rng(11);
  const std::vector<std::tuple<index_t, index_t, index_t>> sizes = {
      {1, 1, 1},      {1, 1, 0},       {7, 17, 33},   {17, 7, 1},    {33, 100, 17},
      {100, 33, 257}, {257, 100, 33},  {1, 257, 100}, {257, 1, 100}, {100, 257, 0},
      {33, 33, 513},  {257, 257, 257}, {14, 32, 384}, {15, 33, 385}, {29, 65, 1000}};
  const std::vector<std::pair<float, float>> scalings = {{1.f, 0.f}, {1.5f, 0.f}, {1.f, 1.f}, {-0.75f, 0.5f}};
  int cases = 0;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const auto& size : sizes) {
        // Plain variables, not structured bindings: clang 14 cannot capture those in CAPTURE's lambda.
        const index_t m = std::get<0>(size), n = std::get<1>(size), k = std::get<2>(size);
        const gemm_problem p(ta, tb, m, n, k, rng);
        for (const auto& scaling : scalings) {
          const float alpha = scaling.first, beta = scaling.second;
          CAPTURE(label);
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(m);
          CAPTURE(n);
          CAPTURE(k);
          CAPTURE(alpha);
          CAPTURE(beta);
          CHECK(check<Policy, exec::tbb>(p, alpha, beta, rng) == 0);
          CHECK(check<Policy, exec::serial>(p, alpha, beta, rng, /*use_tile=*/true) == 0);
          ++cases;
        }
      }
  CHECK(cases == 4 * 15 * 4);
}

TEST_CASE("gemm::avx512 matches a double reference: transposes, edge sizes, alpha, beta, leading dimensions") {
  if (!gemm::avx512::active())
    MESSAGE("this CPU has no AVX-512: the AVX-512 kernel was NOT exercised, only its fallback ("
            << gemm::avx512::fallback::name << ")");
  check_all<gemm::avx512>("avx512");
  check_all<gemm::fastest>("fastest");
  // A fallback chosen explicitly, and double, which always goes to the fallback.
  check_all<gemm::avx512_or<gemm::eigen>>("avx512_or<eigen>");
  std::mt19937 rng(5);
  const gemm_problem p(true, false, 33, 20, 50, rng);
  std::vector<double> a(p.a.begin(), p.a.end()), b(p.b.begin(), p.b.end()), c(static_cast<std::size_t>(33 * p.ldc));
  gemm::avx512::run<double, exec::tbb>(true, false, 33, 20, 50, 2.0, a.data(), p.lda, b.data(), p.ldb, 0.0, c.data(),
                                       p.ldc);
  double worst = 0;
  for (index_t i = 0; i < 33; ++i)
    for (index_t j = 0; j < 20; ++j) worst = std::max(worst, std::abs(c[i * p.ldc + j] - 2 * p.prod[i * 20 + j]));
  CHECK(worst < 1e-12);
}

TEST_CASE("gemm::avx512: serial and tbb bitwise identical, independent of the tiling") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  // A large product (row and column tiles), two batch-1-like ones (M <= 256: column tiles only, three K blocks or
  // one), and a tall one (four row tiles, N not a multiple of the panel width, two K blocks). Where several row tiles
  // run on several threads, op(B) is packed once for all of them (run_dense); where only column tiles do, op(A) is
  // (shared_a): still the same bits.
  for (const auto& size : {std::array<index_t, 3>{700, 600, 800}, std::array<index_t, 3>{128, 256, 1024},
                           std::array<index_t, 3>{200, 700, 300}, std::array<index_t, 3>{1024, 250, 500}})
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const index_t M = size[0], N = size[1], K = size[2];  // not a structured binding: clang 14 cannot capture one
      CAPTURE(ta);
      CAPTURE(tb);
      CAPTURE(M);
      std::vector<float> a(static_cast<std::size_t>(M * K)), b(static_cast<std::size_t>(K * N));
      for (float& v : a) v = u(rng);
      for (float& v : b) v = u(rng);
      const index_t lda = ta ? M : K, ldb = tb ? K : N;
      auto product = [&](auto&& f) {
        std::vector<float> c(static_cast<std::size_t>(M * N), 0.25f);
        f(c.data());
        return c;
      };
      const auto par = product([&](float* c) {
        gemm::avx512::run<float, exec::tbb>(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 1.f, c, N);
      });
      const auto ser = product([&](float* c) {
        gemm::avx512::run<float, exec::serial>(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 1.f, c, N);
      });
      CHECK(par == ser);
      const auto def_par = product([&](float* c) {
        gemm::fastest::run<float, exec::tbb>(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 1.f, c, N);
      });
      const auto def_ser = product([&](float* c) {
        gemm::fastest::run<float, exec::serial>(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 1.f, c, N);
      });
      CHECK(def_par == def_ser);
      if (gemm::avx512::active()) {  // one call over the whole product gives the same bits as the tiles
        const auto whole = product([&](float* c) {
          gemm::avx512::tile<float>(ta, tb, M, N, K, 0.5f, a.data(), lda, b.data(), ldb, 1.f, c, N);
        });
        CHECK(whole == par);
      }
    }
}

TEST_CASE("exec::tbb reports one thread under global_control, and the product keeps its bits") {
  CHECK(exec::serial::concurrency() == 1);
  CHECK(exec::tbb::concurrency() >= 1);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  const index_t M = 300, N = 260, K = 500;
  std::vector<float> a(static_cast<std::size_t>(M * K)), b(static_cast<std::size_t>(K * N));
  for (float& v : a) v = u(rng);
  for (float& v : b) v = u(rng);
  auto product = [&] {
    std::vector<float> c(static_cast<std::size_t>(M * N));
    gemm::avx512::run<float, exec::tbb>(false, true, M, N, K, 1.f, a.data(), K, b.data(), K, 0.f, c.data(), N);
    return c;
  };
  const auto tiled = product();
  std::vector<float> one_thread;
  {
    ::tbb::global_control limit(::tbb::global_control::max_allowed_parallelism, 1);
    CHECK(exec::tbb::concurrency() == 1);  // gemm::avx512 then runs the product as one call
    one_thread = product();
  }
  CHECK(one_thread == tiled);
}

TEST_CASE("gemm::fastest picks the AVX-512 kernel wherever the CPU has AVX-512, unless HYBRID_GEMM says otherwise") {
  const std::string chosen = gemm::fastest::chosen(), fallback = gemm::fastest::fallback::name;
  const char* requested = std::getenv("HYBRID_GEMM");
  MESSAGE("default GEMM policy for float: " << chosen << " (CPU AVX-512: " << gemm::avx512::active()
                                            << ", HYBRID_GEMM: " << std::string(requested ? requested : "unset")
                                            << ")");
  CHECK(std::string(gemm::default_policy::name) == "fastest");
  CHECK(chosen == (gemm::fastest_takes_avx512(requested, gemm::avx512::active(), fallback.c_str()) ? "avx512"
                                                                                                  : fallback));
  // The rule itself, on either kind of CPU.
  CHECK(gemm::fastest_takes_avx512(nullptr, true, "openblas"));
  CHECK_FALSE(gemm::fastest_takes_avx512(nullptr, false, "openblas"));
  CHECK(gemm::fastest_takes_avx512("", true, "openblas"));
  CHECK(gemm::fastest_takes_avx512("avx512", true, "openblas"));
  CHECK_FALSE(gemm::fastest_takes_avx512("openblas", true, "openblas"));
  CHECK_FALSE(gemm::fastest_takes_avx512("eigen", true, "eigen"));
  CHECK_THROWS_WITH_AS(gemm::fastest_takes_avx512("avx512", false, "openblas"),
                       "HYBRID_GEMM=avx512: this CPU (or build) has no AVX-512 kernel", std::invalid_argument);
  CHECK_THROWS_WITH_AS(gemm::fastest_takes_avx512("eigen", true, "openblas"),
                       "HYBRID_GEMM=eigen: expected \"avx512\" or \"openblas\"", std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
