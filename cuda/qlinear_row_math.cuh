// Per-thread math of the W8A8 / W4A8 decode GEMV for up to 8 input rows
// (cuda/qlinear.cu: qrows_kernel), shared with the host emulation.
//
// A block computes R whole output rows. Its work is R x S warp-steps of 512
// weight bytes each (S per row), kQRowItems per warp, all of a warp's weight
// loads issued before the block stages its inputs (their latencies overlap).
// The block stages the int8 input rows (q_x[m, k] as qx_value gives it; rows
// past M are not staged) zero-padded to whole steps, so that lanes read
// their inputs with 16-byte shared-memory loads and never past the row.
//   W8A8: a step is 512 elements; lane l takes bytes 16 l .. 16 l + 15 (0
//     past K). The step's exact int32 sum (the butterfly over the lanes) goes
//     to shared memory; then a thread per (weight row, input row) adds the
//     row's S step sums (integers: any order is exact) and stores as
//     w8a8_store: bit for bit the CPU's.
//   W4A8: a step is 8 groups (1024 elements); lane l reads the 16 bytes of
//     quarter l % 4 of group 8 s + l / 4 (w4a8_quarter_load). The staging
//     also keeps each group's input sum X_g, so that lanes multiply the
//     unsigned nibbles u (0..15) and a group's sum is corrected once:
//       sum_k (u_k - 8) q_k = sum_k u_k q_k - 8 X_g   (exact in int32),
//     which saves the per-byte widening to signed values. Each group's exact
//     sum goes to shared memory; then a thread per (weight row, input row)
//     runs the chain f = fmaf(float(isum_g), s_w[n, g], f) over the groups in
//     order, as the CPU does: bit for bit.
#pragma once
#include "qlinear_math.cuh"

namespace nm::cuda {

constexpr int kQRowWarps = 8;
constexpr int kQRowItems = 4;  // warp-steps per warp (16 bytes each in flight per lane)
constexpr int kQRowSteps = kQRowWarps * kQRowItems;
constexpr int kQRowStepBytes = kWarpSize * 16;

// The block's shape and shared memory for input length K, up to MB input
// rows and I8 or I4 weights: G groups (I4; 0 for I8), S steps per row, R
// rows per block (0 where a row has more steps than a block), Kpad staged
// bytes per input row, and the byte offsets of the staged inputs (MB x
// Kpad), the group input sums (I4: MB x G), the sums (R x MB rows of `sums`
// per weight row: I4 groups, I8 steps, padded to an odd stride: no bank
// conflicts in the final loops), the weight scales (I4: R x (G + 1)) and the
// input rows' NaN masks (one per warp).
struct QRowLayout {
  int64_t G, S, R, Kpad, stride;
  int64_t xsum_off, sum_off, scale_off, nan_off, bytes;
};

NM_HD QRowLayout qrow_layout(int64_t K, int MB, DType wt) {
  QRowLayout L;
  const bool i4 = wt != DType::I8;
  L.G = i4 ? (K + kI4Group - 1) / kI4Group : 0;
  L.S = i4 ? (L.G + kW4A8StepGroups - 1) / kW4A8StepGroups : (K + kQRowStepBytes - 1) / kQRowStepBytes;
  L.R = L.S <= kQRowSteps ? kQRowSteps / L.S : 0;
  L.Kpad = i4 ? L.G * kI4Group : L.S * kQRowStepBytes;
  L.stride = (i4 ? L.G : L.S) + 1;
  L.xsum_off = MB * L.Kpad;  // a multiple of 128
  L.sum_off = L.xsum_off + 4 * MB * L.G;
  L.scale_off = L.sum_off + 4 * L.R * MB * L.stride;
  L.nan_off = L.scale_off + (i4 ? 4 * L.R * L.stride : 0);
  L.bytes = L.nan_off + 4 * kQRowWarps;
  return L;
}

// The kernel's input rows per launch (1, 2, 4 or 8) for M rows, 0 past 8
// (the general kernels run them).
NM_HD int qrow_mb(int64_t M) { return M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : M <= 8 ? 8 : 0; }

// Whether the kernel takes the call, with its layout in L: int8 inputs
// (W8A8 / W4A8), at most 8 rows, a row of at most kQRowSteps steps, and
// shared memory within the default 48 KiB.
NM_HD bool qrow_applies(const QLinearArgs& a, QRowLayout& L) {
  const int MB = qrow_mb(a.M);
  if (MB == 0 || !(a.x_scale > 0.0f)) return false;
  L = qrow_layout(a.K, MB, a.w_dtype);
  return L.R > 0 && L.bytes <= 48 * 1024;
}

// Warp-step i of a block: row r = i / S, step s = i % S (consecutive warps
// take consecutive steps: their loads cover consecutive bytes). In int: a
// block that runs has few steps.
NM_HD void qrow_item(int S, int i, int& r, int& s) {
  r = i / S;
  s = i % S;
}

// Lane l's 16 weight bytes of step s of a row (0 past the row).
NM_HD void qrow_load(const QLinearArgs& a, const uint8_t* row, int s, int lane, int flags, uint32_t (&w)[4]) {
  if (a.w_dtype == DType::I8) load_row_words<4>(row, (int64_t)s * kQRowStepBytes + 16 * lane, a.K, flags, w);
  else w4a8_quarter_load(a, row, (int64_t)s * kW4A8StepGroups, lane, flags, w);
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

// W8A8: lane l's exact sums over its 16 weight bytes w of step s, for the
// staged input rows m < min(M, MB).
template <int MB>
NM_HD void qrow_i8_lane_sums(const QRowLayout& L, const uint32_t (&w)[4], const int8_t* xs, int64_t M, int s, int lane,
                             int32_t (&acc)[MB]) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) {
    acc[m] = 0;
    if (m >= M) continue;
    uint32_t x[4];
    load_staged16(xs + m * L.Kpad + (int64_t)s * kQRowStepBytes + 16 * lane, x);
NM_UNROLL
    for (int i = 0; i < 4; ++i) acc[m] = dot4(w[i], x[i], acc[m]);
  }
}

// W4A8: lane l's sum_k u_k q_k over its 16 weight bytes w of step s, for
// the staged input rows m < min(M, MB) (byte j holds elements j and j + 32
// of its chunk: the low nibbles meet staged inputs [c * 64 + h, +16), the
// high ones 32 on); 0 for a lane past the last group. The nibbles 0..15 are
// non-negative signed bytes, so the signed dot product takes them as they
// are.
template <int MB>
NM_HD void qrow_i4_lane_sums(const QRowLayout& L, const uint32_t (&w)[4], const int8_t* xs, int64_t M, int s, int lane,
                             int32_t (&acc)[MB]) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) acc[m] = 0;
  const int q = lane % 4;
  const int64_t g = (int64_t)s * kW4A8StepGroups + lane / 4;
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

// W4A8: group g's exact sum_k (nibble_k - 8) q_k from its four lanes' sums.
NM_HD int32_t qrow_i4_group_sum(int32_t lanes_sum, int32_t xsum) { return lanes_sum - 8 * xsum; }

}  // namespace nm::cuda
