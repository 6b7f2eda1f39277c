#include <hybrid/data/fashion_mnist.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using hybrid::index_t;
using hybrid::shape;
using namespace hybrid::data;

namespace {

const fs::path dir = fs::path(HYBRID_DATA_DIR) / "fashion-mnist";

void require_data() {
  REQUIRE_MESSAGE(fs::exists(dir / "train-images-idx3-ubyte"),
                  (dir / "train-images-idx3-ubyte").string() << " is missing: run scripts/fetch_data.sh");
}

}  // namespace

TEST_CASE("fashion_mnist: full splits, shapes, values and labels") {
  require_data();
  const auto t0 = std::chrono::steady_clock::now();
  const fashion_mnist d = load_fashion_mnist();
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  MESSAGE("load_fashion_mnist: 70,000 images in " << dt.count() << " s");
  REQUIRE(d.train.images.shape() == shape{60000, 784});
  REQUIRE(d.test.images.shape() == shape{10000, 784});
  CHECK(d.train.size() == 60000);
  CHECK(d.test.size() == 10000);
  for (const auto* s : {&d.train, &d.test}) {
    const auto [lo, hi] = std::minmax_element(s->images.begin(), s->images.end());
    CHECK(*lo == 0.0f);
    CHECK(*hi == 1.0f);
    // Every value is a byte / 255.
    for (index_t i = 0; i < s->images.numel(); i += 997) {
      const float v = s->images[i] * 255.0f;
      CHECK(v == doctest::Approx(static_cast<float>(static_cast<int>(v + 0.5f))).epsilon(1e-5));
    }
  }
  // Balanced classes: 6,000 and 1,000 of each.
  std::array<index_t, 10> train_counts{}, test_counts{};
  for (auto l : d.train.labels) ++train_counts.at(static_cast<std::size_t>(l));
  for (auto l : d.test.labels) ++test_counts.at(static_cast<std::size_t>(l));
  for (std::size_t c = 0; c < 10; ++c) {
    CHECK(train_counts[c] == 6000);
    CHECK(test_counts[c] == 1000);
  }
  // The first image of each file is an ankle boot; its mean brightness is that of a real picture.
  CHECK(d.train.labels[0] == 9);
  CHECK(d.test.labels[0] == 9);
  CHECK(fashion_mnist_classes[9] == "Ankle boot");
  float mean = 0;
  for (index_t p = 0; p < 784; ++p) mean += d.train.images(0, p) / 784.0f;
  CHECK(mean > 0.1f);
  CHECK(mean < 0.7f);
  // Rows are images: the border of a centred object is black.
  CHECK(d.train.images(0, 0) == 0.0f);

  SUBCASE("subsets are the first n items") {
    const fashion_mnist s = load_fashion_mnist(fashion_mnist_options{.train_size = 1000, .test_size = 200});
    REQUIRE(s.train.images.shape() == shape{1000, 784});
    REQUIRE(s.test.images.shape() == shape{200, 784});
    CHECK(std::equal(s.train.images.begin(), s.train.images.end(), d.train.images.begin()));
    CHECK(std::equal(s.test.images.begin(), s.test.images.end(), d.test.images.begin()));
    CHECK(std::equal(s.train.labels.begin(), s.train.labels.end(), d.train.labels.begin()));
    CHECK(s.test.labels.size() == 200);
  }
}

TEST_CASE("fashion_mnist: errors") {
  require_data();
  CHECK_THROWS_AS((void)load_fashion_mnist(fashion_mnist_options{.train_size = 60001}), std::invalid_argument);
  CHECK_THROWS_AS((void)load_fashion_mnist(fashion_mnist_options{.test_size = -1}), std::invalid_argument);
  try {
    (void)load_fashion_mnist(fs::path("/nonexistent/fashion-mnist"));
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("run scripts/fetch_data.sh") != std::string::npos);
  }
}

}  // namespace HYBRID_TEST_UNIT
