// Tabular encoder: contract, shapes, names, standardization, values against a naive loop, gradients
// (double, tiny config), and a quick fit of iris (or a synthetic stand-in) with a linear head.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/tabular.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/optim/adam.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

constexpr enc::tabular_config small{.features = 4, .hidden = 16, .layers = 3, .width = 8, .dropout = 0.1};
static_assert(enc::encoder<enc::tabular<small>>);
static_assert(enc::tabular<small>::width == 8);
static_assert(!enc::tabular<small>::sequence_output);

TEST_CASE("tabular: shapes, names, dropout only in training") {
  enc::tabular<small> m;
  std::vector<std::string> names;
  m.visit("table", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  CHECK(names == std::vector<std::string>{"table.layers.0.weight", "table.layers.0.bias", "table.layers.1.weight",
                                          "table.layers.1.bias", "table.layers.2.weight", "table.layers.2.bias"});
  CHECK(count_parameters(m) == (4 * 16 + 16) + (16 * 16 + 16) + (16 * 8 + 8));
  enc::dense_input in{tensor<float>({5, 4})};
  std::mt19937 rng(1);
  fill_uniform(in.values, rng);
  tape::current().reset();
  dropout_rng d{.seed = 3};
  auto eval = m(in, d, false);
  CHECK(!eval.sequence.valid());
  REQUIRE(eval.pooled.shape() == hybrid::shape{5, 8});
  for (float v : eval.pooled.values()) CHECK(v >= 0);  // the last layer is activated (ReLU)
  auto train = m(in, d, true);
  CHECK(!std::equal(train.pooled.values().begin(), train.pooled.values().end(), eval.pooled.values().begin()));
  enc::tabular_model<float> one({.features = 3, .layers = 1, .width = 2});
  CHECK(count_parameters(one) == 3 * 2 + 2);
}

TEST_CASE("tabular: standardization statistics and values against a naive loop") {
  const tensor<float> data({4, 3}, {1, 10, 5, 3, 20, 5, 5, 30, 5, 7, 40, 5});
  const auto s = enc::compute_standardization(data);
  CHECK(s.mean == std::vector<float>{4, 25, 5});
  CHECK(s.std[0] == doctest::Approx(std::sqrt(5.0)));
  CHECK(s.std[1] == doctest::Approx(std::sqrt(125.0)));
  CHECK(s.std[2] == 1.0f);  // constant feature

  enc::tabular_model<double> m({.features = 3, .layers = 1, .width = 2, .dropout = 0, .activation = layers::activation::gelu});
  m.set_standardization(s);
  tape::current().reset();
  dropout_rng d;
  auto y = m({data}, d, false).pooled;
  auto& l = m.mlp().layer(0);
  for (index_t n = 0; n < 4; ++n)
    for (index_t o = 0; o < 2; ++o) {
      double z = l.bias().value()[o];
      for (index_t f = 0; f < 3; ++f)
        z += l.weight().value()(o, f) * ((double(data(n, f)) - s.mean[std::size_t(f)]) / double(s.std[std::size_t(f)]));
      CHECK(y[n * 2 + o] == doctest::Approx(0.5 * z * (1 + std::erf(z / std::sqrt(2.0)))).epsilon(1e-6));
    }
  CHECK_THROWS_AS(m.set_standardization({{1, 2}, {1, 1}}), shape_error);
  CHECK_THROWS_AS(m.set_standardization({{1, 2, 3}, {1, 0, 1}}), std::invalid_argument);
  CHECK_THROWS_AS(enc::compute_standardization(tensor<float>({0, 3})), shape_error);
}

TEST_CASE("tabular gradients match finite differences (double, tiny config)") {
  for (auto act : {layers::activation::relu, layers::activation::gelu})
    for (bool standardize : {false, true}) {
      CAPTURE(static_cast<int>(act));
      CAPTURE(standardize);
      enc::tabular_model<double> m({.features = 3, .hidden = 4, .layers = 2, .width = 3, .dropout = 0, .activation = act});
      std::mt19937 rng(5);
      auto ps = parameters_of(m);
      for (auto* p : ps) fill_uniform(p->value(), rng, -1, 1);
      enc::dense_input in{tensor<float>({5, 3})};
      fill_uniform(in.values, rng, -2, 2);
      if (standardize) m.set_standardization(enc::compute_standardization(in.values));
      dropout_rng d;
      auto r = check_gradients([&] { return m(in, d, false).pooled; }, ps, {.rtol = 1e-5});
      INFO(r.report());
      CHECK(r.ok);
    }
}

TEST_CASE("tabular shape errors name both shapes") {
  enc::tabular<small> m;
  dropout_rng d;
  tape::current().reset();
  try {
    m({tensor<float>({2, 5}, 0.0f)}, d, false);
    FAIL("no shape_error");
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("[2, 5]") != std::string::npos);
    CHECK(std::string(e.what()).find("[4]") != std::string::npos);
  }
  CHECK_THROWS_AS(m({tensor<float>({8}, 0.0f)}, d, false), shape_error);
  CHECK_THROWS_AS(enc::tabular_model<float>({.layers = 0}), std::invalid_argument);
}

namespace {
// scikit-learn's iris.csv: a header line "150,4,setosa,versicolor,virginica", then "5.1,3.5,1.4,0.2,0".
bool load_iris(const std::filesystem::path& p, tensor<float>& x, std::vector<std::int32_t>& y) {
  std::ifstream f(p);
  if (!f) return false;
  std::string line;
  std::getline(f, line);
  std::vector<float> v;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    std::replace(line.begin(), line.end(), ',', ' ');
    std::istringstream s(line);
    float a, b, c, d;
    int label;
    if (!(s >> a >> b >> c >> d >> label)) return false;
    v.insert(v.end(), {a, b, c, d});
    y.push_back(label);
  }
  x = tensor<float>::from({static_cast<index_t>(y.size()), 4}, v);
  return y.size() == 150;
}
// Three Gaussian classes in 4-D with features on very different scales (so standardization matters).
void synthetic(tensor<float>& x, std::vector<std::int32_t>& y) {
  std::mt19937 rng(11);
  std::normal_distribution<float> noise(0, 1);
  const float centre[3][4] = {{0, 0, 0, 0}, {3, -2, 1, 2}, {-2, 3, 3, -1}};
  const float scale[4] = {1, 100, 0.01f, 10};
  x = tensor<float>({150, 4});
  y.clear();
  for (index_t n = 0; n < 150; ++n) {
    const int c = static_cast<int>(n % 3);
    for (index_t f = 0; f < 4; ++f) x(n, f) = (centre[c][f] + 0.6f * noise(rng)) * scale[f] + 5 * scale[f];
    y.push_back(c);
  }
}
}  // namespace

TEST_CASE("tabular encoder + linear head fits iris (or a synthetic stand-in) to >= 95% train accuracy") {
  const auto start = std::chrono::steady_clock::now();
  tensor<float> x;
  std::vector<std::int32_t> y;
  // Debian's python3-sklearn ships iris.csv; HYBRID_IRIS_CSV may point at another copy.
  const char* env = std::getenv("HYBRID_IRIS_CSV");
  const std::filesystem::path iris = env ? env : "/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv";
  if (load_iris(iris, x, y)) {
    MESSAGE("fitting scikit-learn's iris.csv from " << iris.string());
  } else {
    MESSAGE("iris.csv not found (Debian package python3-sklearn); fitting synthetic 3-class data instead");
    synthetic(x, y);
  }
  enc::tabular_model<float> m({.features = 4, .hidden = 16, .layers = 2, .width = 16, .dropout = 0});
  m.set_standardization(enc::compute_standardization(x));
  layers::linear<float> head(16, 3);
  std::mt19937 rng(7);
  head.init(rng);
  auto ps = parameters_of(m);
  ps.push_back(&head.weight());
  ps.push_back(&head.bias());
  optim::adam<float> opt(ps, {.lr = 0.02});
  dropout_rng d;
  double accuracy = 0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    var<float> logits = head(m({x}, d, true).pooled);
    int correct = 0;
    for (index_t n = 0; n < 150; ++n) {
      const float* row = logits.data() + n * 3;
      correct += static_cast<int>(std::max_element(row, row + 3) - row) == y[static_cast<std::size_t>(n)];
    }
    accuracy = correct / 150.0;
    if (accuracy >= 0.99) break;
    cross_entropy(logits, y).backward();
    opt.step();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("train accuracy " << accuracy << " in " << seconds << " s");
  CHECK(accuracy >= 0.95);
}

}  // namespace HYBRID_TEST_UNIT
