// Real data: the Fashion-MNIST MLP of examples/ learns (short run on a subset; the full run is the example).
#include <doctest/doctest.h>

#include "../../examples/fashion_mnist_mlp.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

TEST_CASE("an MLP trained on a Fashion-MNIST subset reaches >= 80% test accuracy") {
  const std::filesystem::path dir = HYBRID_DATA_DIR "/fashion-mnist";
  REQUIRE_MESSAGE(std::filesystem::exists(dir / "train-images-idx3-ubyte"), "run scripts/fetch_data.sh first");
  const auto train = fashion::load(dir, "train", 20000), test = fashion::load(dir, "t10k");
  fashion::mlp m(42);
  std::vector<double> losses;
  fashion::train(m, train, 2, 100, [&](int, double loss, double) { losses.push_back(loss); });
  CHECK(losses[1] < losses[0]);
  const float acc = fashion::accuracy(m, test);
  MESSAGE("test accuracy after 2 epochs on 20k images: " << acc);
  CHECK(acc >= 0.80f);
}

}  // namespace HYBRID_TEST_UNIT
