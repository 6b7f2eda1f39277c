// Built with nothing but `c++ $(pkg-config --cflags --libs hybrid)`: the flags alone must be enough.
#include <hybrid/io/safetensors.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/version.hpp>

#include <cstdio>

int main() {
  using namespace hybrid;
  const tensor<float> a({2, 2}, {1, 2, 3, 4});
  const var<float> c = matmul(constant(a), constant(a));
  std::printf("hybrid %s via pkg-config: [[1,2],[3,4]]^2 = [[%g,%g],[%g,%g]]\n", version_string, c.data()[0],
              c.data()[1], c.data()[2], c.data()[3]);
  return c.data()[0] == 7 && c.data()[3] == 22 ? 0 : 1;
}
