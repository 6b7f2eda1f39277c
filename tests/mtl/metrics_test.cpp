// Metrics against hand-computed values (scikit-learn conventions) and Delta_p.
#include <doctest/doctest.h>

#include <hybrid/mtl/metrics.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace hybrid::mtl;

TEST_CASE("argmax, accuracy and macro-F1") {
  const tensor<float> logits({3, 3}, {0.1f, 2, 1, 5, 5, 0, -1, -2, -0.5f});
  CHECK(argmax_rows(logits) == std::vector<std::int32_t>{1, 0, 2});  // the first maximum on ties

  const std::vector<std::int32_t> labels{0, 0, 1, 1, 2, 2, -100}, pred{0, 1, 1, 1, 2, 0, 1};
  CHECK(accuracy(pred, labels) == doctest::Approx(4.0 / 6));
  // F1: class 0 = 2/(2+1+1) = 0.5, class 1 = 4/5, class 2 = 2/3 (sklearn: 0.6555...).
  CHECK(macro_f1(pred, labels) == doctest::Approx((0.5 + 0.8 + 2.0 / 3) / 3));
  // A class only ever predicted counts, with F1 = 0.
  const std::vector<std::int32_t> pred3{0, 3, 1, 1, 2, 0, 1};
  CHECK(macro_f1(pred3, labels) == doctest::Approx((0.5 + 1.0 + 2.0 / 3 + 0) / 4));
  CHECK(accuracy(std::vector<std::int32_t>{1}, std::vector<std::int32_t>{-100}) == 0.0);
  CHECK_THROWS_AS(accuracy(pred, std::vector<std::int32_t>{1}), std::invalid_argument);
}

TEST_CASE("MSE and MAE, with per-sample weights") {
  const std::vector<double> p{1, 2, 3, 4}, t{1.5, 2, 2, 6};
  CHECK(mse<double>(p, t) == doctest::Approx((0.25 + 0 + 1 + 4) / 4));
  CHECK(mae<double>(p, t) == doctest::Approx((0.5 + 0 + 1 + 2) / 4));
  // Two samples of two values; the second is unlabelled.
  const std::vector<float> w{1, 0};
  CHECK(mse<double>(p, t, w) == doctest::Approx(0.125));
  const std::vector<float> w3{1, 1, 1};
  CHECK_THROWS_AS(mse<double>(p, t, w3), std::invalid_argument);
}

TEST_CASE("Delta_p: the mean relative improvement, signed by whether lower is better") {
  // Accuracy 0.75 -> 0.8 (+6.67%), MSE 0.25 -> 0.2 (+20%): Delta_p = 13.33%.
  const std::vector<task_metric> t{{0.8, 0.75, false}, {0.2, 0.25, true}};
  CHECK(delta_p(t) == doctest::Approx((0.05 / 0.75 + 0.2) / 2));
  const std::vector<task_metric> worse{{0.7, 0.75, false}, {0.3, 0.25, true}};
  CHECK(delta_p(worse) < 0);
  CHECK_THROWS_AS(delta_p(std::vector<task_metric>{{1, 0, false}}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
