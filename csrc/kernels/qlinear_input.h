// The inputs of qlinear as its per-level kernels read them (prepared once per
// call by qlinear.cpp): rows padded with zeros to Kp = ceil(K / 64) * 64.
#pragma once
#include <cstdint>

// Before the loops over a micro-tile's input rows and panels: unrolled
// whole, every accumulator index is a constant, so the accumulators stay in
// registers. Otherwise GCC indexes them at run time in the epilogue and keeps
// the array in memory, a load and a store per update inside the k loop too
// (it did at AVX2: every W8A8 tile).
#define NM_UNROLL_TILE _Pragma("GCC unroll 16")

namespace nm {

// Weight rows the batched 4-bit paths unpack at a time (qlinear_impl.h); the
// per-task scratch holds that many rows of groups · 128 floats (>= Kp).
constexpr int64_t kQLinearUnpackRows = 32;

// The int8 schemes take the panel path (qlinear_panel.h) from this many
// input rows on, at the levels that have one; fewer rows read each weight
// row in place (the row tiles: W8A8's take up to 4 input rows in one pass
// over the weights, W4A8's 2).
constexpr int64_t kQLinearPanelMinRowsI8 = 5, kQLinearPanelMinRowsI4 = 3;
// (static: an ISA object must not define weak symbols)
static inline bool qlinear_panel_path(bool i8_weights, int64_t M) {
  return M >= (i8_weights ? kQLinearPanelMinRowsI8 : kQLinearPanelMinRowsI4);
}
// Weight rows packed into panels at a time (a multiple of every level's
// panel height); the per-task scratch holds kQLinearPanelRows · (Kp + 4 ·
// groups) bytes for them.
constexpr int64_t kQLinearPanelRows = 32;
// Input rows up to which qlinear treats its weights as a stream (QInput::stream).
constexpr int64_t kQLinearStreamRows = 8;
// At prefill sizes the int16 tiles (qlinear_wide.h) pass over a task's
// weights once per block of input rows whose inputs take about this many
// bytes, so that they stay in L2 with the task's weights (even where L2 is
// 512 KB) instead of streaming every input row from L3 once per block of
// kQLinearPanelRows weight rows.
constexpr int64_t kQLinearInputBlockBytes = 128 << 10;
// Input rows per such block: a multiple of the tile height mb, at least mb.
static inline int64_t qlinear_input_row_block(int64_t row_bytes, int64_t mb) {
  const int64_t rows = kQLinearInputBlockBytes / (row_bytes > 0 ? row_bytes : 1) / mb * mb;
  return rows > mb ? rows : mb;
}

// Lane order of a group of 128 4-bit weights (64 bytes, two chunks of 32;
// a chunk's byte j holds elements j (low nibble) and j + 32 (high)) read as
// 16 int32 lanes, lane L = bytes 4L..4L+3: nibble p (bits 4p..4p+3) of lane L
// is element u4_lane_element(p, L) of the group, i.e. byte 4L + p / 2, its
// low nibble for even p, high for odd. The 512-bit levels take the 16 lanes'
// nibble p at once (one shift, one vpermps), AVX2 in two vectors of 8 lanes
// (shift, mask, convert), against the inputs stored in
// this order: vector p of group g holds x[128 g + u4_lane_element(p, L)].
constexpr int kU4Lanes = 16;
constexpr int64_t u4_lane_element(int p, int L) { return 64 * (L >> 3) + 4 * (L & 7) + (p >> 1) + 32 * (p & 1); }

struct QInput {
  int64_t Kp = 0;              // padded row length (multiple of 64)
  int64_t groups = 0;          // ceil(K / 128)
  const int8_t* q = nullptr;   // int8 schemes: [M, Kp] quantized inputs, 0 past K
  // W8A8 at the levels that multiply it in int16 (qlinear_wide.h), from
  // more than kQLinearStreamRows input rows: q widened, [M, Kp].
  const int16_t* q16 = nullptr;
  const int32_t* gsum = nullptr;    // [M, groups] Σ q over each group of 128
  const int32_t* rowsum = nullptr;  // [M] Σ q over the row
  const uint8_t* nan_row = nullptr; // [M] 1 where the float row held a NaN
  const float* xf = nullptr;   // W4A16: [M, Kp] float inputs, 0 past K
  // W4A16 at the levels that read 4-bit weights in lane order
  // (qlinear_u4_lanes): [M, groups · 128] float inputs in lane order
  // (u4_lane_element), 0 past K; xf is then unused.
  const float* xg = nullptr;
  // ... and per input row and group its sums over the 8 nibble positions p
  // and two halves h of x[p·16 + h·8 + l], in that order, for l = 0..7:
  // [M, groups, 8] (the Σ x of the 8-lane tiles that factor the group scale
  // out: qlinear_x86_ops.h kLanesFactored).
  const float* xsum8 = nullptr;
  // ... and with exactly 8 input rows, xg interleaved per group and nibble
  // position, [groups][8 positions p][8 rows][16]: one base address reaches
  // all 8 rows (the levels with 8-row passes read it, qlinear_impl.h).
  const float* xi = nullptr;
  // Q8_0 / Q4_0 weights in panels (kernels/ggml_panels.h): q holds each row's
  // blocks of 32 quantized as ggml's Q8_0 (Kp = K), with per row and block
  // the scale d and the sum of the block's q.
  const float* q8_scale = nullptr;  // [M, K / 32]
  const int32_t* q8_sum = nullptr;  // [M, K / 32]
  // Few input rows (decode, up to kQLinearStreamRows): each weight is read
  // once, from memory, and the panel tiles prefetch their streams ahead;
  // more rows reuse a block of weights from cache for every row tile.
  bool stream = false;
};

}  // namespace nm
