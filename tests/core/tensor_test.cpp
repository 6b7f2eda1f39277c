// tensor<T> and shape: 64-byte alignment, rank limits, row-major indexing, views that share storage (reshape,
// slice), deep clones, Eigen maps, and the errors for bad shapes and values.
#include <doctest/doctest.h>

#include <cstdint>
#include <hybrid/core/tensor.hpp>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("shape: rank 0 to 4, numel, rows/cols, negative axes, dropped/with, str; bad shapes throw") {
  CHECK(shape{}.rank() == 0);
  CHECK(shape{}.numel() == 1);
  const shape s{2, 3, 4, 5};
  CHECK(s.rank() == 4);
  CHECK(s.numel() == 120);
  CHECK(s.cols() == 5);
  CHECK(s.rows() == 24);
  CHECK(s.dim(-1) == 5);
  CHECK(s.dim(-4) == 2);
  CHECK(s.dropped(1) == shape{2, 4, 5});
  CHECK(s.with(0, 7) == shape{7, 3, 4, 5});
  CHECK(s.str() == "[2, 3, 4, 5]");
  CHECK(shape{3, 0}.numel() == 0);
  CHECK_THROWS_WITH_AS(shape({1, 2, 3, 4, 5}), doctest::Contains("rank above 4"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(shape({2, -1}), doctest::Contains("negative dimension"), std::invalid_argument);
  const std::vector<index_t> five{1, 1, 1, 1, 1};
  CHECK_THROWS_AS(shape::from_range(five.begin(), five.end()), std::invalid_argument);
}

TEST_CASE("tensor: 64-byte aligned storage, row-major indexing, fill and value constructors") {
  for (index_t n : {1, 3, 17, 1000}) {
    tensor<float> f({n});
    tensor<double> d({n, 2});
    CHECK(reinterpret_cast<std::uintptr_t>(f.data()) % 64 == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(d.data()) % 64 == 0);
  }
  tensor<double> t({2, 3, 4}, 0.0);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = double(i);
  CHECK(t(1, 2, 3) == 23);
  CHECK(t(0, 1, 0) == 4);
  CHECK(t.rank() == 3);
  CHECK(t.dim(-1) == 4);
  tensor<float> v({2, 2}, {1, 2, 3, 4});
  CHECK(v(1, 0) == 3);
  CHECK(tensor<float>::zeros({3})[2] == 0);
  CHECK(tensor<int>({2}, 7)[1] == 7);
  CHECK(tensor<float>().empty());
  const std::vector<float> vals{1, 2, 3};
  CHECK(tensor<float>::from({3}, vals)[2] == 3);
  CHECK_THROWS_WITH_AS(tensor<float>({2, 2}, {1, 2, 3}), doctest::Contains("3 values given for shape [2, 2]"), shape_error);
  CHECK_THROWS_AS(tensor<float>::from({2}, vals), shape_error);
}

TEST_CASE("tensor: copies and views share storage, clone does not") {
  tensor<float> a({2, 3}, {1, 2, 3, 4, 5, 6});
  tensor<float> alias = a;  // cheap: shared storage
  alias[0] = 10;
  CHECK(a[0] == 10);
  tensor<float> deep = a.clone();
  deep[1] = 20;
  CHECK(a[1] == 2);
  CHECK(deep.data() != a.data());

  tensor<float> r = a.reshaped({3, 2});
  CHECK(r.shape() == shape{3, 2});
  CHECK(r.data() == a.data());
  r(2, 1) = 60;
  CHECK(a(1, 2) == 60);
  CHECK_THROWS_WITH_AS(a.reshaped({4, 2}), doctest::Contains("[2, 3]"), shape_error);

  tensor<float> rows = a.slice(1, 1);  // the second row, a view
  CHECK(rows.shape() == shape{1, 3});
  CHECK(rows[0] == 4);
  rows[1] = 50;
  CHECK(a(1, 1) == 50);
  CHECK(a.slice(2, 0).numel() == 0);
  CHECK_THROWS_WITH_AS(a.slice(1, 2), doctest::Contains("out of range for shape [2, 3]"), shape_error);
  CHECK_THROWS_AS(a.slice(-1, 1), shape_error);

  // The storage outlives the tensor it came from.
  tensor<float> kept;
  {
    tensor<float> tmp({4}, {1, 2, 3, 4});
    kept = tmp.reshaped({2, 2});
  }
  CHECK(kept(1, 1) == 4);
}

TEST_CASE("tensor: Eigen maps are the row-major matrix and vector over the same memory") {
  tensor<double> t({2, 2, 3}, 0.0);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = double(i);
  auto m = t.matrix();
  CHECK(m.rows() == 4);
  CHECK(m.cols() == 3);
  CHECK(m(3, 2) == 11);
  m(0, 1) = -1;
  CHECK(t(0, 0, 1) == -1);
  CHECK(t.vector().sum() == doctest::Approx(66 - 1 - 1));
  const tensor<double>& c = t;
  CHECK(c.matrix()(1, 0) == 3);
}

}  // namespace HYBRID_TEST_UNIT
