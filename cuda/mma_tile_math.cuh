// Addressing shared by the pipelined tensor-core GEMMs (bf16: cuda/linear_gemm.cu
// gemm_bf16_mma_kernel; int8: cuda/qlinear_gemm.cu qgemm_int8_mma_kernel) and
// their host emulation (cuda/check), which runs the kernels' copies, ldmatrix
// and mma.sync per lane from these same functions and the PTX ISA's fragment
// layouts.
//
// Both compute y[m, n] = Σ_k a[m, k] · w[n, k] for M > 16 from a staged copy
// of the inputs (a [M, a_ld], rows 16-byte aligned, zeros past K) and W [N,
// K] (K contiguous: the col-major B operand of a W^T). The block tile is 128
// rows of a x 128 rows of W x 64 bytes of k (32 bf16 or 64 int8),
// kMmaStages deep in shared memory, filled by cp.async 16-byte copies (a copy
// past M, N or K reads fewer bytes and zero-fills the rest). Each stage holds
// 128 A rows then 128 B rows of kMmaLdBytes (80: the eight rows one ldmatrix
// reads fall on distinct banks). 8 warps as 2 x 4, each a 64 x 32 tile: per
// 32-byte k step 4 ldmatrix.x4 of A (16 rows x 32 bytes each), 2 of B (16 n
// x 32 bytes each) and 4 x 4 mma.sync of m16 x n8 (m16n8k16 bf16, m16n8k32
// s8). ldmatrix moves 16-bit pairs, so the offsets below are in 16-bit units:
// the fragment a register receives (row lane / 4, bytes 4 (lane % 4) .. + 3
// of a 16-byte row) is what both mma shapes expect (two bf16 or four int8).
#pragma once
#include "math_common.cuh"

namespace nm::cuda {

constexpr int kMmaTileM = 128, kMmaTileN = 128, kMmaTileKBytes = 64, kMmaStages = 3;
constexpr int kMmaLdBytes = kMmaTileKBytes + 16;
constexpr int kMmaLd = kMmaLdBytes / 2;  // in 16-bit units (ldmatrix addressing)
constexpr int kMmaThreads = 256;
constexpr int kMmaStageBytes = (kMmaTileM + kMmaTileN) * kMmaLdBytes;
constexpr int kMmaChunks = (kMmaTileM + kMmaTileN) * (kMmaTileKBytes / 16);  // 16-byte copies per stage
constexpr size_t kMmaSmemBytes = (size_t)kMmaStages * kMmaStageBytes;

// One 16-byte copy of a stage: chunk c (0 .. kMmaChunks) is A row c / 4 for
// c < 512, else B row (c - 512) / 4, bytes 16 (c % 4) of the row's k tile.
struct MmaChunk {
  int smem = 0;        // byte offset within the stage
  bool is_b = false;   // from W (else from the staged a)
  int64_t src = 0;     // byte offset in its source (0 when bytes is 0)
  int bytes = 0;       // bytes to read (0 .. 16); the rest is zero-filled
};

// k0 (the tile's first element), K, a_ld and w_ld in elements of `eb` bytes.
NM_HD MmaChunk mma_chunk(int c, int64_t m0, int64_t n0, int64_t k0, int64_t M, int64_t N, int64_t K, int64_t a_ld,
                         int64_t w_ld, int eb) {
  MmaChunk ch;
  constexpr int per_row = kMmaTileKBytes / 16, half = kMmaTileM * per_row;
  ch.is_b = c >= half;
  const int cc = ch.is_b ? c - half : c, r = cc / per_row, kb = (cc % per_row) * 16;
  ch.smem = ((ch.is_b ? kMmaTileM : 0) + r) * kMmaLdBytes + kb;
  const int64_t row = (ch.is_b ? n0 : m0) + r, rows = ch.is_b ? N : M, k = k0 + kb / eb, left = (K - k) * eb;
  ch.bytes = row < rows && left > 0 ? (int)(left >= 16 ? 16 : left) : 0;
  ch.src = ch.bytes ? (row * (ch.is_b ? w_ld : a_ld) + k) * eb : 0;
  return ch;
}

// ldmatrix.x4 row addresses (16-bit offsets within a stage) of lane `lane`;
// kk is the k step's offset in 16-bit units (0 or 16).
// A, the 16-row tile of warp row wm, m16 tile i: matrices (rows 0-7, bytes
// 0-15), (rows 8-15, bytes 0-15), (rows 0-7, bytes 16-31), (rows 8-15, bytes
// 16-31) of the step, which are the mma's a0..a3.
NM_HD int mma_a_offset(int wm, int i, int kk, int lane) {
  return (wm * 64 + i * 16 + lane % 16) * kMmaLd + kk + (lane / 16) * 8;
}
// B, the 16 n of warp column wn, n16 tile jp: matrices (n 0-7, bytes 0-15),
// (n 0-7, bytes 16-31), (n 8-15, bytes 0-15), (n 8-15, bytes 16-31), which
// are b0, b1 of n8 tile 2 jp and b0, b1 of n8 tile 2 jp + 1.
NM_HD int mma_b_offset(int wn, int jp, int kk, int lane) {
  return (kMmaTileM + wn * 32 + jp * 16 + lane % 8 + (lane / 16) * 8) * kMmaLd + kk + ((lane / 8) % 2) * 8;
}

// Row and column within the m16 x n8 tile of accumulator register q of lane
// `lane` (c0, c1: row lane / 4, columns 2 (lane % 4) and + 1; c2, c3: 8 rows
// below).
NM_HD int mma_c_row(int lane, int q) { return lane / 4 + (q / 2) * 8; }
NM_HD int mma_c_col(int lane, int q) { return 2 * (lane % 4) + q % 2; }

// The output (row of a, row of W) of accumulator register q of lane `lane`
// of warp `warp` in its m16 tile i / n8 tile j, in the block tile (m0, n0).
NM_HD int64_t mma_out_row(int64_t m0, int warp, int i, int lane, int q) {
  return m0 + (warp / 4) * 64 + i * 16 + mma_c_row(lane, q);
}
NM_HD int64_t mma_out_col(int64_t n0, int warp, int j, int lane, int q) {
  return n0 + (warp % 4) * 32 + j * 8 + mma_c_col(lane, q);
}

// A staged row length in elements of eb bytes: K rounded up to 16 bytes.
NM_HD int64_t mma_ld(int64_t K, int eb) { return (K * eb + 15) / 16 * 16 / eb; }

}  // namespace nm::cuda
