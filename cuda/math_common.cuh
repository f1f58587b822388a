// Scalar helpers shared by the CUDA kernels (device) and their host
// emulation (cuda/check): every function is NM_HD, so the same source runs
// per thread on the GPU and in a plain C++ loop over the grid on the host.
//
// Rounding: products that are summed are spelled as fmaf (an IEEE fused
// multiply-add on both sides), never as a * b + c, which nvcc would contract
// and a host compiler might not. With -prec-div / -prec-sqrt (nvcc's
// defaults) division and sqrtf are correctly rounded on both sides, so the
// only functions whose last bits may differ between device and host are
// expf / log1pf (CUDA: within 2 ulp).
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"

#if defined(__CUDACC__)
#define NM_HD __host__ __device__ __forceinline__
#else
#define NM_HD inline
#endif

// `#pragma unroll` in nvcc's device pass; nothing for host compilers
// (-Wunknown-pragmas).
#if defined(__CUDA_ARCH__)
#define NM_UNROLL _Pragma("unroll")
#else
#define NM_UNROLL
#endif

namespace nm::cuda {

// Row m of a linear product's float input: x + m * x_stride, or with
// LinearArgs / QLinearArgs::x_rows (a device array) the gathered row
// x_rows[m] (the tokens of one expert; indices are the caller's to check,
// as on the CPU).
template <class Args>
NM_HD const float* x_row(const Args& a, int64_t m) {
  return a.x + (a.x_rows ? (int64_t)a.x_rows[m] : m) * a.x_stride;
}

NM_HD float bits_to_float(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  memcpy(&f, &b, 4);
  return f;
#endif
}

NM_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
#endif
}

// a * b and a + b each rounded on its own (never contracted into an fma by
// nvcc; the host compilers of this project do not contract either).
NM_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
NM_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// binary32 -> binary16 bits, round to nearest even (overflow: inf; a NaN
// stays a NaN), as core/dtype.h's f32_to_f16; on the device the hardware
// conversion.
NM_HD uint16_t float_to_half_bits(float f) {
#if defined(__CUDA_ARCH__)
  uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
#else
  return f32_to_f16(f);
#endif
}

// binary16 -> binary32, exact (subnormals, inf; a NaN stays a NaN), as
// core/dtype.h's f16_to_f32; on the device the hardware conversion.
NM_HD float half_bits_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#else
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {
      int e = -1;
      do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return bits_to_float(bits);
#endif
}

NM_HD float bf16_bits_to_float(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

// Element i of a f32 / f16 / bf16 buffer (launchers reject the other types).
NM_HD float load_float(const void* p, DType t, int64_t i) {
  if (t == DType::F32) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  return t == DType::F16 ? half_bits_to_float(h) : bf16_bits_to_float(h);
}

NM_HD bool is_plain_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

NM_HD float silu(float v) { return v / (1.0f + expf(-v)); }

// The reference's softplus: v <= 20 ? log1p(exp(v)) : v.
NM_HD float softplus(float v) { return v <= 20.0f ? log1pf(expf(v)) : v; }

// Sequence of token t among packed sequences cu[0..nseq] (non-decreasing,
// cu[0] = 0, cu[nseq] = tokens): the s with cu[s] <= t < cu[s + 1]. Empty
// sequences hold no token, so the largest such s is the one.
NM_HD int64_t sequence_of(const int32_t* cu, int64_t nseq, int64_t t) {
  int64_t lo = 0, hi = nseq - 1;  // answer in [lo, hi]
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if ((int64_t)cu[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// The fixed tree sum of the device's shared-memory reductions, on the host:
// p[t] += p[t + s] for t < s, s = n/2, n/4, ..., 1 (n a power of two);
// destroys p, returns the sum.
inline float tree_sum_host(float* p, int n) {
  for (int s = n / 2; s > 0; s >>= 1)
    for (int t = 0; t < s; ++t) p[t] = p[t] + p[t + s];
  return p[0];
}

}  // namespace nm::cuda
