// The pipelined bf16 tensor-core GEMM (cuda/linear_gemm.cu,
// linear_gemm_bf16_mma): its bf16 specifics; the tile addressing it shares
// with the int8 GEMM is cuda/mma_tile_math.cuh.
//
//   y[m, n] = Σ_k bf16(x[m, k]) · w[n, k] (+ bias[n]) for M > 16, bf16 W [N, K].
//
// x is first rounded to bf16 (round to nearest even, as ActRounding::BF16)
// into a scratch [M, a_ld] (a_ld = K rounded up to 8: 16-byte rows, zeros
// past K); k tiles of 32, each k16 step 4 x 4 mma.sync.m16n8k16 (bf16
// inputs, f32 accumulate) per warp. The products of bf16 values are exact in
// float32: the result equals the CPU's bf16 path up to float32 summation
// order.
#pragma once
#include "kernels/linear.h"
#include "linear_math.cuh"
#include "math_common.cuh"
#include "f16split_math.cuh"
#include "mma_tile_math.cuh"

namespace nm::cuda {

constexpr int kMmaTileK = kMmaTileKBytes / 2;  // bf16 elements of a k tile

// The kernel's 16-byte copies of W (bf16 or f16) need W and its rows
// 16-byte aligned.
inline bool mma_usable(const LinearArgs& a) { return ((uintptr_t)a.w & 15u) == 0 && a.w_stride % 8 == 0; }

// The scratch row length of the rounded x.
NM_HD int64_t mma_a_ld(int64_t K) { return mma_ld(K, 2); }

// The bf16 bits of x rounded to nearest even (ActRounding::BF16).
NM_HD uint16_t mma_bf16_bits(float v) {
  uint32_t x = float_to_bits(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

// ---------------------------------------------------------------- Q8_0 / Q4_0 weights, Q8Block inputs
//
// linear_gemm_q8_mma: the int8 tensor-core GEMM (cuda/mma_mainloop.cuh) on
// x quantized per 32-element block as ActRounding::Q8Block rounds it and
// the weights' own int8 quants, per block b of 32 (K % 32 == 0 with these
// weights):
//   y[m, n] = Σ_b float(Σ_{k in b} q_x q_w) · (d_x[m, b] · d_w[n, b]),
// each term one fmaf in ascending b. The float path (linear(), the GEMV)
// sums the products of the rounded d_x q_x and dequantized d_w q_w: equal up
// to float32 rounding.
constexpr int kQ8Block = 32;

// Inputs x[m, 32 b .. 32 b + 31] as int8 (q = clamp(rint(x · 127 / amax),
// -127, 127), gemv_load_x's rounding); returns d = amax / 127. A block holding
// a NaN or an inf returns NaN: the float path's d · q is NaN there too.
NM_HD float q8block_stage_x(const LinearArgs& a, int64_t m, int64_t b, int8_t (&q)[kQ8Block]) {
  const float* xr = x_row(a, m) + b * kQ8Block;
  float amax = 0.0f;
  for (int j = 0; j < kQ8Block; ++j) {
    const float v = fabsf(xr[j]);
    if (v > amax || v != v) amax = v;
  }
  const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int j = 0; j < kQ8Block; ++j) q[j] = (int8_t)std_min(127.0f, std_max(-127.0f, rintf(xr[j] * id)));
  return d - d == 0.0f ? d : NAN;
}

// Block b of weight row n: its 32 quants as int8 (Q4_0: nibble - 8; byte j
// holds elements j and j + 16) and its scale (f16; not finite: NaN).
template <DType WT>
NM_HD float ggml_stage_w(const LinearArgs& a, int64_t n, int64_t b, int8_t (&q)[kQ8Block]) {
  constexpr int64_t bb = WT == DType::Q8_0 ? 34 : 18;
  const uint8_t* blk = static_cast<const uint8_t*>(a.w) + (n * a.w_stride / kQ8Block + b) * bb;
  if constexpr (WT == DType::Q8_0) {
    for (int j = 0; j < kQ8Block; ++j) q[j] = (int8_t)blk[2 + j];
  } else {
    for (int j = 0; j < 16; ++j) q[j] = (int8_t)((blk[2 + j] & 0x0f) - 8), q[j + 16] = (int8_t)((blk[2 + j] >> 4) - 8);
  }
  const float d = half_bits_to_float((uint16_t)(blk[0] | (blk[1] << 8)));
  return d - d == 0.0f ? d : NAN;
}

// One k32 step of an output's sum.
NM_HD float q8_block_step(float f, int32_t isum, float dx, float dw) { return fmaf((float)isum, dx * dw, f); }

}  // namespace nm::cuda
