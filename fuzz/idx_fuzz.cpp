// libFuzzer target: read_idx on arbitrary bytes; an accepted array holds exactly the product of its dims.
#include <hybrid/io/idx.hpp>

#include <exception>

#include "fuzz_common.hpp"

using namespace hybrid::io;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const idx_array a = read_idx(fuzz::bytes(data, size), "fuzz");
    std::uint64_t n = 1;
    for (std::uint32_t d : a.dims) n *= d;
    FUZZ_CHECK(!a.dims.empty() && a.size() == n);
    FUZZ_CHECK(size == 4 + 4 * a.dims.size() + n * idx_type_size(a.type()));
    if (a.type() == idx_type::f64) FUZZ_CHECK(a.as<double>().size() == n);
  } catch (const std::exception&) {
  }
  return 0;
}
