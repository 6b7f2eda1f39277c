// SGEMM throughput of gemm::cublas at transformer shapes: the CPU default policy, the cuBLAS policy with
// its host<->device copies, and cuBLAS on device-resident operands (copies excluded; FP32 and TF32).
#include <cmath>
#include <random>

#include <hybrid/backend/gemm_cublas.hpp>

#include "bench_util.hpp"

namespace {
using namespace hybrid;
using namespace hybrid::bench;
using gemm::cublas;
using gemm::cuda_check;
using cpu = gemm::default_policy;

// C[M,N] = op(A) op(B), `batch` times (strided); operands packed (ld = cols).
struct gemm_case {
  std::string name;
  bool ta, tb;
  index_t M, N, K, batch = 1;
  double flop() const { return 2.0 * double(M) * double(N) * double(K) * double(batch); }
  std::string dims() const { return cat(batch > 1 ? cat(batch, "x ") : std::string(), M, 'x', N, 'x', K); }
  index_t lda() const { return ta ? M : K; }
  index_t ldb() const { return tb ? K : N; }
  index_t a_size() const { return M * K; }
  index_t b_size() const { return K * N; }
  index_t c_size() const { return M * N; }
};

struct host_buffers {
  std::vector<float> a, b, c;
  host_buffers(const gemm_case& g, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1, 1);
    a.resize(std::size_t(g.a_size() * g.batch));
    b.resize(std::size_t(g.b_size() * g.batch));
    c.assign(std::size_t(g.c_size() * g.batch), 0.f);
    for (auto& v : a) v = u(rng);
    for (auto& v : b) v = u(rng);
  }
};

struct device_buffers {
  float *a = nullptr, *b = nullptr, *c = nullptr;
  explicit device_buffers(const host_buffers& h) {
    auto up = [](float*& d, const std::vector<float>& v) {
      void* p = nullptr;
      cuda_check(cudaMalloc(&p, v.size() * sizeof(float)), "cudaMalloc");
      d = static_cast<float*>(p);
      cuda_check(cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    };
    up(a, h.a);
    up(b, h.b);
    up(c, h.c);
  }
  device_buffers(const device_buffers&) = delete;
  device_buffers& operator=(const device_buffers&) = delete;
  ~device_buffers() {
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
};

void on_cpu(const gemm_case& g, host_buffers& x) {
  if (g.batch == 1)
    return cpu::run<float, exec::tbb>(g.ta, g.tb, g.M, g.N, g.K, 1.f, x.a.data(), g.lda(), x.b.data(), g.ldb(), 0.f,
                                      x.c.data(), g.N);
  exec::tbb::for_each(g.batch, [&](index_t i) {  // what matmul does with batched operands
    cpu::run<float, exec::serial>(g.ta, g.tb, g.M, g.N, g.K, 1.f, x.a.data() + i * g.a_size(), g.lda(),
                                  x.b.data() + i * g.b_size(), g.ldb(), 0.f, x.c.data() + i * g.c_size(), g.N);
  });
}

void through_policy(const gemm_case& g, host_buffers& x) {
  if (g.batch == 1)
    return cublas::run<float>(g.ta, g.tb, g.M, g.N, g.K, 1.f, x.a.data(), g.lda(), x.b.data(), g.ldb(), 0.f,
                              x.c.data(), g.N);
  cublas::run_batched<float>(g.ta, g.tb, g.M, g.N, g.K, 1.f, x.a.data(), g.lda(), g.a_size(), x.b.data(), g.ldb(),
                             g.b_size(), 0.f, x.c.data(), g.N, g.c_size(), g.batch);
}

// The same product on device-resident operands (row-major via the operand swap, as in the policy).
void device_only(const gemm_case& g, device_buffers& d, cublasHandle_t h) {
  const float one = 1.f, zero = 0.f;
  const auto opa = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = int(g.N), n = int(g.M), k = int(g.K), lda = int(g.lda()), ldb = int(g.ldb());
  if (g.batch == 1)
    cuda_check(cublasSgemm(h, opb, opa, m, n, k, &one, d.b, ldb, d.a, lda, &zero, d.c, m), "cublasSgemm");
  else
    cuda_check(cublasSgemmStridedBatched(h, opb, opa, m, n, k, &one, d.b, ldb, g.b_size(), d.a, lda, g.a_size(), &zero,
                                         d.c, m, g.c_size(), int(g.batch)),
               "cublasSgemmStridedBatched");
  cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

double max_rel_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, double(std::abs(got[i] - want[i])));
    den = std::max(den, double(std::abs(want[i])));
  }
  return num / std::max(den, 1e-30);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = flag(argc, argv, "quick");
  const repeat rep = quick ? repeat{.warmup = 1, .min_reps = 3, .max_reps = 10, .budget_ms = 100} : repeat{};
  if (!cublas::available()) {
    std::cout << "cuda_gemm_bench: " << cublas::device_name() << ": nothing to measure\n";
    return 0;
  }
  print_header("SGEMM: cuBLAS policy vs the CPU policy",
               cat("- GPU: ", cublas::device_name(), "\n- CPU policy: ", cpu::name,
                   " on exec::tbb\n- cells: median (min) ms of >= ", rep.min_reps,
                   " runs; GF/s from the median; policy = gemm::cublas incl. host<->device copies of A, B, C "
                   "(pageable memory); device = cuBLAS on device-resident operands (copies excluded)\n"));

  std::vector<gemm_case> cases;
  for (index_t K : {256, 1024})
    for (index_t N : {256, 1024}) {
      const std::string tag = cat(" K", K, " N", N);
      cases.push_back({cat("fwd X.W", tag), false, false, 2048, N, K});
      cases.push_back({cat("dX=dY.W^T", tag), false, true, 2048, K, N});
      cases.push_back({cat("dW=X^T.dY", tag), true, false, K, N, 2048});
    }
  // Attention, 8 sequences x 8 heads of T = 512, d = 64: scores Q K^T, then P V.
  cases.push_back({"attn Q.K^T", false, true, 512, 512, 64, 64});
  cases.push_back({"attn P.V", false, false, 512, 64, 512, 64});

  cublas::set_min_flops(0);  // every case on the GPU, whatever the default threshold
  cublasHandle_t handle = nullptr;
  cuda_check(cublasCreate(&handle), "cublasCreate");
  std::mt19937 rng(42);
  double worst = 0;
  table t({"case", "MxNxK", "CPU ms", "GF/s", "policy ms", "GF/s", "xCPU", "device ms", "GF/s", "copy %",
           "TF32 GF/s"});
  for (const auto& g : cases) {
    host_buffers x(g, rng);
    const samples s_cpu = time_it([&] { on_cpu(g, x); }, rep);
    const std::vector<float> want = x.c;
    std::fill(x.c.begin(), x.c.end(), 0.f);
    const samples s_pol = time_it([&] { through_policy(g, x); }, rep);
    worst = std::max(worst, max_rel_diff(x.c, want));
    device_buffers d(x);
    cuda_check(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    const samples s_dev = time_it([&] { device_only(g, d, handle); }, rep);
    cuda_check(cudaMemcpy(x.c.data(), d.c, x.c.size() * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
    worst = std::max(worst, max_rel_diff(x.c, want));
    cuda_check(cublasSetMathMode(handle, CUBLAS_TF32_TENSOR_OP_MATH), "cublasSetMathMode");
    const samples s_tf32 = time_it([&] { device_only(g, d, handle); }, rep);
    auto gf = [&](const samples& s) { return fixed(g.flop() / (s.median() * 1e6), 0); };
    t.add({g.name, g.dims(), ms_cell(s_cpu), gf(s_cpu), ms_cell(s_pol), gf(s_pol),
           fixed(s_pol.median() / s_cpu.median(), 2), ms_cell(s_dev, 3), gf(s_dev),
           fixed(100.0 * (1.0 - s_dev.median() / s_pol.median()), 0), gf(s_tf32)});
  }
  cublasDestroy(handle);
  std::cout << "### Transformer shapes (M = 2048 tokens; K, N in {256, 1024})\n\n";
  t.print();

  // Where the policy starts to pay: square products n^3, CPU vs policy (copies included).
  table sweep({"n (n x n x n)", "flop", "CPU ms", "policy ms", "faster"});
  for (index_t n : {64, 128, 192, 256, 384, 512, 768}) {
    const gemm_case g{"sq", false, false, n, n, n};
    host_buffers x(g, rng);
    const samples a = time_it([&] { on_cpu(g, x); }, rep), b = time_it([&] { through_policy(g, x); }, rep);
    sweep.add({cat(n), cat(fixed(g.flop() / 1e6, 1), "M"), ms_cell(a, 3), ms_cell(b, 3),
               a.median() <= b.median() ? "CPU" : "GPU"});
  }
  std::cout << "### Crossover (HYBRID_CUBLAS_MIN_FLOPS default " << HYBRID_CUBLAS_MIN_FLOPS << ")\n\n";
  sweep.print();
  std::cout << "Largest relative difference of the policy's and device cuBLAS's C from the CPU's: " << worst
            << " (TF32 off)\n"
            << "Peak RSS: " << fixed(peak_rss_mib(), 1) << " MiB\n\n";
  return worst < 1e-4 ? 0 : 1;
}
