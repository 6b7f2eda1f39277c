// libFuzzer target: read_png on arbitrary bytes in one of the four pixel formats (chosen by the input's size,
// so the PNG bytes stay untouched), then to_chw and a box and a bilinear resize of small images.
#include <hybrid/io/png.hpp>

#include <cmath>
#include <exception>

#include "fuzz_common.hpp"

using namespace hybrid;
using namespace hybrid::io;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto format = static_cast<pixel_format>(1 + size % 4);
    const image8 img = read_png(fuzz::bytes(data, size), format, "fuzz");
    FUZZ_CHECK(img.width > 0 && img.height > 0 && img.channels == static_cast<int>(format));
    FUZZ_CHECK(img.pixels.size() == static_cast<std::size_t>(img.width) * img.height * img.channels);
    if (static_cast<std::size_t>(img.width) * img.height <= 4096) {
      const tensor<float> chw = to_chw(img, size % 8 < 4 ? alpha_mode::white : alpha_mode::channel);
      for (float v : chw) FUZZ_CHECK(v >= 0.0f && v <= 1.0f + 1e-6f);
      for (auto filter : {resize_filter::box, resize_filter::bilinear}) {
        const tensor<float> small = resize_image(chw, 5, 7, filter);
        for (float v : small) FUZZ_CHECK(std::isfinite(v) && v >= -1e-5f && v <= 1.0f + 1e-5f);
      }
    }
  } catch (const std::exception&) {
  }
  return 0;
}
