// The panel path of qlinear's int8 schemes (W8A8, W4A8) for several input
// rows (qlinear_input.h: qlinear_panel_path), included by qlinear_impl.h at the x86
// levels (O::kPR > 0).
//
// Each block of up to kQLinearPanelRows weight rows is packed once per call
// into panels of kPR rows (O::pack_i8 / pack_u4), laid out [Kp / 4][kPR][4]:
// one vector holds 4 consecutive k of kPR rows, so one dot product of 4
// bytes per int32 lane against 4 input bytes broadcast to every lane adds to
// kPR outputs at once, and no lanes are summed at the end. A micro-tile
// keeps MB input rows x NP panels of accumulators in registers.
//
// The arithmetic is the row tiles' (qlinear_impl.h), lane for lane: W8A8's
// exact int32 sum (less kI8Offset·Σ q_x) times s_x·s_w[n], plus b; W4A8's
// exact group sums (less 8·Σ_g q_x) accumulated by fma in group order, then
// times s_x, plus b. A row's result so does not depend on the path.
#pragma once
#include <cmath>
#include <cstring>

#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

// kPanelK (core/dtype.h): k per int32 lane of a panel vector.
// The pack prefetches the rows this many blocks ahead.
constexpr int64_t kPanelPrefetchBlocks = 2;

// The packed block in the task's scratch: panels of Kp·kPR bytes (k past K
// meet zero inputs, so their weights never count), then for W4A8 each
// panel's group scales, [G][kPR] floats.
struct PanelBlock {
  const uint8_t* panels;
  int64_t panel_bytes;
  const float* scales;  // W4A8
  int64_t nrows;        // valid rows from the block's first
};

// Row pointers of panel rows n .. n + kPR at byte offset off; rows past the
// block's end repeat its last row (their outputs are not stored).
inline void panel_rows(const QLinearArgs& a, int64_t n, int64_t last, int64_t off, const uint8_t** rows) {
  for (int r = 0; r < O::kPR; ++r) {
    const int64_t row = n + r < last ? n + r : last;
    rows[r] = static_cast<const uint8_t*>(a.w) + row * a.w_stride + off;
  }
}

// Packs rows [b0, b1) (I8: rows of K bytes; the last partial chunk through
// a zero-padded copy). Each row's next block is prefetched meanwhile.
inline PanelBlock pack_block_i8(const QLinearArgs& a, const QInput& in, int64_t b0, int64_t b1, uint8_t* ub) {
  constexpr int PR = O::kPR;
  const int64_t pb = in.Kp * PR, full = a.K / kChunk, rest = a.K - full * kChunk;
  const int64_t pf = kPanelPrefetchBlocks * kQLinearPanelRows * a.w_stride;
  for (int64_t n = b0, p = 0; n < b1; n += PR, ++p) {
    const uint8_t* rows[PR];
    uint8_t* out = ub + p * pb;
    for (int64_t c = 0; c < full; ++c) {
      panel_rows(a, n, b1 - 1, c * kChunk, rows);
      for (int r = 0; r < PR; ++r) O::prefetch(rows[r] + pf);
      O::pack_i8(rows, out + c * kChunk * PR, O::kI8Offset != 0);
    }
    if (rest > 0) {
      alignas(64) uint8_t tail[PR][kChunk];
      panel_rows(a, n, b1 - 1, full * kChunk, rows);
      for (int r = 0; r < PR; ++r) {
        std::memset(tail[r], 0, kChunk);
        std::memcpy(tail[r], rows[r], (size_t)rest);
        rows[r] = tail[r];
      }
      O::pack_i8(rows, out + full * kChunk * PR, O::kI8Offset != 0);
    }
  }
  return {ub, pb, nullptr, b1 - b0};
}

// Packs rows [b0, b1) of an I4 weight (rows of whole chunks) to nibbles
// 0..15, and their group scales.
inline PanelBlock pack_block_u4(const QLinearArgs& a, const QInput& in, int64_t b0, int64_t b1, uint8_t* ub) {
  constexpr int PR = O::kPR;
  const int64_t pb = in.Kp * PR, chunks = in.Kp / kChunk, G = in.groups;
  const int64_t pf = kPanelPrefetchBlocks * kQLinearPanelRows * a.w_stride;
  float* sc = reinterpret_cast<float*>(ub + kQLinearPanelRows * in.Kp);
  for (int64_t n = b0, p = 0; n < b1; n += PR, ++p) {
    const uint8_t* rows[PR];
    uint8_t* out = ub + p * pb;
    for (int64_t c = 0; c < chunks; ++c) {
      panel_rows(a, n, b1 - 1, c * (kChunk / 2), rows);
      if (c % 2 == 0)
        for (int r = 0; r < PR; ++r) O::prefetch(rows[r] + pf);
      O::pack_u4(rows, out + c * kChunk * PR);
    }
    for (int r = 0; r < PR; ++r) {
      const int64_t row = n + r < b1 ? n + r : b1 - 1;
      for (int64_t g = 0; g < G; ++g) sc[(p * G + g) * PR + r] = a.w_scales[row * G + g];
    }
  }
  return {ub, pb, sc, b1 - b0};
}

// Per-row constants of a block for the epilogues (rows past its end: 0).
struct PanelRowConsts {
  alignas(64) float scale[kQLinearPanelRows];  // W8A8: s_x · s_w[n]
  alignas(64) float bias[kQLinearPanelRows];
};

inline void panel_row_consts(const QLinearArgs& a, int64_t b0, int64_t b1, bool w8, PanelRowConsts& c) {
  for (int64_t i = 0; i < kQLinearPanelRows; ++i) {
    const int64_t n = b0 + i;
    c.scale[i] = w8 && n < b1 ? a.x_scale * a.w_scales[n] : 0.0f;
    c.bias[i] = a.bias && n < b1 ? load_as_f32(a.bias, a.bias_dtype, n) : 0.0f;
  }
}

// The micro-tiles' arithmetic, shared by the per-call panels (this file) and
// the packed ones (qlinear_packed.h), lane for lane as the row tiles':
// W8A8: y[m, n..n+nv) = (Σ q_w·q_x less kI8Offset·Σ q_x) · s + b (s = s_x·s_w).
inline void store_w8a8(const QLinearArgs& a, const QInput& in, int64_t m, int64_t n, int nv, typename O::PV acc,
                       typename O::F s, typename O::F b) {
  const typename O::PV sum = O::psub(acc, O::pset1(O::kI8Offset * in.rowsum[m]));
  typename O::F v = O::fadd(O::fmul(O::pcvt(sum), s), b);
  if (in.nan_row[m]) v = O::fset1(NAN);
  O::fstore_n(a.y + m * a.y_stride + n, v, nv);
}
// W4A8, one group: f + (Σ nibble·q_x less 8·Σ_g q_x) · s_w[g], in group order.
inline typename O::F w4a8_group_step(typename O::F f, typename O::PV acc, int32_t gsum, typename O::F s) {
  return O::fmadd(O::pcvt(O::psub(acc, O::pset1(8 * gsum))), s, f);
}
// W4A8, the end: y[m, n..n+nv) = f · s_x + b.
inline void store_w4a8(const QLinearArgs& a, const QInput& in, int64_t m, int64_t n, int nv, typename O::F f,
                       typename O::F xs, typename O::F b) {
  typename O::F v = O::fadd(O::fmul(f, xs), b);
  if (in.nan_row[m]) v = O::fset1(NAN);
  O::fstore_n(a.y + m * a.y_stride + n, v, nv);
}

// W8A8 micro-tile: input rows [m0, m0 + MB) x panels [p0, p0 + NP).
template <int MB, int NP>
void panel_tile_w8a8(const QLinearArgs& a, const QInput& in, const PanelBlock& blk, const PanelRowConsts& rc,
                     int64_t b0, int64_t p0, int64_t m0) {
  constexpr int PR = O::kPR;
  typename O::PV acc[MB][NP];
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NP; ++j) acc[m][j] = O::pzero();
  const uint8_t* w0 = blk.panels + p0 * blk.panel_bytes;
  const int8_t* x0 = in.q + m0 * in.Kp;
  const int64_t nkb = (a.K + kPanelK - 1) / kPanelK;
  for (int64_t kb = 0; kb < nkb; ++kb) {
    typename O::PV w[NP];
    for (int j = 0; j < NP; ++j) w[j] = O::pload(w0 + j * blk.panel_bytes + kb * (PR * kPanelK));
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) {
      const typename O::PX x = O::pbcast_i8(x0 + m * in.Kp + kb * kPanelK);
      for (int j = 0; j < NP; ++j) acc[m][j] = O::pdot_i8(acc[m][j], w[j], x);
    }
  }
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t r0 = (p0 + j) * PR;  // first row of the panel, from b0
    const int nv = (int)(blk.nrows - r0 < PR ? blk.nrows - r0 : PR);
    const typename O::F s = O::fload(rc.scale + r0), b = O::fload(rc.bias + r0);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) store_w8a8(a, in, m0 + m, b0 + r0, nv, acc[m][j], s, b);
  }
}

// W4A8 micro-tile: per group of 128 (32 panel vectors) exact int32 sums,
// scaled into float accumulators.
template <int MB, int NP>
void panel_tile_w4a8(const QLinearArgs& a, const QInput& in, const PanelBlock& blk, const PanelRowConsts& rc,
                     int64_t b0, int64_t p0, int64_t m0) {
  constexpr int PR = O::kPR;
  constexpr int64_t kPerGroup = kI4Group / kPanelK;
  const int64_t G = in.groups;
  typename O::F f[MB][NP];
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NP; ++j) f[m][j] = O::fzero();
  const uint8_t* w0 = blk.panels + p0 * blk.panel_bytes;
  const float* s0 = blk.scales + p0 * G * PR;
  const int8_t* x0 = in.q + m0 * in.Kp;
  const int32_t* gs0 = in.gsum + m0 * G;
  const int64_t nkb = (a.K + kPanelK - 1) / kPanelK;
  for (int64_t g = 0; g < G; ++g) {
    typename O::PV acc[MB][NP];
    for (int m = 0; m < MB; ++m)
      for (int j = 0; j < NP; ++j) acc[m][j] = O::pzero();
    const int64_t kb1 = (g + 1) * kPerGroup < nkb ? (g + 1) * kPerGroup : nkb;
    for (int64_t kb = g * kPerGroup; kb < kb1; ++kb) {
      typename O::PV w[NP];
      for (int j = 0; j < NP; ++j) w[j] = O::pload(w0 + j * blk.panel_bytes + kb * (PR * kPanelK));
      NM_UNROLL_TILE
      for (int m = 0; m < MB; ++m) {
        const typename O::PV x = O::pbcast_u4(x0 + m * in.Kp + kb * kPanelK);
        for (int j = 0; j < NP; ++j) acc[m][j] = O::pdot_u4(acc[m][j], w[j], x);
      }
    }
    NM_UNROLL_TILE
    for (int j = 0; j < NP; ++j) {
      const typename O::F s = O::fload(s0 + (j * G + g) * PR);
      NM_UNROLL_TILE
      for (int m = 0; m < MB; ++m) f[m][j] = w4a8_group_step(f[m][j], acc[m][j], gs0[m * G + g], s);
    }
  }
  const typename O::F xs = O::fset1(a.x_scale);
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t r0 = (p0 + j) * PR;
    const int nv = (int)(blk.nrows - r0 < PR ? blk.nrows - r0 : PR);
    const typename O::F b = O::fload(rc.bias + r0);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) store_w4a8(a, in, m0 + m, b0 + r0, nv, f[m][j], xs, b);
  }
}

// Input rows [m0, m0 + MB) against every panel of the block, NP at a time.
template <bool W8, int MB>
void panel_mtile(const QLinearArgs& a, const QInput& in, const PanelBlock& blk, const PanelRowConsts& rc,
                 int64_t b0, int64_t m0) {
  constexpr int NP = W8 ? O::kPanelNPI8 : O::kPanelNPI4;
  const int64_t np = (blk.nrows + O::kPR - 1) / O::kPR;
  int64_t p = 0;
  for (; p + NP <= np; p += NP) {
    if constexpr (W8) panel_tile_w8a8<MB, NP>(a, in, blk, rc, b0, p, m0);
    else panel_tile_w4a8<MB, NP>(a, in, blk, rc, b0, p, m0);
  }
  for (; p < np; ++p) {
    if constexpr (W8) panel_tile_w8a8<MB, 1>(a, in, blk, rc, b0, p, m0);
    else panel_tile_w4a8<MB, 1>(a, in, blk, rc, b0, p, m0);
  }
}

// The last rest (< MB) input rows from m0, in one micro-tile of that height.
template <bool W8, int MB>
void panel_mtile_rest(const QLinearArgs& a, const QInput& in, const PanelBlock& blk, const PanelRowConsts& rc,
                      int64_t b0, int64_t m0, int64_t rest) {
  if constexpr (MB > 1) {
    if (rest < MB) return panel_mtile_rest<W8, MB - 1>(a, in, blk, rc, b0, m0, rest);
  }
  panel_mtile<W8, MB>(a, in, blk, rc, b0, m0);
}

// Weight rows [n0, n1) for all M input rows; ub: the task's scratch
// (qlinear.cpp sizes it: kQLinearPanelRows · (Kp + 4·groups) bytes).
template <bool W8>
void rows_panel(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* ub) {
  constexpr int MB = W8 ? O::kPanelMBI8 : O::kPanelMBI4;
  for (int64_t b0 = n0; b0 < n1; b0 += kQLinearPanelRows) {
    const int64_t b1 = b0 + kQLinearPanelRows < n1 ? b0 + kQLinearPanelRows : n1;
    const PanelBlock blk = W8 ? pack_block_i8(a, in, b0, b1, ub) : pack_block_u4(a, in, b0, b1, ub);
    PanelRowConsts rc;
    panel_row_consts(a, b0, b1, W8, rc);
    int64_t m0 = 0;
    for (; m0 + MB <= a.M; m0 += MB) panel_mtile<W8, MB>(a, in, blk, rc, b0, m0);
    if (m0 < a.M) panel_mtile_rest<W8, MB - 1>(a, in, blk, rc, b0, m0, a.M - m0);
  }
}

}  // namespace
}  // namespace NM_QLINEAR_NS
}  // namespace nm
