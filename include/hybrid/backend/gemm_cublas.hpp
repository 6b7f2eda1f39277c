// cuBLAS GEMM policy (opt in with HYBRID_WITH_CUDA): large row-major products run on the GPU through
// host-side cuBLAS calls, operands copied in and out per call; small ones stay on the CPU policy.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "hybrid/backend/gemm.hpp"

#ifndef HYBRID_CUBLAS_MIN_FLOPS
// Below ~1e8 flop (a 2048x256x96 product) the copies and the launch cost more than a multi-core CPU
// needs for the whole product; bench/cuda_gemm_bench measures the crossover on a given machine.
#define HYBRID_CUBLAS_MIN_FLOPS 1e8
#endif

namespace hybrid::gemm {

// A failed CUDA runtime or cuBLAS call; what() names the call and the status.
class cuda_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void cuda_check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so that the next call starts clean
  throw cuda_error(std::string(call) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
inline void cuda_check(cublasStatus_t s, const char* call) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw cuda_error(std::string(call) + " failed: " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
}

// standard: full FP32 (CUBLAS_DEFAULT_MATH never uses TF32 for float); tf32: tensor cores with a 10-bit
// mantissa (~1e-3 relative error, several times faster); pedantic: also refuses any emulation an
// environment variable (NVIDIA_TF32_OVERRIDE, CUBLAS_EMULATE_*) could switch on.
enum class cublas_math { standard, tf32, pedantic };

namespace cuda_detail {

inline std::atomic<double> min_flops{HYBRID_CUBLAS_MIN_FLOPS};
inline std::atomic<cublas_math> math{cublas_math::standard};
inline std::atomic<std::uint64_t> device_calls{0};

// Device memory that grows (in 2 MiB steps) and is reused; never shrinks until release().
class device_buffer {
 public:
  device_buffer() = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { release(); }
  template <class T>
  T* reserve(std::size_t n) {
    const std::size_t bytes = (n * sizeof(T) + (std::size_t{2} << 20) - 1) & ~((std::size_t{2} << 20) - 1);
    if (bytes > bytes_) {
      release();
      void* p = nullptr;
      cuda_check(cudaMalloc(&p, bytes), "cudaMalloc");
      p_ = p;
      bytes_ = bytes;
    }
    return static_cast<T*>(p_);
  }
  void release() noexcept {
    if (p_) (void)cudaFree(p_);  // errors ignored: at exit the runtime may already be gone
    p_ = nullptr;
    bytes_ = 0;
  }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

// One per process, made by the first GPU product and destroyed at exit: the handle, a stream and the
// operand buffers. The mutex serializes callers (one device does one product at a time anyway).
class context {
 public:
  static context& get() {
    static context c;
    return c;
  }
  std::mutex mutex;
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
  device_buffer a, b, c;

  void release_buffers() noexcept {
    a.release();
    b.release();
    c.release();
  }
  ~context() { destroy(); }

 private:
  context() {
    try {
      // The device current on the first calling thread (0 unless the program chose one); worker threads
      // select it again on every call.
      cuda_check(cudaGetDevice(&device), "cudaGetDevice");
      cuda_check(cudaSetDevice(device), "cudaSetDevice");
      cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      cuda_check(cublasCreate(&handle), "cublasCreate");
      cuda_check(cublasSetStream(handle, stream), "cublasSetStream");
    } catch (...) {
      destroy();
      throw;
    }
  }
  void destroy() noexcept {
    release_buffers();
    if (handle) (void)cublasDestroy(handle);
    if (stream) (void)cudaStreamDestroy(stream);
    handle = nullptr;
    stream = nullptr;
  }
};

// Copies `batch` row-major rows x cols matrices (row stride ld, matrix stride `stride`) to or from a packed
// device array (ld = cols, stride = rows * cols), in as few copies as the layout allows.
template <class T>
void copy_matrices(cudaMemcpyKind kind, T* dev, T* host, index_t rows, index_t cols, index_t ld, index_t stride,
                   index_t batch, cudaStream_t s) {
  const std::size_t w = static_cast<std::size_t>(cols) * sizeof(T), pitch = static_cast<std::size_t>(ld) * sizeof(T);
  const bool contiguous_batch = batch == 1 || stride == rows * ld;
  auto one = [&](T* d, T* h, index_t r) {
    if (ld == cols) {
      const std::size_t bytes = w * static_cast<std::size_t>(r);
      if (kind == cudaMemcpyHostToDevice) cuda_check(cudaMemcpyAsync(d, h, bytes, kind, s), "cudaMemcpyAsync(host to device)");
      else cuda_check(cudaMemcpyAsync(h, d, bytes, kind, s), "cudaMemcpyAsync(device to host)");
    } else {
      const auto ur = static_cast<std::size_t>(r);
      if (kind == cudaMemcpyHostToDevice)
        cuda_check(cudaMemcpy2DAsync(d, w, h, pitch, w, ur, kind, s), "cudaMemcpy2DAsync(host to device)");
      else cuda_check(cudaMemcpy2DAsync(h, pitch, d, w, w, ur, kind, s), "cudaMemcpy2DAsync(device to host)");
    }
  };
  if (contiguous_batch) return one(dev, host, rows * batch);
  for (index_t i = 0; i < batch; ++i) one(dev + i * rows * cols, host + i * stride, rows);
}

// C_i = alpha op(A_i) op(B_i) + beta C_i for i < batch, row-major, on the device. A stride of 0 for A or
// B shares one matrix across the batch (it is copied once).
template <class T>
void device_gemm(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, index_t sa,
                 const T* B, index_t ldb, index_t sb, T beta, T* C, index_t ldc, index_t sc, index_t batch) {
  context& ctx = context::get();
  std::lock_guard lock(ctx.mutex);
  cuda_check(cudaSetDevice(ctx.device), "cudaSetDevice");
  const index_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  const index_t na = sa == 0 ? 1 : batch, nb = sb == 0 ? 1 : batch;
  T* da = ctx.a.reserve<T>(static_cast<std::size_t>(ar * ac * na));
  T* db = ctx.b.reserve<T>(static_cast<std::size_t>(br * bc * nb));
  T* dc = ctx.c.reserve<T>(static_cast<std::size_t>(M * N * batch));
  try {
    copy_matrices(cudaMemcpyHostToDevice, da, const_cast<T*>(A), ar, ac, lda, sa, na, ctx.stream);
    copy_matrices(cudaMemcpyHostToDevice, db, const_cast<T*>(B), br, bc, ldb, sb, nb, ctx.stream);
    if (beta != T(0)) copy_matrices(cudaMemcpyHostToDevice, dc, C, M, N, ldc, sc, batch, ctx.stream);
    const cublas_math m = math.load(std::memory_order_relaxed);
    cuda_check(cublasSetMathMode(ctx.handle, m == cublas_math::tf32       ? CUBLAS_TF32_TENSOR_OP_MATH
                                             : m == cublas_math::pedantic ? CUBLAS_PEDANTIC_MATH
                                                                          : CUBLAS_DEFAULT_MATH),
               "cublasSetMathMode");
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
    const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m_ = static_cast<int>(N), n_ = static_cast<int>(M), k_ = static_cast<int>(K);
    const int lda_ = static_cast<int>(ac), ldb_ = static_cast<int>(bc);
    if (batch == 1) {
      if constexpr (std::is_same_v<T, float>)
        cuda_check(cublasSgemm(ctx.handle, opb, opa, m_, n_, k_, &alpha, db, ldb_, da, lda_, &beta, dc, m_),
                   "cublasSgemm");
      else
        cuda_check(cublasDgemm(ctx.handle, opb, opa, m_, n_, k_, &alpha, db, ldb_, da, lda_, &beta, dc, m_),
                   "cublasDgemm");
    } else {
      const long long sda = sa == 0 ? 0 : ar * ac, sdb = sb == 0 ? 0 : br * bc, sdc = M * N;
      const int nbatch = static_cast<int>(batch);
      if constexpr (std::is_same_v<T, float>)
        cuda_check(cublasSgemmStridedBatched(ctx.handle, opb, opa, m_, n_, k_, &alpha, db, ldb_, sdb, da, lda_, sda,
                                             &beta, dc, m_, sdc, nbatch),
                   "cublasSgemmStridedBatched");
      else
        cuda_check(cublasDgemmStridedBatched(ctx.handle, opb, opa, m_, n_, k_, &alpha, db, ldb_, sdb, da, lda_, sda,
                                             &beta, dc, m_, sdc, nbatch),
                   "cublasDgemmStridedBatched");
    }
    copy_matrices(cudaMemcpyDeviceToHost, dc, C, M, N, ldc, sc, batch, ctx.stream);
    cuda_check(cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
  } catch (...) {
    (void)cudaStreamSynchronize(ctx.stream);  // nothing queued may outlive the caller's buffers
    throw;
  }
  device_calls.fetch_add(1, std::memory_order_relaxed);
}

inline bool fits_int(std::initializer_list<index_t> v) {
  for (index_t x : v)
    if (x > INT_MAX) return false;
  return true;
}

}  // namespace cuda_detail

// The policy: the interface of gemm::eigen / gemm::blas plus run_batched. Products of fewer than
// min_flops() flops (and empty or int-overflowing ones) run on `Fallback`, the others on the GPU.
template <class Fallback = default_policy>
struct basic_cublas {
  static constexpr const char* name = "cublas";
  using fallback = Fallback;

  // True when a CUDA device is present and usable; never throws. Without one, GPU-sized products throw
  // cuda_error (the caller opted in: no silent CPU fallback hides a missing driver).
  static bool available() noexcept {
    static const bool yes = [] {
      int n = 0;
      const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
      (void)cudaGetLastError();
      return ok;
    }();
    return yes;
  }
  // "NVIDIA H200 (sm_90, 139 GiB)" for the device the context uses (or would use), or why there is none.
  static std::string device_name() {
    int dev = 0, n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n == 0) e = cudaErrorNoDevice;
    cudaDeviceProp p{};
    if (e == cudaSuccess) e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return std::string("no CUDA device (") + cudaGetErrorName(e) + ")";
    }
    return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
           std::to_string(p.totalGlobalMem >> 30) + " GiB)";
  }

  static double min_flops() { return cuda_detail::min_flops.load(); }
  static void set_min_flops(double f) { cuda_detail::min_flops.store(f); }
  static cublas_math math() { return cuda_detail::math.load(); }
  static void set_math(cublas_math m) { cuda_detail::math.store(m); }
  // Products run on the GPU so far (a batched call counts once): shows where the threshold sends work.
  static std::uint64_t device_calls() { return cuda_detail::device_calls.load(); }
  // Frees the cached device buffers now (they grow again on the next GPU product).
  static void release() {
    if (!available()) return;
    cuda_detail::context& ctx = cuda_detail::context::get();
    std::lock_guard lock(ctx.mutex);
    ctx.release_buffers();
  }

  template <class T>
  static bool on_device(index_t M, index_t N, index_t K, index_t batch) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuBLAS policy: float or double");
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) *
                         static_cast<double>(batch);
    // K == 0 (C = beta C) stays on the CPU: nothing to multiply, and the CPU keeps "C not read if beta == 0".
    return M > 0 && N > 0 && K > 0 && flops >= min_flops() && cuda_detail::fits_int({M, N, K, batch});
  }

  // Row-major C = alpha op(A) op(B) + beta C; C is not read when beta == 0.
  template <class T, class Exec = exec::default_policy>
  static void run(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
                  index_t ldb, T beta, T* C, index_t ldc) {
    if (!on_device<T>(M, N, K, 1))
      return Fallback::template run<T, Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    cuda_detail::device_gemm<T>(ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
  }

  // `batch` products C_i = alpha op(A_i) op(B_i) + beta C_i with A_i = A + i * stride_a (likewise B, C),
  // one cuBLAS call for all (attention's per-head products). stride_a or stride_b 0 shares that operand;
  // the C_i must not overlap. On the CPU each product is one serial GEMM on an Exec task, like matmul's.
  template <class T, class Exec = exec::default_policy>
  static void run_batched(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                          index_t stride_a, const T* B, index_t ldb, index_t stride_b, T beta, T* C, index_t ldc,
                          index_t stride_c, index_t batch) {
    if (batch <= 0) return;
    if (!on_device<T>(M, N, K, batch)) {
      Exec::for_each(batch, [&](index_t i) {
        Fallback::template run<T, exec::serial>(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb,
                                                beta, C + i * stride_c, ldc);
      });
      return;
    }
    cuda_detail::device_gemm<T>(ta, tb, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
                                batch);
  }
};

using cublas = basic_cublas<>;

}  // namespace hybrid::gemm
