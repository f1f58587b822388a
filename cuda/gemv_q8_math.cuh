// Per-thread math of the decode GEMV of Q8_0 / Q4_0 weights with Q8Block
// inputs on integer dot products (cuda/linear.cu, gemv_q8_kernel), shared
// with the host emulation (cuda/check). Semantics: kernels/linear.h.
//
// The float GEMV (linear_math.cuh) rounds each lane's 32 inputs of a block
// for every output row and multiplies dequantised floats. Here each thread
// block quantizes the M x K inputs once into shared memory (per block of 32:
// int8 q and the scale d, q8block_stage_x, as the tensor-core GEMM stages
// them), and lane l takes the weight blocks l, l + 32, ... of its warp's
// output row: the exact int32 sum of the block's 32 products (__dp4a on the
// device, plain integer math on the host), then f = fmaf(isum, d_x d_w, f)
// (q8_block_step) in block order; the 32 lane partials meet in the
// butterfly (tree_sum_host on the host). A block whose scales are not finite
// makes the output NaN (as the float path's inf * 0). The CPU kernels sum in
// another order: equal up to float32 rounding.
#pragma once
#include "linear_mma_math.cuh"
#include "qlinear_math.cuh"

namespace nm::cuda {

// Bytes of the staged inputs ([M][K] int8, 16-byte aligned), then of their
// scales ([M][K / 32] float).
NM_HD int64_t gemv_q8_x_bytes(const LinearArgs& a) { return (a.M * a.K + 15) / 16 * 16; }
NM_HD int64_t gemv_q8_smem_bytes(const LinearArgs& a) { return gemv_q8_x_bytes(a) + a.M * (a.K / kQ8Block) * 4; }

// Whether the integer GEMV takes the call: Q8_0 / Q4_0 weights, Q8Block
// inputs, K a nonzero multiple of 32, the staged inputs within the default
// 48 KiB of shared memory (the float GEMV takes the rest).
NM_HD bool gemv_q8_usable(const LinearArgs& a) {
  return (a.w_dtype == DType::Q8_0 || a.w_dtype == DType::Q4_0) && a.x_rounding == ActRounding::Q8Block && a.K > 0 &&
         a.K % kQ8Block == 0 && gemv_q8_smem_bytes(a) <= 48 * 1024;
}

// Block b of input row m into the staged inputs: its 32 int8 as 8 words
// (sx: [M][K / 4]) and its scale (sd: [M][K / 32]; not finite: NaN).
NM_HD void gemv_q8_stage(const LinearArgs& a, int64_t m, int64_t b, uint32_t* sx, float* sd) {
  int8_t q[kQ8Block];
  const float d = q8block_stage_x(a, m, b, q);
  uint32_t* out = sx + (m * a.K + b * kQ8Block) / 4;
NM_UNROLL
  for (int i = 0; i < kQ8Block / 4; ++i)
    out[i] = (uint32_t)(uint8_t)q[4 * i] | (uint32_t)(uint8_t)q[4 * i + 1] << 8 |
             (uint32_t)(uint8_t)q[4 * i + 2] << 16 | (uint32_t)(uint8_t)q[4 * i + 3] << 24;
  sd[m * (a.K / kQ8Block) + b] = d;
}

// Weight block b of row n: its 32 quants as 8 words of int8 in element order
// (Q4_0: nibble - 8; byte j holds elements j and j + 16) and its scale (not
// finite: NaN). 16-bit loads (blocks are 34 / 18 bytes: 2-byte aligned when
// the weight is).
template <DType WT>
NM_HD float gemv_q8_weight_block(const LinearArgs& a, int64_t n, int64_t b, int flags, uint32_t (&q)[8]) {
  constexpr int64_t bb = WT == DType::Q8_0 ? 34 : 18;
  const uint8_t* blk = static_cast<const uint8_t*>(a.w) + (n * a.w_stride + b * kQ8Block) / kQ8Block * bb;
  if constexpr (WT == DType::Q8_0) {
NM_UNROLL
    for (int i = 0; i < 8; ++i) q[i] = load_u16(blk + 2 + 4 * i, flags) | ((uint32_t)load_u16(blk + 4 + 4 * i, flags) << 16);
  } else {
NM_UNROLL
    for (int i = 0; i < 4; ++i) {
      const uint32_t u = load_u16(blk + 2 + 4 * i, flags) | ((uint32_t)load_u16(blk + 4 + 4 * i, flags) << 16);
      q[i] = nibbles_to_s8(u & 0x0f0f0f0fu);
      q[4 + i] = nibbles_to_s8((u >> 4) & 0x0f0f0f0fu);
    }
  }
  const float d = half_bits_to_float(load_u16(blk, flags));
  return d - d == 0.0f ? d : NAN;
}

// The exact Σ of the block's 32 products with staged input words x.
NM_HD int32_t gemv_q8_isum(const uint32_t (&q)[8], const uint32_t* x) {
  uint32_t xv[8];
#if defined(__CUDA_ARCH__)
  const uint4 a = reinterpret_cast<const uint4*>(x)[0], b = reinterpret_cast<const uint4*>(x)[1];
  xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
#else
  for (int i = 0; i < 8; ++i) xv[i] = x[i];
#endif
  int32_t s = 0;
NM_UNROLL
  for (int i = 0; i < 8; ++i) s = dot4(q[i], xv[i], s);
  return s;
}

// Lane `lane`'s partial sums of row n for the input rows m < min(M, MB).
template <DType WT, int MB>
NM_HD void gemv_q8_lane_partial(const LinearArgs& a, int64_t n, int lane, int flags, const uint32_t* sx,
                                const float* sd, float (&f)[MB]) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) f[m] = 0.0f;
  const int64_t nb = a.K / kQ8Block;
  for (int64_t b = lane; b < nb; b += kWarpSize) {
    uint32_t q[8];
    const float dw = gemv_q8_weight_block<WT>(a, n, b, flags, q);
NM_UNROLL
    for (int m = 0; m < MB; ++m) {
      if (m >= a.M) break;
      const int32_t isum = gemv_q8_isum(q, sx + (m * a.K + b * kQ8Block) / 4);
      f[m] = q8_block_step(f[m], isum, sd[m * nb + b], dw);
    }
  }
}

}  // namespace nm::cuda
