// Float inputs on the f16 tensor cores, split in two f16 terms: the math of
// the staging shared by linear_gemm_f16_mma (f16 weights, cuda/linear_gemm.cu)
// and qlinear's W4A16 GEMM (4-bit weights widened to f16, cuda/qlinear_gemm.cu),
// and by their host emulation.
//
// Each row of x is scaled by a power of two s_m (its largest finite
// magnitude to [2^14, 2^15)) and split in two f16 terms, hi = f16(x s_m) and
// lo = f16(x s_m - hi): 22 significant bits of x. The GEMM runs on staged
// rows A [M2, a_ld] in which every m16 tile holds 8 rows' hi terms (tile rows
// 0-7) then their lo terms (rows 8-15), so the mma accumulators c0, c1 (row
// g) and c2, c3 (row g + 8) of a lane are the hi and lo sums of the same
// output: y = (sum_hi + sum_lo) / s_m. Products of f16 values (and of f16
// and small integers) are exact in float32: the result equals the float
// path's up to float32 summation order and the input's last two bits.
#pragma once
#include "math_common.cuh"

namespace nm::cuda {

// Staged rows for M rows of x: whole groups of 8.
NM_HD int64_t f16split_rows(int64_t M) { return (M + 7) / 8 * 16; }
// The row of x staged row R holds, and whether it holds lo terms.
NM_HD int64_t f16split_x_row(int64_t R) { return (R / 16) * 8 + R % 8; }
NM_HD bool f16split_is_lo(int64_t R) { return (R / 8) % 2 == 1; }

// s_m from the row's largest finite magnitude (1 when it is 0 or none is
// finite): the power of two with amax · s in [2^14, 2^15), its exponent
// kept where s and 1 / s are floats (an amax below 2^-112 gets 2^127).
NM_HD float f16split_scale(float amax) {
  if (!(amax > 0.0f) || amax - amax != 0.0f) return 1.0f;
  int e = 0;
  frexpf(amax, &e);  // amax < 2^e
  if (e < -112) e = -112;
  return ldexpf(1.0f, 15 - e);
}

// The hi (lo = false) or lo term of v = x · s as f16 bits (an infinite v:
// hi inf, lo 0).
NM_HD uint16_t f16split_term(float v, bool lo) {
  const uint16_t hi = float_to_half_bits(v);
  if (!lo) return hi;
  if (v - v != 0.0f && v == v) return 0;
  return float_to_half_bits(v - half_bits_to_float(hi));
}

// The staged hi / lo rows of any Args with x / x_rows / x_stride, M and K
// (LinearArgs, QLinearArgs), on the host: the device's
// stage_f16split_rows_kernel (cuda/f16split_stage.cuh) computes the same.
template <class Args>
inline void f16split_stage_host(const Args& a, uint16_t* xs, int64_t a_ld, float* scale) {
  for (int64_t m = 0; m < a.M; ++m) {
    float amax = 0.0f;
    for (int64_t k = 0; k < a.K; ++k) {
      const float v = fabsf(x_row(a, m)[k]);
      if (v > amax && v - v == 0.0f) amax = v;
    }
    scale[m] = f16split_scale(amax);
  }
  for (int64_t R = 0; R < f16split_rows(a.M); ++R) {
    const int64_t m = f16split_x_row(R);
    for (int64_t k = 0; k < a_ld; ++k)
      xs[R * a_ld + k] = m < a.M && k < a.K ? f16split_term(x_row(a, m)[k] * scale[m], f16split_is_lo(R)) : 0;
  }
}

}  // namespace nm::cuda
