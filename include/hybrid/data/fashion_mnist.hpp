// Fashion-MNIST (Zalando, MIT; Debian dataset-fashion-mnist) from the IDX files scripts/data/fashion_mnist.sh
// unpacks to data/fashion-mnist/: 60,000 training and 10,000 test 28x28 greyscale images, 10 classes.
// Images come out as float [N, 784] in [0, 1] (byte / 255, rows of the image concatenated), labels as int32.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/core/tensor.hpp"
#include "hybrid/data/data_dir.hpp"
#include "hybrid/io/idx.hpp"

namespace hybrid::data {

inline constexpr std::array<std::string_view, 10> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

struct fashion_mnist_options {
  index_t train_size = 0;  // keep the first n training images (0: all 60,000)
  index_t test_size = 0;   // keep the first n test images (0: all 10,000)
};

struct fashion_mnist_split {
  tensor<float> images;              // [N, 784], values in [0, 1]
  std::vector<std::int32_t> labels;  // N values in [0, 10)
  index_t size() const { return static_cast<index_t>(labels.size()); }
};

struct fashion_mnist {
  fashion_mnist_split train, test;
  static constexpr index_t height = 28, width = 28, pixels = 784, classes = 10;
};

namespace detail {

HYBRID_DECL fashion_mnist_split load_fashion_mnist_split(const std::filesystem::path& dir, const std::string& prefix,
                                                         index_t keep);

}  // namespace detail

// Loads both splits (about 0.3 s for all 70,000 images; 220 MB of floats).
inline fashion_mnist load_fashion_mnist(const std::filesystem::path& dir = default_data_dir() / "fashion-mnist",
                                        const fashion_mnist_options& opt = {}) {
  return {detail::load_fashion_mnist_split(dir, "train", opt.train_size),
          detail::load_fashion_mnist_split(dir, "t10k", opt.test_size)};
}
inline fashion_mnist load_fashion_mnist(const fashion_mnist_options& opt) {
  return load_fashion_mnist(default_data_dir() / "fashion-mnist", opt);
}

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL fashion_mnist_split detail::load_fashion_mnist_split(const std::filesystem::path& dir,
                                                                 const std::string& prefix, index_t keep) {
  const auto image_file = dir / (prefix + "-images-idx3-ubyte");
  const auto label_file = dir / (prefix + "-labels-idx1-ubyte");
  for (const auto& f : {image_file, label_file})
    if (!std::filesystem::exists(f))
      throw data_missing(f, "Fashion-MNIST");
  const io::idx_array images = io::read_idx(image_file);
  const io::idx_array labels = io::read_idx(label_file);
  if (images.dims.size() != 3 || images.dims[1] != 28 || images.dims[2] != 28)
    throw std::runtime_error(image_file.string() + ": expected dims {N, 28, 28}, got " +
                             io::detail::idx_dims_text(images.dims));
  if (labels.dims.size() != 1 || labels.dims[0] != images.dims[0])
    throw std::runtime_error(label_file.string() + ": expected dims {" + std::to_string(images.dims[0]) + "}, got " +
                             io::detail::idx_dims_text(labels.dims));
  const auto& px = images.as<std::uint8_t>();
  const auto& lb = labels.as<std::uint8_t>();
  const auto total = static_cast<index_t>(images.dims[0]);
  if (keep < 0 || keep > total)
    throw std::invalid_argument("load_fashion_mnist: subset of " + std::to_string(keep) + " " + prefix +
                                " images asked, the file has " + std::to_string(total));
  const index_t n = keep == 0 ? total : keep;
  fashion_mnist_split s;
  s.images = tensor<float>(shape{n, fashion_mnist::pixels});
  std::transform(px.begin(), px.begin() + n * fashion_mnist::pixels, s.images.begin(),
                 [](std::uint8_t v) { return static_cast<float>(v) / 255.0f; });
  s.labels.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const std::uint8_t l = lb[static_cast<std::size_t>(i)];
    if (l >= fashion_mnist::classes)
      throw std::runtime_error(label_file.string() + ": label " + std::to_string(l) + " of item " +
                               std::to_string(i) + " is not a class in [0, 10)");
    s.labels[static_cast<std::size_t>(i)] = l;
  }
  return s;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::data
