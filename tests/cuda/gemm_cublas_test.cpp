// gemm::cublas against the CPU policy on the same random inputs: every transpose, odd sizes, strided
// batches, the threshold, TF32, errors, and a small MLP trained on both. Without a CUDA device the
// GPU cases print "no CUDA device: skipped" and pass (doctest has no skip; they return early).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/backend/gemm_cublas.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/ops/matmul.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using gemm::cublas;
using gemm::cublas_math;
using cpu = gemm::default_policy;

namespace {

bool no_device() {
  if (cublas::available()) return false;
  MESSAGE("no CUDA device: skipped (" << cublas::device_name() << ")");
  return true;
}

// Restores the policy's process-wide settings when a test case ends.
struct settings_guard {
  double flops = cublas::min_flops();
  cublas_math math = cublas::math();
  ~settings_guard() {
    cublas::set_min_flops(flops);
    cublas::set_math(math);
  }
};

template <class T>
std::vector<T> random_vector(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<T> u(-1, 1);
  std::vector<T> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// max |got - want| / max |want|
template <class T>
double rel_error(const std::vector<T>& got, const std::vector<T>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, std::abs(double(got[i]) - double(want[i])));
    den = std::max(den, std::abs(double(want[i])));
  }
  return num / std::max(den, 1e-300);
}

// One product on both policies, operands stored with `pad` spare columns (ld > cols), C prefilled.
template <class Gpu = cublas, class T>
double compare(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, T beta, index_t pad, std::mt19937& rng) {
  const index_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const auto A = random_vector<T>(std::size_t((ta ? K : M) * lda), rng);
  const auto B = random_vector<T>(std::size_t((tb ? N : K) * ldb), rng);
  auto C = random_vector<T>(std::size_t(M * ldc), rng), want = C;
  Gpu::template run<T>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  cpu::run<T>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, want.data(), ldc);
  for (index_t i = 0; i < M; ++i)  // padding columns are never written
    for (index_t j = N; j < ldc; ++j) REQUIRE(C[std::size_t(i * ldc + j)] == want[std::size_t(i * ldc + j)]);
  return rel_error(C, want);
}

}  // namespace

TEST_CASE("error messages name the call and the status") {
  CHECK_THROWS_WITH_AS(gemm::cuda_check(CUBLAS_STATUS_INVALID_VALUE, "cublasSgemm"),
                       doctest::Contains("cublasSgemm failed: CUBLAS_STATUS_INVALID_VALUE"), gemm::cuda_error);
  CHECK_THROWS_WITH_AS(gemm::cuda_check(cudaErrorMemoryAllocation, "cudaMalloc"),
                       doctest::Contains("cudaMalloc failed: cudaErrorMemoryAllocation"), gemm::cuda_error);
  CHECK_NOTHROW(gemm::cuda_check(cudaSuccess, "cudaFree"));
  CHECK_NOTHROW(gemm::cuda_check(CUBLAS_STATUS_SUCCESS, "cublasCreate"));
}

TEST_CASE("below the threshold the CPU policy runs, bit for bit; at or above it the GPU") {
  settings_guard g;
  std::mt19937 rng(1);
  const auto A = random_vector<float>(40 * 30, rng), B = random_vector<float>(30 * 20, rng);
  std::vector<float> C(40 * 20, -1.f), want(40 * 20, -2.f);
  cublas::set_min_flops(2.0 * 40 * 20 * 30 + 1);
  const auto calls = cublas::device_calls();
  cublas::run<float>(false, false, 40, 20, 30, 1.f, A.data(), 30, B.data(), 20, 0.f, C.data(), 20);
  cpu::run<float>(false, false, 40, 20, 30, 1.f, A.data(), 30, B.data(), 20, 0.f, want.data(), 20);
  CHECK(C == want);
  CHECK(cublas::device_calls() == calls);
  // Empty products never reach the device, whatever the threshold.
  cublas::set_min_flops(0);
  cublas::run<float>(false, false, 40, 20, 0, 1.f, A.data(), 30, B.data(), 20, 0.f, C.data(), 20);
  CHECK(std::all_of(C.begin(), C.end(), [](float v) { return v == 0.f; }));
  CHECK(cublas::device_calls() == calls);
  if (no_device()) return;
  cublas::set_min_flops(2.0 * 40 * 20 * 30);
  cublas::run<float>(false, false, 40, 20, 30, 1.f, A.data(), 30, B.data(), 20, 0.f, C.data(), 20);
  CHECK(cublas::device_calls() == calls + 1);
  CHECK(rel_error(C, want) < 1e-5);
}

TEST_CASE("without a device, a GPU-sized product throws cuda_error naming the call") {
  if (cublas::available()) {
    MESSAGE("a CUDA device is present: the no-device path is not exercised here");
    return;
  }
  settings_guard g;
  cublas::set_min_flops(0);
  std::vector<float> A(6, 1.f), B(6, 1.f), C(4, 0.f);
  CHECK_THROWS_WITH_AS(cublas::run<float>(false, false, 2, 2, 3, 1.f, A.data(), 3, B.data(), 2, 0.f, C.data(), 2),
                       doctest::Contains(" failed: cuda"), gemm::cuda_error);
  try {
    cublas::run<float>(false, false, 2, 2, 3, 1.f, A.data(), 3, B.data(), 2, 0.f, C.data(), 2);
  } catch (const gemm::cuda_error& e) {
    MESSAGE("as expected without a device: " << std::string(e.what()));
  }
}

TEST_CASE("cublas matches the CPU policy: all transposes, odd sizes, padded strides, alpha/beta") {
  if (no_device()) return;
  settings_guard g;
  cublas::set_min_flops(0);
  cublas::set_math(cublas_math::standard);
  std::mt19937 rng(2);
  struct dims {
    index_t M, N, K;
  };
  const dims sizes[] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 129}, {130, 67, 257}, {257, 129, 65}, {1, 300, 31}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const dims& d : sizes)
        for (index_t pad : {0, 3}) {
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(d.M);
          CAPTURE(d.N);
          CAPTURE(d.K);
          CAPTURE(pad);
          const auto before = cublas::device_calls();
          CHECK(compare(ta, tb, d.M, d.N, d.K, 1.f, 0.f, pad, rng) < 1e-5);
          CHECK(compare(ta, tb, d.M, d.N, d.K, -0.75f, 1.5f, pad, rng) < 1e-5);
          CHECK(compare(ta, tb, d.M, d.N, d.K, 0.5, 2.0, pad, rng) < 1e-12);
          CHECK(cublas::device_calls() == before + 3);
        }
}

TEST_CASE("run_batched: strided batches and a shared operand match per-matrix CPU products") {
  settings_guard g;
  std::mt19937 rng(3);
  // Attention-like: 6 heads, T = 37, d = 16; scores = Q K^T (tb), then P V.
  const index_t H = 6, T = 37, D = 16, pad = 2;
  const index_t ld = D + pad, sq = T * ld;
  const auto Q = random_vector<float>(std::size_t(H * sq), rng), Kt = random_vector<float>(std::size_t(H * sq), rng);
  auto check_scores = [&] {
    std::vector<float> S(std::size_t(H * T * T), 0.f), want = S;
    cublas::run_batched<float>(false, true, T, T, D, 0.25f, Q.data(), ld, sq, Kt.data(), ld, sq, 0.f, S.data(), T,
                               T * T, H);
    for (index_t h = 0; h < H; ++h)
      cpu::run<float>(false, true, T, T, D, 0.25f, Q.data() + h * sq, ld, Kt.data() + h * sq, ld, 0.f,
                      want.data() + h * T * T, T);
    return rel_error(S, want);
  };
  // Below the threshold run_batched is the CPU loop: exact.
  cublas::set_min_flops(1e30);
  CHECK(check_scores() == 0.0);
  if (no_device()) return;
  cublas::set_min_flops(0);
  const auto before = cublas::device_calls();
  CHECK(check_scores() < 1e-5);
  CHECK(cublas::device_calls() == before + 1);  // one call for all heads

  // Shared B (stride 0: a weight applied to every batch element), transposed A, beta != 0, double.
  for (bool ta : {false, true}) {
    CAPTURE(ta);
    const index_t M = 23, N = 11, K = 19, batch = 5;
    const index_t lda = (ta ? M : K) + 1, sa = (ta ? K : M) * lda + 7, sc = M * N + 3;
    const auto A = random_vector<double>(std::size_t(batch * sa), rng), B = random_vector<double>(K * N, rng);
    auto C = random_vector<double>(std::size_t(batch * sc), rng), want = C;
    cublas::run_batched<double>(ta, false, M, N, K, 1.0, A.data(), lda, sa, B.data(), N, 0, 0.5, C.data(), N, sc,
                                batch);
    for (index_t i = 0; i < batch; ++i)
      cpu::run<double>(ta, false, M, N, K, 1.0, A.data() + i * sa, lda, B.data(), N, 0.5, want.data() + i * sc, N);
    CHECK(rel_error(C, want) < 1e-12);
    for (index_t i = 0; i < batch; ++i)  // the gaps between the C_i are untouched
      for (index_t j = M * N; j < sc; ++j) CHECK(C[std::size_t(i * sc + j)] == want[std::size_t(i * sc + j)]);
  }
}

TEST_CASE("TF32 is off by default and can be switched on") {
  if (no_device()) return;
  settings_guard g;
  cublas::set_min_flops(0);
  std::mt19937 rng(4);
  CHECK(g.math == cublas_math::standard);
  cublas::set_math(cublas_math::standard);
  const double standard = compare(false, false, 512, 512, 512, 1.f, 0.f, 0, rng);
  cublas::set_math(cublas_math::pedantic);
  const double pedantic = compare(false, false, 512, 512, 512, 1.f, 0.f, 0, rng);
  cublas::set_math(cublas_math::tf32);
  const double tf32 = compare(false, false, 512, 512, 512, 1.f, 0.f, 0, rng);
  MESSAGE("relative error vs CPU at 512^3: standard " << standard << ", pedantic " << pedantic << ", tf32 " << tf32);
  CHECK(standard < 1e-5);
  CHECK(pedantic < 1e-5);
  CHECK(tf32 < 1e-2);  // a 10-bit mantissa: ~1e-3
  WARN(tf32 > standard);  // TF32 really used (cuBLAS may still pick a non-tensor-core kernel)
}

TEST_CASE("CUDA failures become cuda_error and the context stays usable") {
  if (no_device()) return;
  settings_guard g;
  cublas::set_min_flops(0);
  std::mt19937 rng(5);
  const auto A = random_vector<float>(64 * 64, rng), B = A;
  std::vector<float> C(64 * 64);
  // lda smaller than the row: the policy's strided copy is refused by the runtime.
  CHECK_THROWS_WITH_AS(cublas::run<float>(false, false, 64, 64, 64, 1.f, A.data(), 10, B.data(), 64, 0.f, C.data(), 64),
                       doctest::Contains("cudaMemcpy2DAsync(host to device) failed: cudaErrorInvalidPitchValue"),
                       gemm::cuda_error);
  // A cuBLAS call with an invalid leading dimension, on a handle of our own.
  cublasHandle_t h = nullptr;
  REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  const float one = 1.f;
  CHECK_THROWS_WITH_AS(gemm::cuda_check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 64, 64, 64, &one, nullptr, 1, nullptr,
                                                    64, &one, nullptr, 64),
                                        "cublasSgemm"),
                       doctest::Contains("CUBLAS_STATUS_INVALID_VALUE"), gemm::cuda_error);
  cublasDestroy(h);
  // An impossible allocation.
  void* p = nullptr;
  CHECK_THROWS_WITH_AS(gemm::cuda_check(cudaMalloc(&p, std::size_t{1} << 60), "cudaMalloc"),
                       doctest::Contains("cudaErrorMemoryAllocation"), gemm::cuda_error);
  // Afterwards the policy still works.
  CHECK(compare(false, true, 64, 64, 64, 1.f, 0.f, 0, rng) < 1e-5);
  cublas::release();
  CHECK(compare(true, false, 65, 63, 61, 1.f, 0.f, 1, rng) < 1e-5);
}

TEST_CASE("matmul through cublas: batched operands from many threads, and a small MLP trained on both") {
  if (no_device()) return;
  settings_guard g;
  cublas::set_min_flops(0);
  std::mt19937 rng(6);
  {  // matmul's batched path calls the policy from oneTBB tasks concurrently
    tape::current().reset();
    parameter<float> a("a", {8, 33, 17}), b("b", {8, 17, 9});
    fill_uniform(a.value(), rng);
    fill_uniform(b.value(), rng);
    const auto gpu = matmul<cublas>(a.use(), b.use()).value(), ref = matmul<cpu>(a.use(), b.use()).value();
    CHECK(rel_error(std::vector<float>(gpu.data(), gpu.data() + gpu.numel()),
                    std::vector<float>(ref.data(), ref.data() + ref.numel())) < 1e-5);
  }

  // x [64, 24] -> tanh(x W1^T + b1) [64, 48] -> W2 [5, 48] -> mse against a fixed target; plain SGD.
  struct mlp {
    parameter<float> w1{"w1", {48, 24}}, b1{"b1", {48}}, w2{"w2", {5, 48}}, b2{"b2", {5}};
    std::vector<parameter<float>*> params() { return {&w1, &b1, &w2, &b2}; }
  };
  mlp gpu_net, cpu_net;
  for (auto* p : gpu_net.params()) fill_uniform(p->value(), rng, -0.5, 0.5);
  for (std::size_t i = 0; i < 4; ++i) cpu_net.params()[i]->value() = gpu_net.params()[i]->value().clone();
  tensor<float> x = tensor<float>::zeros({64, 24}), y = tensor<float>::zeros({64, 5});
  fill_uniform(x, rng);
  fill_uniform(y, rng);
  auto step = [&]<class Gemm>(mlp& net) {
    tape::current().reset();
    for (auto* p : net.params()) p->zero_grad();
    var<float> h = tanh(matmul<Gemm>(constant(x), net.w1.use(), {.b = true}) + net.b1.use());
    var<float> out = matmul<Gemm>(h, net.w2.use(), {.b = true}) + net.b2.use();
    var<float> loss = mse_loss(out, y);
    loss.backward();
    for (auto* p : net.params())
      for (index_t i = 0; i < p->numel(); ++i) p->value()[i] -= 0.1f * p->grad()[i];
    return double(loss.item());
  };
  const auto before = cublas::device_calls();
  for (int it = 0; it < 5; ++it) {
    const double lg = step.operator()<cublas>(gpu_net), lc = step.operator()<cpu>(cpu_net);
    CAPTURE(it);
    MESSAGE("step " << it << ": loss cublas " << lg << ", cpu " << lc);
    CHECK(std::abs(lg - lc) <= 1e-5 * std::abs(lc));
  }
  CHECK(cublas::device_calls() >= before + 5 * 5);  // 2 forward + 3 backward products (x needs no grad)
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& a = gpu_net.params()[i]->value();
    const auto& b = cpu_net.params()[i]->value();
    CHECK(rel_error(std::vector<float>(a.data(), a.data() + a.numel()), std::vector<float>(b.data(), b.data() + b.numel())) <
          1e-4);
  }
}

}  // namespace HYBRID_TEST_UNIT
