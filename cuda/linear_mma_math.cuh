// Addressing of the pipelined bf16 tensor-core GEMM (cuda/linear_gemm.cu,
// linear_gemm_bf16_mma), shared with the host emulation (cuda/check), which
// runs the kernel's copies, ldmatrix and mma.sync per lane from these same
// functions and the PTX ISA's fragment layouts.
//
//   y[m, n] = Σ_k bf16(x[m, k]) · w[n, k] (+ bias[n]) for M > 16, bf16 W [N, K].
//
// x is first rounded to bf16 (round to nearest even, as ActRounding::BF16)
// into a scratch [M, a_ld] (a_ld = K rounded up to 8: 16-byte rows, zeros
// past K). The block tile is 128 (rows of x) x 128 (rows of W) x 32 (k),
// kMmaStages deep in shared memory, filled by cp.async 16-byte copies (a
// copy past M, N or K reads fewer bytes and zero-fills the rest). Each stage
// holds 128 A rows then 128 B rows of kMmaLd bf16 (80 bytes: the eight rows
// one ldmatrix reads fall on distinct banks). 8 warps as 2 x 4, each a
// 64 x 32 tile: per k16 step 4 ldmatrix.x4 of A (16 x 16 each), 2 of B (16 n
// x 16 k each) and 4 x 4 mma.sync.m16n8k16 (bf16 inputs, f32 accumulate).
// The products of bf16 values are exact in float32: the result equals the
// CPU's bf16 path up to float32 summation order.
#pragma once
#include "kernels/linear.h"
#include "math_common.cuh"

namespace nm::cuda {

constexpr int kMmaTileM = 128, kMmaTileN = 128, kMmaTileK = 32, kMmaStages = 3;
constexpr int kMmaLd = kMmaTileK + 8;
constexpr int kMmaThreads = 256;
constexpr int kMmaStageElems = (kMmaTileM + kMmaTileN) * kMmaLd;
constexpr int kMmaChunks = (kMmaTileM + kMmaTileN) * (kMmaTileK / 8);  // 16-byte copies per stage
constexpr size_t kMmaSmemBytes = (size_t)kMmaStages * kMmaStageElems * 2;

// The kernel's 16-byte copies of W need W and its rows 16-byte aligned.
inline bool mma_usable(const LinearArgs& a) { return ((uintptr_t)a.w & 15u) == 0 && a.w_stride % 8 == 0; }

// The scratch row length of the rounded x.
NM_HD int64_t mma_a_ld(int64_t K) { return (K + 7) / 8 * 8; }

// One 16-byte copy of a stage: chunk c (0 .. kMmaChunks) is A row c / 4 for
// c < 512, else B row (c - 512) / 4, k offset 8 (c % 4).
struct MmaChunk {
  int smem = 0;        // bf16 offset within the stage
  bool is_b = false;   // from W (else from the rounded x)
  int64_t src = 0;     // bf16 offset in its source (0 when bytes is 0)
  int bytes = 0;       // bytes to read (0 .. 16); the rest is zero-filled
};

NM_HD MmaChunk mma_chunk(int c, int64_t m0, int64_t n0, int64_t k0, int64_t M, int64_t N, int64_t K, int64_t a_ld,
                         int64_t w_ld) {
  MmaChunk ch;
  const int half = kMmaTileM * (kMmaTileK / 8);
  ch.is_b = c >= half;
  const int cc = ch.is_b ? c - half : c, r = cc / (kMmaTileK / 8), kq = (cc % (kMmaTileK / 8)) * 8;
  ch.smem = ((ch.is_b ? kMmaTileM : 0) + r) * kMmaLd + kq;
  const int64_t row = (ch.is_b ? n0 : m0) + r, rows = ch.is_b ? N : M, k = k0 + kq, left = K - k;
  ch.bytes = row < rows && left > 0 ? (int)(left >= 8 ? 16 : 2 * left) : 0;
  ch.src = ch.bytes ? row * (ch.is_b ? w_ld : a_ld) + k : 0;
  return ch;
}

// ldmatrix.x4 row addresses (bf16 offsets within a stage) of lane `lane`:
// A, the 16 x 16 tile of warp row wm, m16 tile i, k step kk: matrices
// (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15,
// k 8-15), which are the mma's a0..a3.
NM_HD int mma_a_offset(int wm, int i, int kk, int lane) {
  return (wm * 64 + i * 16 + lane % 16) * kMmaLd + kk + (lane / 16) * 8;
}
// B, the 16 n x 16 k tile of warp column wn, n16 tile jp: matrices (n 0-7,
// k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15), which are b0,
// b1 of n8 tile 2 jp and b0, b1 of n8 tile 2 jp + 1.
NM_HD int mma_b_offset(int wn, int jp, int kk, int lane) {
  return (kMmaTileM + wn * 32 + jp * 16 + lane % 8 + (lane / 16) * 8) * kMmaLd + kk + ((lane / 8) % 2) * 8;
}

// Row and column within the m16 x n8 tile of accumulator register q of lane
// `lane` (c0, c1: row lane / 4, columns 2 (lane % 4) and + 1; c2, c3: 8 rows
// below).
NM_HD int mma_c_row(int lane, int q) { return lane / 4 + (q / 2) * 8; }
NM_HD int mma_c_col(int lane, int q) { return 2 * (lane % 4) + q % 2; }

// The bf16 bits of x rounded to nearest even (ActRounding::BF16).
NM_HD uint16_t mma_bf16_bits(float v) {
  uint32_t x = float_to_bits(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

}  // namespace nm::cuda
