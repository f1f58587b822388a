// Per-thread math of the W4A8 decode GEMV at one input row
// (cuda/qlinear.cu: w4a8_row_kernel), shared with the host emulation.
//
// A block computes R whole output rows. Its work is R x S warp-steps (S =
// ceil(G / 8) steps of 8 groups, 512 packed bytes, per row; the lanes of a
// step as in w4a8_quarter_load: lane l reads the 16 bytes of quarter l % 4 of
// group 8 s + l / 4), kW4A8RowItems per warp, all of a warp's weight loads
// issued before the block stages its input. The block stages the int8 input
// row zero-padded to whole groups, with each group's input sum X_g, so that a
// lane multiplies the unsigned nibbles u (0..15) and a group's sum is
// corrected once:
//   sum_k (u_k - 8) q_k = sum_k u_k q_k - 8 X_g   (exact in int32),
// which saves the per-byte widening to signed values. Each group's exact sum
// goes to shared memory; then thread r runs row r's chain f = fmaf(float(
// isum_g), s_w[n, g], f) over the groups in order, as the CPU does: bit for
// bit.
#pragma once
#include "qlinear_math.cuh"

namespace nm::cuda {

constexpr int kW4A8RowWarps = 8;
constexpr int kW4A8RowItems = 4;  // warp-steps per warp (16 bytes each in flight per lane)
constexpr int kW4A8RowSteps = kW4A8RowWarps * kW4A8RowItems;

// The block's shape and shared memory for input length K: G groups, S steps
// per row, R rows per block (0 where a row has more steps than a block), and
// the byte offsets of the staged input (Kpad bytes), the group input sums,
// the rows' group sums and scales (R rows of G + 1, an odd stride: no bank
// conflicts in the chains).
struct W4A8RowLayout {
  int64_t G, S, R, Kpad, gstride;
  int64_t xsum_off, gsum_off, scale_off, bytes;
};

NM_HD W4A8RowLayout w4a8_row_layout(int64_t K) {
  W4A8RowLayout L;
  L.G = (K + kI4Group - 1) / kI4Group;
  L.S = (L.G + kW4A8StepGroups - 1) / kW4A8StepGroups;
  L.R = L.S <= kW4A8RowSteps ? kW4A8RowSteps / L.S : 0;
  L.Kpad = L.G * kI4Group;
  L.gstride = L.G + 1;
  L.xsum_off = L.Kpad;  // a multiple of 128
  L.gsum_off = L.xsum_off + 4 * L.G;
  L.scale_off = L.gsum_off + 4 * L.R * L.gstride;
  L.bytes = L.scale_off + 4 * L.R * L.gstride;
  return L;
}

// Staged input element k (0 <= k < Kpad): q_x[0, k], 0 past K (qx_value).
NM_HD int32_t w4a8_row_staged(const QLinearArgs& a, int64_t k, float inv, uint32_t& nan) {
  return qx_value(a, 0, k, inv, nan);
}

// Warp-step i of a block: row r = i / S, step s = i % S (consecutive warps
// take consecutive steps: their loads cover consecutive bytes).
NM_HD void w4a8_row_item(const W4A8RowLayout& L, int64_t i, int64_t& r, int64_t& s) {
  r = i / L.S;
  s = i % L.S;
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

// Lane l's sum_k u_k q_k over its 16 weight bytes w of the step at g0
// (byte j holds elements j and j + 32 of its chunk: the low nibbles meet
// staged inputs [c * 64 + h, +16), the high ones 32 on); 0 for a lane past
// the last group. The nibbles 0..15 are non-negative signed bytes, so the
// signed dot product takes them as they are.
NM_HD int32_t w4a8_row_lane_sum(const W4A8RowLayout& L, const uint32_t (&w)[4], const int8_t* xs, int64_t g0,
                                int lane) {
  const int q = lane % 4;
  const int64_t g = g0 + lane / 4;
  if (g >= L.G) return 0;
  const int64_t c = 2 * g + q / 2;
  uint32_t xlo[4], xhi[4];
  load_staged16(xs + c * kI4Chunk + 16 * (q % 2), xlo);
  load_staged16(xs + c * kI4Chunk + 32 + 16 * (q % 2), xhi);
  int32_t acc = 0;
NM_UNROLL
  for (int i = 0; i < 4; ++i) {
    acc = dot4(w[i] & 0x0f0f0f0fu, xlo[i], acc);
    acc = dot4((w[i] >> 4) & 0x0f0f0f0fu, xhi[i], acc);
  }
  return acc;
}

// Group g's exact sum_k (nibble_k - 8) q_k from its four lanes' sums.
NM_HD int32_t w4a8_row_group_sum(int32_t lanes_sum, int32_t xsum) { return lanes_sum - 8 * xsum; }

}  // namespace nm::cuda
