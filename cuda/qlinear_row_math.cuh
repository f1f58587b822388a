// Per-thread math of the W4A8 decode GEMV for up to 8 input rows
// (cuda/qlinear.cu: w4a8_row_kernel), shared with the host emulation.
//
// A block computes R whole output rows. Its work is R x S warp-steps (S =
// ceil(G / 8) steps of 8 groups, 512 packed bytes, per row; the lanes of a
// step as in w4a8_quarter_load: lane l reads the 16 bytes of quarter l % 4 of
// group 8 s + l / 4), kW4A8RowItems per warp, all of a warp's weight loads
// issued before the block stages its inputs. The block stages the int8 input
// rows zero-padded to whole groups, with each group's input sum X_g, so that
// a lane multiplies the unsigned nibbles u (0..15) and a group's sum is
// corrected once:
//   sum_k (u_k - 8) q_k = sum_k u_k q_k - 8 X_g   (exact in int32).
// Staged q_x[m, k] is qx_value's (0 past K); rows past M are not staged.
// This saves the per-byte widening to signed values. Each group's exact sum
// goes to shared memory; then a thread per (weight row, input row) runs the
// chain f = fmaf(float(isum_g), s_w[n, g], f) over the groups in order, as
// the CPU does: bit for bit.
#pragma once
#include "qlinear_math.cuh"

namespace nm::cuda {

constexpr int kW4A8RowWarps = 8;
constexpr int kW4A8RowItems = 4;  // warp-steps per warp (16 bytes each in flight per lane)
constexpr int kW4A8RowSteps = kW4A8RowWarps * kW4A8RowItems;

// The block's shape and shared memory for input length K and up to MB input
// rows: G groups, S steps per row, R rows per block (0 where a row has more
// steps than a block), and the byte offsets of the staged inputs (MB rows of
// Kpad bytes), their group sums (MB x G), the weight rows' group sums (R x MB
// chains of G + 1: an odd stride, no bank conflicts in the chains), the
// rows' scales (R x (G + 1)) and the input rows' NaN masks (one per warp).
struct W4A8RowLayout {
  int64_t G, S, R, Kpad, gstride;
  int64_t xsum_off, gsum_off, scale_off, nan_off, bytes;
};

NM_HD W4A8RowLayout w4a8_row_layout(int64_t K, int MB) {
  W4A8RowLayout L;
  L.G = (K + kI4Group - 1) / kI4Group;
  L.S = (L.G + kW4A8StepGroups - 1) / kW4A8StepGroups;
  L.R = L.S <= kW4A8RowSteps ? kW4A8RowSteps / L.S : 0;
  L.Kpad = L.G * kI4Group;
  L.gstride = L.G + 1;
  L.xsum_off = MB * L.Kpad;  // a multiple of 128
  L.gsum_off = L.xsum_off + 4 * MB * L.G;
  L.scale_off = L.gsum_off + 4 * L.R * MB * L.gstride;
  L.nan_off = L.scale_off + 4 * L.R * L.gstride;
  L.bytes = L.nan_off + 4 * kW4A8RowWarps;
  return L;
}

// The kernel's input rows per launch (1, 2, 4 or 8) for M rows, 0 past 8
// (the general kernel runs them).
NM_HD int w4a8_row_mb(int64_t M) { return M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : M <= 8 ? 8 : 0; }

// Warp-step i of a block: row r = i / S, step s = i % S (consecutive warps
// take consecutive steps: their loads cover consecutive bytes). In int: a
// block that runs has few steps.
NM_HD void w4a8_row_item(int S, int i, int& r, int& s) {
  r = i / S;
  s = i % S;
}

// 16 staged bytes as 4 words (p 16-byte aligned).
NM_HD void load_staged16(const int8_t* p, uint32_t (&v)[4]) {
#if defined(__CUDA_ARCH__)
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w;
#else
  memcpy(v, p, 16);
#endif
}

// Lane l's sum_k u_k q_k over its 16 weight bytes w of the step at g0, for
// the staged input rows m < min(M, MB) (byte j holds elements j and j + 32
// of its chunk: the low nibbles meet staged inputs [c * 64 + h, +16), the
// high ones 32 on); 0 for a lane past the last group. The nibbles 0..15 are
// non-negative signed bytes, so the signed dot product takes them as they
// are.
template <int MB>
NM_HD void w4a8_row_lane_sums(const W4A8RowLayout& L, const uint32_t (&w)[4], const int8_t* xs, int64_t M, int64_t g0,
                              int lane, int32_t (&acc)[MB]) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) acc[m] = 0;
  const int q = lane % 4;
  const int64_t g = g0 + lane / 4;
  if (g >= L.G) return;
  const int64_t c = 2 * g + q / 2;
  uint32_t lo[4], hi[4];
NM_UNROLL
  for (int i = 0; i < 4; ++i) lo[i] = w[i] & 0x0f0f0f0fu, hi[i] = (w[i] >> 4) & 0x0f0f0f0fu;
NM_UNROLL
  for (int m = 0; m < MB; ++m) {
    if (m >= M) break;
    const int8_t* xm = xs + m * L.Kpad + c * kI4Chunk + 16 * (q % 2);
    uint32_t xlo[4], xhi[4];
    load_staged16(xm, xlo);
    load_staged16(xm + 32, xhi);
NM_UNROLL
    for (int i = 0; i < 4; ++i) {
      acc[m] = dot4(lo[i], xlo[i], acc[m]);
      acc[m] = dot4(hi[i], xhi[i], acc[m]);
    }
  }
}

// Group g's exact sum_k (nibble_k - 8) q_k from its four lanes' sums.
NM_HD int32_t w4a8_row_group_sum(int32_t lanes_sum, int32_t xsum) { return lanes_sum - 8 * xsum; }

}  // namespace nm::cuda
