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
// per-task scratch holds that many rows of Kp floats.
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
  // Few input rows (decode, up to kQLinearStreamRows): each weight is read
  // once, from memory, and the panel tiles prefetch their streams ahead;
  // more rows reuse a block of weights from cache for every row tile.
  bool stream = false;
};

}  // namespace nm
