// SIMD policy: kernels are written once over a "pack" P, which is either an xsimd batch (the best
// architecture of this build) or the plain scalar T (the fallback, also used for loop tails).
#pragma once
#include <cmath>
#include <type_traits>
#include <xsimd/xsimd.hpp>

namespace hybrid::simd {

template <class P>
struct pack_traits;

template <class T>
  requires std::is_floating_point_v<T>
struct pack_traits<T> {
  using value_type = T;
  static constexpr int width = 1;
  static T load(const T* p) { return *p; }
  static void store(T* p, T v) { *p = v; }
  static T splat(T v) { return v; }
  static T sum(T v) { return v; }
};

template <class T, class A>
struct pack_traits<xsimd::batch<T, A>> {
  using value_type = T;
  using pack = xsimd::batch<T, A>;
  static constexpr int width = static_cast<int>(pack::size);
  static pack load(const T* p) { return pack::load_unaligned(p); }
  static void store(T* p, const pack& v) { v.store_unaligned(p); }
  static pack splat(T v) { return pack(v); }
  static T sum(const pack& v) { return xsimd::hadd(v); }
};

// Scalar counterparts of xsimd's free functions, so kernels call them unqualified for both kinds.
template <class T>
  requires std::is_floating_point_v<T>
inline T select(bool c, T a, T b) { return c ? a : b; }
using xsimd::select;

// Policies. `pack<T>` is what a kernel's main loop runs on.
struct native {
  template <class T>
  using pack = xsimd::batch<T>;
  static constexpr const char* name = "xsimd";
};
struct scalar {
  template <class T>
  using pack = T;
  static constexpr const char* name = "scalar";
};

#ifdef HYBRID_SIMD_SCALAR
using default_policy = scalar;
#else
using default_policy = native;
#endif

}  // namespace hybrid::simd
