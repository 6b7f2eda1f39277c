// A user's program on the installed package's hybrid::cuda: one product through gemm::cublas where a GPU is
// present, checked against the CPU policy; without a GPU it only reports that (it must still compile and link).
#include <hybrid/backend/gemm_cublas.hpp>
#include <hybrid/ops/matmul.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace hybrid;
  if (!gemm::cublas::available()) {
    std::printf("hybrid::cuda linked; no CUDA device here, nothing run\n");
    return 0;
  }
  gemm::cublas::set_min_flops(0);  // even this tiny product on the GPU (by default small ones stay on the CPU)
  const tensor<float> a({2, 3}, {1, 2, 3, 4, 5, 6}), b({3, 2}, {1, 0, 0, 1, 1, 1});
  const var<float> gpu = matmul<gemm::cublas>(constant(a), constant(b)), cpu = matmul(constant(a), constant(b));
  for (index_t i = 0; i < 4; ++i)
    if (std::abs(gpu.data()[i] - cpu.data()[i]) > 1e-5f) {
      std::fprintf(stderr, "cuBLAS product differs at %ld\n", static_cast<long>(i));
      return 1;
    }
  std::printf("hybrid::cuda on %s: product ok\n", gemm::cublas::device_name().c_str());
  return 0;
}
