// libFuzzer target: read_wav on arbitrary bytes (samples must come out finite, in [-1, 1]), then the
// resampler on what was decoded, as the audio data path does.
#include <hybrid/io/wav.hpp>

#include <cmath>
#include <exception>

#include "fuzz_common.hpp"

using namespace hybrid::io;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const wav_audio a = read_wav(fuzz::bytes(data, size), "fuzz");
    FUZZ_CHECK(a.sample_rate > 0 && a.channels > 0);
    for (float s : a.samples) FUZZ_CHECK(std::isfinite(s) && s >= -1.0f && s <= 1.0f);
    // The resampler's cost is proportional to its output: keep a fuzz iteration short.
    constexpr int to = 16000;
    if (static_cast<double>(a.samples.size()) * to / a.sample_rate < 65536) {
      const std::vector<float> y = resample(a.samples, a.sample_rate, to);
      for (float s : y) FUZZ_CHECK(std::isfinite(s));
    }
  } catch (const std::exception&) {
  }
  return 0;
}
