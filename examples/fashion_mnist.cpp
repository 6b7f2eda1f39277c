// Trains a 784-256-10 MLP on Fashion-MNIST (Debian dataset-fashion-mnist) and reports test accuracy.
// Usage: fashion_mnist [--epochs N] [--data DIR]
#include <cstring>
#include <iostream>

#include "fashion_mnist_mlp.hpp"

int main(int argc, char** argv) {
  int epochs = 5;
  std::filesystem::path dir = HYBRID_DATA_DIR "/fashion-mnist";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--data") && i + 1 < argc) dir = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) epochs = 1;
    else {
      std::cerr << "usage: fashion_mnist [--epochs N] [--data DIR] [--quick]\n";
      return 2;
    }
  }
  try {
    const auto train = fashion::load(dir, "train"), test = fashion::load(dir, "t10k");
    std::printf("Fashion-MNIST: %lld train, %lld test images; MLP 784-256-10, AdamW\n",
                static_cast<long long>(train.images.dim(0)), static_cast<long long>(test.images.dim(0)));
    fashion::mlp m(42);
    fashion::train(m, train, epochs, 128, [&](int epoch, double loss, double secs) {
      std::printf("epoch %d/%d  loss %.4f  test accuracy %.2f%%  (%.1f s, %.0f images/s)\n", epoch + 1, epochs, loss,
                  100.0 * fashion::accuracy(m, test), secs, static_cast<double>(train.images.dim(0)) / secs);
    });
    std::printf("final test accuracy: %.2f%%\n", 100.0 * fashion::accuracy(m, test));
  } catch (const std::exception& e) {
    std::cerr << "fashion_mnist: " << e.what() << "\n(run scripts/fetch_data.sh to fetch the data)\n";
    return 1;
  }
}
