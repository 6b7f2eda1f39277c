// Chooses the GEMM policy every matrix product uses by default: OpenBLAS when the build has it
// (HYBRID_WITH_OPENBLAS, the faster one here), else Eigen. cuBLAS is opt-in per call site or by macro.
#pragma once
#include "hybrid/backend/gemm_eigen.hpp"
#ifdef HYBRID_WITH_OPENBLAS
#include "hybrid/backend/gemm_blas.hpp"
#endif

namespace hybrid::gemm {
#ifdef HYBRID_WITH_OPENBLAS
using default_policy = blas;
#else
using default_policy = eigen;
#endif
}  // namespace hybrid::gemm
