// qlinear on weights packed once into the panel layout (core/dtype.h
// WeightLayout::Panels, kernels/qlinear.h qweight_pack_panels), for every
// input-row count of the int8 schemes (W8A8, W4A8); included by
// qlinear_impl.h at every level.
//
// At the x86 levels (NM_QLINEAR_PANELS) a level panel is O::kPR rows: 16
// (AVX-512: one packed panel) or 8 (AVX2: half of each 64-byte vector of a
// packed panel). A micro-tile keeps MB input rows x NP level panels of
// accumulators in registers; per 4 k it loads one vector per panel and
// broadcasts 4 input bytes per input row, so one dot product adds to kPR
// outputs and no lanes are summed at the end. At one input row (decode)
// that is one vector load, one dot product (and, at VNNI, one xor) per 64
// weight bytes. The portable level reads the same layout in plain loops.
//
// The arithmetic is the row tiles' (qlinear_impl.h), lane for lane: W8A8's
// exact int32 sum (less kI8Offset·Σ q_x) times s_x·s_w[n], plus b; W4A8's
// exact group sums (less 8·Σ_g q_x) accumulated by fma in group order from
// 0, then times s_x, plus b. A row's result so depends neither on the
// layout nor on the level.
#pragma once
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

// Bytes of one 4-byte group of a packed panel's 16 rows.
constexpr int64_t kPackedVec = kPanelRows * kPanelK;

#if defined(NM_QLINEAR_PANELS)

// Level panels per packed panel.
constexpr int kSub = (int)(kPanelRows / O::kPR);
static_assert(kPanelRows % O::kPR == 0, "a level panel is part of a packed panel");
// At a few input rows the weights stream from memory: each panel's stream
// is prefetched this many bytes ahead (past a panel's end: the next one's).
constexpr int64_t kPackedPrefetch = 2048;
// At one input row (decode) a micro-tile is one packed panel, one sequential
// stream, prefetched into L1 this many bytes ahead (bench/NOTES.md: more
// streams per tile, or prefetches into L2 only, stream slower from DRAM).
constexpr int64_t kStreamPrefetch = 4096;

// Whether streaming tiles of several input rows are one packed panel wide
// (packed_np): at VNNI; at the levels whose int8 products take several
// instructions the products bound such a tile, and wider tiles share each
// input broadcast among more panels.
constexpr bool kOneStreamTiles = O::kOneStreamTiles;

// The prefetch of a tile's vector p of its level panel j, `in.stream` only:
// a one-stream tile (see packed_np) prefetches once per packed vector (at
// its first level panel), other tiles of several input rows each vector.
// Non-temporal wherever several input rows share the weights (and for the
// one-stream tiles at VNNI): weights read once per step then leave the outer
// caches to the sequences' states (8 sequences' Mamba states are larger
// than L2; bench/NOTES.md). One input row at the other levels: into L1.
template <int MB>
inline void prefetch_packed(const QInput& in, const uint8_t* p, int j) {
  if (!in.stream) return;
  if (MB > 1 && !kOneStreamTiles) O::prefetch_nta(p + kPackedPrefetch);
  else if (j % kSub == 0) {
    if constexpr (kOneStreamTiles) O::prefetch_nta(p + kStreamPrefetch);
    else O::prefetch_l1(p + kStreamPrefetch);
  }
}

// Group 0 of level panel q (rows q·kPR ..); groups are kPackedVec bytes apart.
inline const uint8_t* level_panel(const QLinearArgs& a, int64_t prb, int64_t q) {
  return static_cast<const uint8_t*>(a.w) + (q / kSub) * kPanelRows * prb + (q % kSub) * (O::kPR * kPanelK);
}

// Scale (W8A8: s_x·s_w[n]; W4A8: unused) and bias of the nv valid rows from n
// (0 past them).
inline void packed_consts(const QLinearArgs& a, int64_t n, int nv, bool w8, typename O::F& s, typename O::F& b) {
  const bool f32_bias = !a.bias || a.bias_dtype == DType::F32;
  if (nv == O::kPR && f32_bias) {
    s = w8 ? O::fmul(O::fset1(a.x_scale), O::fload(a.w_scales + n)) : O::fzero();
    b = a.bias ? O::fload(static_cast<const float*>(a.bias) + n) : O::fzero();
    return;
  }
  alignas(64) float sc[O::kPR], bi[O::kPR];
  for (int r = 0; r < O::kPR; ++r) {
    sc[r] = w8 && r < nv ? a.x_scale * a.w_scales[n + r] : 0.0f;
    bi[r] = a.bias && r < nv ? load_as_f32(a.bias, a.bias_dtype, n + r) : 0.0f;
  }
  s = O::fload(sc);
  b = O::fload(bi);
}

// W8A8: input rows [m0, m0 + MB) x level panels [q0, q0 + NP).
template <int MB, int NP>
void packed_tile_w8a8(const QLinearArgs& a, const QInput& in, int64_t prb, int64_t q0, int64_t m0) {
  typename O::PV acc[MB][NP];
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NP; ++j) acc[m][j] = O::pzero();
  const uint8_t* w[NP];
  for (int j = 0; j < NP; ++j) w[j] = level_panel(a, prb, q0 + j);
  const int8_t* x0 = in.q + m0 * in.Kp;
  const int64_t nkb = prb / kPanelK;
  for (int64_t kb = 0; kb < nkb; ++kb) {
    typename O::PV wv[NP];
    NM_UNROLL_TILE
    for (int j = 0; j < NP; ++j) {
      prefetch_packed<MB>(in, w[j] + kb * kPackedVec, j);
      wv[j] = O::pflip_i8(O::ploadu(w[j] + kb * kPackedVec));
    }
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) {
      const typename O::PX x = O::pbcast_i8(x0 + m * in.Kp + kb * kPanelK);
      for (int j = 0; j < NP; ++j) acc[m][j] = O::pdot_i8(acc[m][j], wv[j], x);
    }
  }
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t n = (q0 + j) * O::kPR;
    const int nv = (int)(a.N - n < O::kPR ? a.N - n : O::kPR);
    typename O::F s, b;
    packed_consts(a, n, nv, true, s, b);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) store_w8a8(a, in, m0 + m, n, nv, acc[m][j], s, b);
  }
}

// W4A8: per group of 128 (two chunks: 16 packed groups, each one vector of
// nibbles for k 4j.. (low) and 32 + 4j.. (high) of its chunk) the exact
// int32 sums, scaled into float accumulators.
template <int MB, int NP>
void packed_tile_w4a8(const QLinearArgs& a, const QInput& in, int64_t prb, int64_t q0, int64_t m0) {
  const int64_t G = in.groups, ngroups = prb / kPanelK;  // 8 packed groups per chunk
  typename O::F f[MB][NP];
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NP; ++j) f[m][j] = O::fzero();
  const uint8_t* w[NP];
  const float* sc[NP];
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t q = q0 + j;
    w[j] = level_panel(a, prb, q);
    sc[j] = a.w_scales + (q / kSub) * G * kPanelRows + (q % kSub) * O::kPR;
  }
  const int8_t* x0 = in.q + m0 * in.Kp;
  const int32_t* gs0 = in.gsum + m0 * G;
  for (int64_t g = 0; g < G; ++g) {
    typename O::PV acc[MB][NP];
    for (int m = 0; m < MB; ++m)
      for (int j = 0; j < NP; ++j) acc[m][j] = O::pzero();
    const int64_t i1 = (g + 1) * 16 < ngroups ? (g + 1) * 16 : ngroups;
    for (int64_t i = g * 16; i < i1; ++i) {
      typename O::PV lo[NP], hi[NP];
      NM_UNROLL_TILE
      for (int j = 0; j < NP; ++j) {
        prefetch_packed<MB>(in, w[j] + i * kPackedVec, j);
        const typename O::PV v = O::ploadu(w[j] + i * kPackedVec);
        lo[j] = O::pnib_lo(v);
        hi[j] = O::pnib_hi(v);
      }
      const int64_t k = (i / 8) * kChunk + (i % 8) * kPanelK;
      NM_UNROLL_TILE
      for (int m = 0; m < MB; ++m) {
        const int8_t* xr = x0 + m * in.Kp + k;
        const typename O::PV xl = O::pbcast_u4(xr), xh = O::pbcast_u4(xr + 32);
        for (int j = 0; j < NP; ++j) acc[m][j] = O::pdot_u4x2(acc[m][j], lo[j], xl, hi[j], xh);
      }
    }
    NM_UNROLL_TILE
    for (int j = 0; j < NP; ++j) {
      const typename O::F s = O::fload(sc[j] + g * kPanelRows);
      NM_UNROLL_TILE
      for (int m = 0; m < MB; ++m) f[m][j] = w4a8_group_step(f[m][j], acc[m][j], gs0[m * G + g], s);
    }
  }
  const typename O::F xs = O::fset1(a.x_scale);
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t n = (q0 + j) * O::kPR;
    const int nv = (int)(a.N - n < O::kPR ? a.N - n : O::kPR);
    typename O::F s, b;
    packed_consts(a, n, nv, false, s, b);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) store_w4a8(a, in, m0 + m, n, nv, f[m][j], xs, b);
  }
}

// Q8_0 / Q4_0 panels (core/dtype.h): per block of 32 the exact int32 sums of the
// 16 rows (8 groups of 4 k; VNNI's offset taken back with the block's Σ q_x
// up front), then f += isum · (d_w · d_x) in float, block after block, as
// ggml's Q8_0 dot product.
// Q4_0 the same with the nibbles (0..15, unsigned for vpdpbusd /
// vpmaddubsw as they are) against x, two groups of 4 k per vector (low:
// k 4g.., high: k 16 + 4g..), less 8 · Σ q_x up front.
template <bool Q4, int MB, int NP>
void packed_tile_ggml(const QLinearArgs& a, const QInput& in, int64_t q0, int64_t m0) {
  constexpr int64_t kQuants = kPanelRows * (Q4 ? kQuantBlock / 2 : kQuantBlock);  // bytes per block
  constexpr int64_t kBlock = kQuants + 2 * kPanelRows;
  constexpr int32_t kOffset = Q4 ? 8 : O::kI8Offset;
  const int64_t nb = a.K / kQuantBlock;
  const int64_t pstride = nb * kBlock;  // bytes of one packed panel
  typename O::F f[MB][NP];
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NP; ++j) f[m][j] = O::fzero();
  const uint8_t* w[NP];
  const uint8_t* sc[NP];
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t q = q0 + j;
    const uint8_t* panel = static_cast<const uint8_t*>(a.w) + (q / kSub) * pstride;
    w[j] = panel + (q % kSub) * (O::kPR * kPanelK);
    sc[j] = panel + kQuants + (q % kSub) * (O::kPR * 2);
  }
  const int8_t* x0 = in.q + m0 * in.Kp;
  const float* d0 = in.q8_scale + m0 * nb;
  const int32_t* s0 = in.q8_sum + m0 * nb;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t wo = b * kBlock;
    typename O::PV acc[MB][NP];
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) {
      const typename O::PV init = kOffset ? O::pset1(-kOffset * s0[m * nb + b]) : O::pzero();
      for (int j = 0; j < NP; ++j) acc[m][j] = init;
    }
    NM_UNROLL_TILE
    for (int g = 0; g < (int)(kQuants / kPackedVec); ++g) {
      if constexpr (Q4) {
        typename O::PV lo[NP], hi[NP];
        NM_UNROLL_TILE
        for (int j = 0; j < NP; ++j) {
          prefetch_packed<MB>(in, w[j] + wo + g * kPackedVec, j);
          const typename O::PV v = O::ploadu(w[j] + wo + g * kPackedVec);
          lo[j] = O::pnib_lo(v);
          hi[j] = O::pnib_hi(v);
        }
        NM_UNROLL_TILE
        for (int m = 0; m < MB; ++m) {
          const int8_t* xr = x0 + m * in.Kp + b * kQuantBlock + g * kPanelK;
          const typename O::PV xl = O::pbcast_u4(xr), xh = O::pbcast_u4(xr + kQuantBlock / 2);
          for (int j = 0; j < NP; ++j) acc[m][j] = O::pdot_u4x2(acc[m][j], lo[j], xl, hi[j], xh);
        }
      } else {
        typename O::PV wv[NP];
        NM_UNROLL_TILE
        for (int j = 0; j < NP; ++j) {
          prefetch_packed<MB>(in, w[j] + wo + g * kPackedVec, j);
          wv[j] = O::pflip_i8(O::ploadu(w[j] + wo + g * kPackedVec));
        }
        NM_UNROLL_TILE
        for (int m = 0; m < MB; ++m) {
          const typename O::PX x = O::pbcast_i8(x0 + m * in.Kp + b * kQuantBlock + g * kPanelK);
          for (int j = 0; j < NP; ++j) acc[m][j] = O::pdot_i8(acc[m][j], wv[j], x);
        }
      }
    }
    typename O::F dw[NP];
    NM_UNROLL_TILE
    for (int j = 0; j < NP; ++j) dw[j] = O::pscale_f16(sc[j] + wo);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) {
      const typename O::F dx = O::fset1(d0[m * nb + b]);
      for (int j = 0; j < NP; ++j) f[m][j] = O::fmadd(O::pcvt(acc[m][j]), O::fmul(dw[j], dx), f[m][j]);
    }
  }
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j) {
    const int64_t n = (q0 + j) * O::kPR;
    const int nv = (int)(a.N - n < O::kPR ? a.N - n : O::kPR);
    typename O::F s, bias;
    packed_consts(a, n, nv, false, s, bias);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) O::fstore_n(a.y + (m0 + m) * a.y_stride + n, O::fadd(f[m][j], bias), nv);
  }
}

// Q8_0 / Q4_0: level panels per micro-tile of MB input rows (one packed
// panel where the weights stream at the VNNI level, as packed_np), and
// the tile height for many rows (accumulators, sums, weights and scales in
// registers).
template <int MB, bool Stream>
constexpr int block_panel_np() {
  if constexpr (MB == 1 || (Stream && kOneStreamTiles)) return kSub;  // one packed panel: one stream (kStreamPrefetch)
  if constexpr (O::kPR == 16) return MB <= 2 ? 3 : 2;
  else return 1;
}
constexpr int kBlockPanelMB = 4;

template <bool Q4, int MB, bool Stream>
void ggml_mtile(const QLinearArgs& a, const QInput& in, int64_t q0, int64_t q1, int64_t m0) {
  constexpr int NP = block_panel_np<MB, Stream>();
  int64_t q = q0;
  for (; q + NP <= q1; q += NP) packed_tile_ggml<Q4, MB, NP>(a, in, q, m0);
  for (; q < q1; ++q) packed_tile_ggml<Q4, MB, 1>(a, in, q, m0);
}

template <bool Q4, int MB, bool Stream>
void ggml_mtile_rest(const QLinearArgs& a, const QInput& in, int64_t q0, int64_t q1, int64_t m0, int64_t rest) {
  if constexpr (MB > 1) {
    if (rest < MB) return ggml_mtile_rest<Q4, MB - 1, Stream>(a, in, q0, q1, m0, rest);
  }
  ggml_mtile<Q4, MB, Stream>(a, in, q0, q1, m0);
}

// Weight rows [n0, n1) (n0 a multiple of kPanelRows) of Q8_0 / Q4_0 panels
// for all M input rows, blocked as rows_packed.
template <bool Q4, bool Stream>
void rows_packed_ggml_blocks(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  constexpr int MB = kBlockPanelMB;
  constexpr int NP = block_panel_np<MB, Stream>();
  constexpr int64_t block = Stream && kOneStreamTiles ? NP : kQLinearPanelRows / O::kPR > 2 ? kQLinearPanelRows / O::kPR : 2;
  const int64_t q0 = n0 / O::kPR, q1 = (n1 + O::kPR - 1) / O::kPR;
  if (a.M < MB) return ggml_mtile_rest<Q4, MB - 1, Stream>(a, in, q0, q1, 0, a.M);
  for (int64_t b0 = q0; b0 < q1; b0 += block) {
    const int64_t b1 = b0 + block < q1 ? b0 + block : q1;
    int64_t m0 = 0;
    for (; m0 + MB <= a.M; m0 += MB) ggml_mtile<Q4, MB, Stream>(a, in, b0, b1, m0);
    if (m0 < a.M) ggml_mtile_rest<Q4, MB - 1, Stream>(a, in, b0, b1, m0, a.M - m0);
  }
}

template <bool Q4>
void rows_packed_ggml(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  if (in.stream) rows_packed_ggml_blocks<Q4, true>(a, in, n0, n1);
  else rows_packed_ggml_blocks<Q4, false>(a, in, n0, n1);
}

// Level panels per micro-tile of MB input rows (the accumulators, weight
// vectors and broadcasts fit the level's registers). Where the weights
// stream from memory (Stream: decode's few input rows) the VNNI level takes
// one packed panel (one sequential stream) at every MB: several streams per
// tile read memory slower than its dot products need it (bench/NOTES.md).
template <bool W8, int MB, bool Stream>
constexpr int packed_np() {
  if constexpr (MB == 1 || (Stream && kOneStreamTiles)) return kSub;  // one packed panel: one stream (kStreamPrefetch)
  if constexpr (W8) return MB <= 2 ? 4 : MB <= 4 ? (O::kPR == 16 ? 4 : 2) : O::kPanelNPI8;
  else return MB <= 2 ? (O::kPR == 16 ? 4 : 2) : O::kPanelNPI4;
}

// Input rows [m0, m0 + MB) against level panels [q0, q1).
template <bool W8, int MB, bool Stream>
void packed_mtile(const QLinearArgs& a, const QInput& in, int64_t prb, int64_t q0, int64_t q1, int64_t m0) {
  constexpr int NP = packed_np<W8, MB, Stream>();
  int64_t q = q0;
  for (; q + NP <= q1; q += NP) {
    if constexpr (W8) packed_tile_w8a8<MB, NP>(a, in, prb, q, m0);
    else packed_tile_w4a8<MB, NP>(a, in, prb, q, m0);
  }
  for (; q < q1; ++q) {
    if constexpr (W8) packed_tile_w8a8<MB, 1>(a, in, prb, q, m0);
    else packed_tile_w4a8<MB, 1>(a, in, prb, q, m0);
  }
}

// The rest (1 <= rest <= MB) input rows from m0, in micro-tiles of that height.
template <bool W8, int MB, bool Stream>
void packed_mtile_rest(const QLinearArgs& a, const QInput& in, int64_t prb, int64_t q0, int64_t q1, int64_t m0,
                       int64_t rest) {
  if constexpr (MB > 1) {
    if (rest < MB) return packed_mtile_rest<W8, MB - 1, Stream>(a, in, prb, q0, q1, m0, rest);
  }
  packed_mtile<W8, MB, Stream>(a, in, prb, q0, q1, m0);
}

// Weight rows [n0, n1) (n0 a multiple of kPanelRows) for all M input rows:
// fewer input rows than one micro-tile take every panel in one pass; more
// go block by block, kQLinearPanelRows rows at a time as the per-call pack
// does (the block's panels stay in L1 while every tile of input rows
// passes over them), or, streaming one-panel tiles, one tile's panels at a
// time (one sequential stream).
template <bool W8, bool Stream>
void rows_packed_blocks(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  constexpr int MB = W8 ? O::kPanelMBI8 : O::kPanelMBI4;
  constexpr int NP = packed_np<W8, MB, Stream>();
  constexpr int64_t block = Stream && kOneStreamTiles ? NP : kQLinearPanelRows / O::kPR > NP ? kQLinearPanelRows / O::kPR : NP;
  const int64_t prb = dtype_panel_row_bytes(a.w_dtype, a.K);
  const int64_t q0 = n0 / O::kPR, q1 = (n1 + O::kPR - 1) / O::kPR;
  if (a.M < MB) return packed_mtile_rest<W8, MB - 1, Stream>(a, in, prb, q0, q1, 0, a.M);
  for (int64_t b0 = q0; b0 < q1; b0 += block) {
    const int64_t b1 = b0 + block < q1 ? b0 + block : q1;
    int64_t m0 = 0;
    for (; m0 + MB <= a.M; m0 += MB) packed_mtile<W8, MB, Stream>(a, in, prb, b0, b1, m0);
    if (m0 < a.M) packed_mtile_rest<W8, MB - 1, Stream>(a, in, prb, b0, b1, m0, a.M - m0);
  }
}

template <bool W8>
void rows_packed(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  if (in.stream) rows_packed_blocks<W8, true>(a, in, n0, n1);
  else rows_packed_blocks<W8, false>(a, in, n0, n1);
}

#else  // the portable level: plain loops over the same layout

template <bool Q4>
void rows_packed_ggml(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  constexpr int64_t kQuants = kPanelRows * (Q4 ? kQuantBlock / 2 : kQuantBlock), kBlock = kQuants + 2 * kPanelRows;
  const int64_t nb = a.K / kQuantBlock;
  for (int64_t n = n0; n < n1; n += kPanelRows) {
    const uint8_t* P = static_cast<const uint8_t*>(a.w) + (n / kPanelRows) * nb * kBlock;
    const int nv = (int)(n1 - n < kPanelRows ? n1 - n : kPanelRows);
    for (int64_t m = 0; m < a.M; ++m) {
      const int8_t* x = in.q + m * in.Kp;
      float f[kPanelRows] = {};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* B = P + b * kBlock;
        for (int r = 0; r < nv; ++r) {
          int32_t acc = 0;
          for (int64_t j = 0; j < kQuants / kPanelRows; ++j) {
            const uint8_t v = B[(j / kPanelK) * kPackedVec + r * kPanelK + j % kPanelK];
            if (Q4)
              acc += ((int32_t)(v & 0x0f) - 8) * x[b * kQuantBlock + j] + ((int32_t)(v >> 4) - 8) * x[b * kQuantBlock + 16 + j];
            else
              acc += (int32_t)(int8_t)v * (int32_t)x[b * kQuantBlock + j];
          }
          uint16_t h;
          std::memcpy(&h, B + kQuants + 2 * r, 2);
          f[r] = std::fma((float)acc, f16_to_f32(h) * in.q8_scale[m * nb + b], f[r]);
        }
      }
      for (int r = 0; r < nv; ++r) a.y[m * a.y_stride + n + r] = f[r] + bias_at(a, n + r);
    }
  }
}

template <bool W8>
void rows_packed(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  const int64_t prb = dtype_panel_row_bytes(a.w_dtype, a.K), ngroups = prb / kPanelK, G = in.groups;
  for (int64_t n = n0; n < n1; n += kPanelRows) {
    const int64_t p = n / kPanelRows;
    const uint8_t* P = static_cast<const uint8_t*>(a.w) + p * kPanelRows * prb;
    const int nv = (int)(n1 - n < kPanelRows ? n1 - n : kPanelRows);
    for (int64_t m = 0; m < a.M; ++m) {
      const int8_t* x = in.q + m * in.Kp;
      float out[kPanelRows];
      if constexpr (W8) {
        int32_t acc[kPanelRows] = {};
        for (int64_t i = 0; i < ngroups; ++i)
          for (int r = 0; r < kPanelRows; ++r)
            for (int b = 0; b < kPanelK; ++b)
              acc[r] += (int32_t)(int8_t)P[i * kPackedVec + r * kPanelK + b] * (int32_t)x[i * kPanelK + b];
        for (int r = 0; r < nv; ++r) out[r] = (float)acc[r] * (a.x_scale * a.w_scales[n + r]) + bias_at(a, n + r);
      } else {
        float f[kPanelRows] = {};
        for (int64_t g = 0; g < G; ++g) {
          int32_t acc[kPanelRows] = {};
          const int64_t i1 = (g + 1) * 16 < ngroups ? (g + 1) * 16 : ngroups;
          for (int64_t i = g * 16; i < i1; ++i) {
            const int64_t k = (i / 8) * kChunk + (i % 8) * kPanelK;
            for (int r = 0; r < kPanelRows; ++r)
              for (int b = 0; b < kPanelK; ++b) {
                const uint8_t v = P[i * kPackedVec + r * kPanelK + b];
                acc[r] += (int32_t)(v & 0x0f) * x[k + b] + (int32_t)(v >> 4) * x[k + 32 + b];
              }
          }
          const float* s = a.w_scales + (p * G + g) * kPanelRows;
          for (int r = 0; r < kPanelRows; ++r) f[r] = std::fma((float)(acc[r] - 8 * in.gsum[m * G + g]), s[r], f[r]);
        }
        for (int r = 0; r < nv; ++r) out[r] = f[r] * a.x_scale + bias_at(a, n + r);
      }
      for (int r = 0; r < nv; ++r) a.y[m * a.y_stride + n + r] = in.nan_row[m] ? NAN : out[r];
    }
  }
}

#endif

}  // namespace
}  // namespace NM_QLINEAR_NS
}  // namespace nm
