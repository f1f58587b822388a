// One-lane VF: the portable path. Uses libm's expf, so it is also the most
// accurate path.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"

namespace nm {
namespace NM_ISA {

struct VF {
  static constexpr int W = 1;
  float v;
  static VF zero() { return VF{0.0f}; }
  static VF set1(float x) { return VF{x}; }
  static VF load(const float* p) { return VF{*p}; }
  static VF load_partial(const float* p, int n) { return VF{n > 0 ? *p : 0.0f}; }
  static VF gather_partial(const float* p, int, int n) { return VF{n > 0 ? *p : 0.0f}; }
  static VF load_f16(const uint16_t* p) { return VF{h2f(*p)}; }
  static VF load_f16_partial(const uint16_t* p, int n) { return VF{n > 0 ? h2f(*p) : 0.0f}; }
  static VF load_bf16(const uint16_t* p) { return VF{b2f(*p)}; }
  static VF load_bf16_partial(const uint16_t* p, int n) { return VF{n > 0 ? b2f(*p) : 0.0f}; }
  void store(float* p) const { *p = v; }
  void store_partial(float* p, int n) const { if (n > 0) *p = v; }
  void store_f16(uint16_t* p) const { *p = ::nm::f32_to_f16(v); }
  void store_f16_partial(uint16_t* p, int n) const { if (n > 0) *p = ::nm::f32_to_f16(v); }

  // dtype.h's conversions are static inline (internal linkage), so using them
  // from an ISA translation unit is safe.
  static float b2f(uint16_t h) { return ::nm::bf16_to_f32(h); }
  static float h2f(uint16_t h) { return ::nm::f16_to_f32(h); }
};

static inline VF operator+(VF a, VF b) { return VF{a.v + b.v}; }
static inline VF operator-(VF a, VF b) { return VF{a.v - b.v}; }
static inline VF operator*(VF a, VF b) { return VF{a.v * b.v}; }
// Plain multiply-add: fmaf() is a slow libm call where the baseline has no FMA.
static inline VF fmadd(VF a, VF b, VF c) { return VF{a.v * b.v + c.v}; }
static inline VF vmax(VF a, VF b) { return VF{a.v > b.v ? a.v : b.v}; }
static inline VF vmin(VF a, VF b) { return VF{a.v < b.v ? a.v : b.v}; }
static inline float reduce_sum(VF a) { return a.v; }
static inline VF reduce_sum_rows(const VF* v) { return v[0]; }
static inline VF vexp(VF a) { return VF{expf(a.v)}; }
// 2^x, clamped as the vector levels' vexp2 (a NaN becomes 0).
static inline VF vexp2(VF a) {
  const float x = a.v > -127.0f ? (a.v < 127.0f ? a.v : 127.0f) : -127.0f;
  return VF{x <= -127.0f ? 0.0f : exp2f(x)};
}
static inline VF vsilu(VF a) { return VF{a.v / (1.0f + expf(-a.v))}; }
// Round to nearest, ties to even (the default rounding mode), as the AVX vround.
static inline VF vround(VF a) { return VF{nearbyintf(a.v)}; }
// Walsh-Hadamard transform across the lanes: nothing to do for one lane.
static inline VF vfwht(VF a) { return a; }
// int8 activations (ssm_q8.h): lanes [0, n) of q as floats, 0 beyond; and
// q = clamp(round half to even(v), ±127), NaN -> 0, into lanes [0, n).
static inline VF vload_i8(const int8_t* q, int n) { return VF{n > 0 ? (float)*q : 0.0f}; }
static inline void vstore_i8(int8_t* q, VF v, int n) {
  if (n <= 0) return;
  const float r = nearbyintf(v.v);
  *q = r != r ? 0 : (int8_t)(r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r);
}

// One-lane float64 VD (the samplers' softmax, kernels/sampling_impl.h): fma()
// is libm's correctly rounded fused multiply-add, so every level computes
// the same bits.
struct VD {
  static constexpr int W = 1;
  double v;
  static VD set1(double x) { return VD{x}; }
  static VD load(const double* p) { return VD{*p}; }
  void store(double* p) const { *p = v; }
};
static inline VD operator+(VD a, VD b) { return VD{a.v + b.v}; }
static inline VD operator-(VD a, VD b) { return VD{a.v - b.v}; }
static inline VD operator*(VD a, VD b) { return VD{a.v * b.v}; }
static inline VD fmadd(VD a, VD b, VD c) { return VD{fma(a.v, b.v, c.v)}; }
static inline VD vmax(VD a, VD b) { return VD{a.v > b.v ? a.v : b.v}; }
static inline VD vmin(VD a, VD b) { return VD{a.v < b.v ? a.v : b.v}; }
static inline VD vfloor(VD a) { return VD{floor(a.v)}; }
// 2^n for an integral n in [-1022, 1023], from its exponent bits.
static inline VD vpow2i(VD n) {
  const uint64_t b = (uint64_t)((int64_t)n.v + 1023) << 52;
  double d;
  memcpy(&d, &b, 8);
  return VD{d};
}
static inline double reduce_sum(VD a) { return a.v; }
#include "kernels/simd/simd_exp_f64.h"

}  // namespace NM_ISA
}  // namespace nm
