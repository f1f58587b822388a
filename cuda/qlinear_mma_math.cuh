// The tensor-core GEMMs of the Quamba formats for M > 16 on sm_80 and newer
// (cuda/qlinear_gemm.cu): W8A8 and W4A8 on the int8 tensor cores
// (qlinear_gemm_int8_mma), W4A16 on the f16 ones (qlinear_gemm_w4a16_mma).
// Their specifics; the tile addressing is cuda/mma_tile_math.cuh.
//
// The inputs are staged as int8 rows [M, a_ld] (a_ld = K rounded up to 16,
// zeros past K): q = clamp(rint(x · inv), -127, 127) of the float inputs as
// the GEMV quantizes them (a NaN gives 0 and marks the row, whose outputs are
// NaN), or the given xq. W8A8 weights are read in place when their rows are
// 16-byte aligned, else copied; W4A8's nibbles are widened to int8 rows
// (nibble - 8) in a scratch. k tiles of 64, each k32 step 4 x 4
// mma.sync.m16n8k32 (s8 inputs, s32 accumulate: exact) per warp, so:
//   W8A8: the exact Σ_k q_w q_x over all of K, then w8a8_store: bit for bit
//     the CPU's result;
//   W4A8: a group of 128 is two k tiles; after a group's tiles, f =
//     fmaf(float(isum_g), s_w[n, g], f) and isum restarts, the CPU's chain in
//     group order (a partial last group included): bit for bit.
#pragma once
#include "kernels/qlinear.h"
#include "mma_tile_math.cuh"
#include "qlinear_math.cuh"

namespace nm::cuda {

constexpr int kQMmaTileK = kMmaTileKBytes;                      // int8 elements of a k tile
constexpr int kQMmaTilesPerGroup = (int)(kI4Group / kQMmaTileK);  // W4A8: k tiles per scale group
static_assert(kI4Group % kQMmaTileK == 0, "a W4A8 group is whole k tiles");

// Element k of row m of the staged int8 inputs (0 past K); a NaN float sets nan.
NM_HD int8_t qmma_stage_x(const QLinearArgs& a, int64_t m, int64_t k, float inv, bool& nan) {
  if (k >= a.K) return 0;
  if (a.xq) return a.xq[m * a.xq_stride + k];
  return (int8_t)quantize_x(x_row(a, m)[k], inv, nan);
}

// W8A8 weights the kernel reads in place (16-byte copies of every row).
NM_HD bool qmma_w_in_place(const QLinearArgs& a) {
  return a.w_dtype == DType::I8 && ((uintptr_t)a.w & 15u) == 0 && a.w_stride % 16 == 0;
}

// Element k of row n of the staged int8 weights (0 past K).
NM_HD int8_t qmma_stage_w(const QLinearArgs& a, int64_t n, int64_t k) { return (int8_t)qweight_value(a, n, k); }

// W4A8: whether k tile kt (of KT) ends a scale group.
NM_HD bool qmma_group_ends(int64_t kt, int64_t KT) {
  return kt % kQMmaTilesPerGroup == kQMmaTilesPerGroup - 1 || kt == KT - 1;
}

// W4A16 (float inputs): the inputs split in two f16 terms
// (cuda/f16split_math.cuh), the weights widened to f16 (nibble - 8: exact)
// in a scratch [N, mma_ld(K, 2)]; k tiles of 32, so a group of 128 is four
// tiles. After a group's tiles, each of an output's two partial sums (hi,
// lo) runs f = fmaf(sum_g, s_w[n, g], f), and y = (f_hi + f_lo) / s_m + b:
// the CPU's Σ_k (s_w · q) x up to float32 rounding.
constexpr int kQMmaF16TilesPerGroup = (int)(kI4Group / (kMmaTileKBytes / 2));
static_assert(kI4Group % (kMmaTileKBytes / 2) == 0, "a W4A16 group is whole k tiles");

NM_HD bool qmma_w4a16_group_ends(int64_t kt, int64_t KT) {
  return kt % kQMmaF16TilesPerGroup == kQMmaF16TilesPerGroup - 1 || kt == KT - 1;
}

// Element k of row n of the widened W4A16 weights as f16 bits (0 past K).
NM_HD uint16_t qmma_stage_w_f16(const QLinearArgs& a, int64_t n, int64_t k) {
  return float_to_half_bits((float)qweight_value(a, n, k));
}

}  // namespace nm::cuda
