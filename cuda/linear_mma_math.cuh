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
#include "math_common.cuh"
#include "mma_tile_math.cuh"

namespace nm::cuda {

constexpr int kMmaTileK = kMmaTileKBytes / 2;  // bf16 elements of a k tile

// The kernel's 16-byte copies of W need W and its rows 16-byte aligned.
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

}  // namespace nm::cuda
