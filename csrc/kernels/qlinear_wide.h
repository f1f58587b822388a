// W8A8 on the panel layouts through int16 products, for the levels that
// define NM_QLINEAR_WIDE (AVX2, and AVX-512 without VNNI), at prefill row
// counts (QInput::q16 is set from more than kQLinearStreamRows input rows);
// included by qlinear_impl.h after qlinear_panel.h and qlinear_packed.h.
//
// Why: vpmaddubsw multiplies unsigned by signed bytes, so the byte path
// (qlinear_x86_ops.h pdot_i8) moves each input's sign onto the weight with
// one more op per product vector (vpsignb; at AVX-512 a masked subtract),
// and at AVX2 that op competes for the same two ports as vpmaddubsw and
// vpmaddwd: 3 port-slots per 32 products. Here each weight vector (kPR rows
// x 4 k) is widened once per k step to two int16 vectors (the first and
// second half of its rows) that every input row of the micro-tile shares,
// the inputs come widened (q16), and vpmaddwd multiplies and sums pairs of
// k into int32: 2 port-slots per 32 products. The lanes of an accumulator
// are (row, pair of k); the two pairs of a row are summed at the end
// (O::pfold_pairs). The sums are exact int32, as on every path, so the
// outputs are the byte path's bit for bit (kI8Offset is 0 at these levels).
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

#if defined(NM_QLINEAR_WIDE)

// Where a micro-tile's panel j writes: rows n .. n + nv, scale s_x·s_w and bias.
struct WidePanelOut {
  int64_t n;
  int nv;
  typename O::F s, b;
};

// Input rows [m0, m0 + MB) x NP level panels whose k-step-0 vectors are at
// w[j], the next ones `step` bytes apart, nkb steps.
template <int MB, int NP>
void wide_tile_w8a8(const QLinearArgs& a, const QInput& in, const uint8_t* const* w, int64_t step, int64_t nkb,
                    int64_t m0, const WidePanelOut* out) {
  typename O::PV lo[MB][NP], hi[MB][NP];
  NM_UNROLL_TILE
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NP; ++j) lo[m][j] = hi[m][j] = O::pzero();
  const int16_t* x0 = in.q16 + m0 * in.Kp;
  for (int64_t kb = 0; kb < nkb; ++kb) {
    typename O::PV wl[NP], wh[NP];
    NM_UNROLL_TILE
    for (int j = 0; j < NP; ++j) O::pwiden(w[j] + kb * step, wl[j], wh[j]);
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m) {
      const typename O::PV x = O::pbcast_i16(x0 + m * in.Kp + kb * kPanelK);
      NM_UNROLL_TILE
      for (int j = 0; j < NP; ++j) {
        lo[m][j] = O::pmadd_i16(lo[m][j], wl[j], x);
        hi[m][j] = O::pmadd_i16(hi[m][j], wh[j], x);
      }
    }
  }
  NM_UNROLL_TILE
  for (int j = 0; j < NP; ++j)
    NM_UNROLL_TILE
    for (int m = 0; m < MB; ++m)
      store_w8a8(a, in, m0 + m, out[j].n, out[j].nv, O::pfold_pairs(lo[m][j], hi[m][j]), out[j].s, out[j].b);
}

template <int V>
using WideInt = std::integral_constant<int, V>;

// Every micro-tile of M input rows x np level panels, O::kWideMB x
// O::kWideNP at a time (fewer at the ends): tile(WideInt<MB>, WideInt<NP>,
// m0, p) runs one.
template <int MB, class Tile>
void wide_tiles(int64_t M, int64_t np, Tile&& tile) {
  constexpr int NP = O::kWideNP;
  int64_t m0 = 0;
  for (; m0 + MB <= M; m0 += MB) {
    int64_t p = 0;
    for (; p + NP <= np; p += NP) tile(WideInt<MB>{}, WideInt<NP>{}, m0, p);
    for (; p < np; ++p) tile(WideInt<MB>{}, WideInt<1>{}, m0, p);
  }
  if constexpr (MB > 1) {
    if (m0 < M) wide_tiles<MB - 1>(M - m0, np, [&](auto mb, auto nb, int64_t m, int64_t p) { tile(mb, nb, m0 + m, p); });
  }
}

// Packed panels (qlinear_packed.h), weight rows [n0, n1): per block of input
// rows (qlinear_input_row_block), blocks of kQLinearPanelRows weight rows,
// each passed over by every tile of those input rows.
inline void rows_packed_wide(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  const int64_t prb = dtype_panel_row_bytes(a.w_dtype, a.K);
  const int64_t q0 = n0 / O::kPR, q1 = (n1 + O::kPR - 1) / O::kPR, block = kQLinearPanelRows / O::kPR;
  const int64_t mblock = qlinear_input_row_block(in.Kp * (int64_t)sizeof(int16_t), O::kWideMB);
  for (int64_t mb0 = 0; mb0 < a.M; mb0 += mblock) {
    const int64_t mrows = a.M - mb0 < mblock ? a.M - mb0 : mblock;
    for (int64_t b0 = q0; b0 < q1; b0 += block) {
      const int64_t b1 = b0 + block < q1 ? b0 + block : q1;
      wide_tiles<O::kWideMB>(mrows, b1 - b0, [&](auto mb, auto nb, int64_t m0, int64_t p) {
        constexpr int NP = decltype(nb)::value;
        const uint8_t* w[NP];
        WidePanelOut out[NP];
        for (int j = 0; j < NP; ++j) {
          const int64_t q = b0 + p + j, n = q * O::kPR;
          w[j] = level_panel(a, prb, q);
          out[j].n = n;
          out[j].nv = (int)(a.N - n < O::kPR ? a.N - n : O::kPR);
          packed_consts(a, n, out[j].nv, true, out[j].s, out[j].b);
        }
        wide_tile_w8a8<decltype(mb)::value, NP>(a, in, w, kPackedVec, prb / kPanelK, mb0 + m0, out);
      });
    }
  }
}

// Per-call panels (qlinear_panel.h), weight rows [n0, n1); ub: the task's scratch.
inline void rows_panel_wide(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* ub) {
  constexpr int PR = O::kPR;
  const int64_t nkb = (a.K + kPanelK - 1) / kPanelK;
  for (int64_t b0 = n0; b0 < n1; b0 += kQLinearPanelRows) {
    const int64_t b1 = b0 + kQLinearPanelRows < n1 ? b0 + kQLinearPanelRows : n1;
    const PanelBlock blk = pack_block_i8(a, in, b0, b1, ub);
    PanelRowConsts rc;
    panel_row_consts(a, b0, b1, true, rc);
    wide_tiles<O::kWideMB>(a.M, (blk.nrows + PR - 1) / PR, [&](auto mb, auto nb, int64_t m0, int64_t p) {
      constexpr int NP = decltype(nb)::value;
      const uint8_t* w[NP];
      WidePanelOut out[NP];
      for (int j = 0; j < NP; ++j) {
        const int64_t r0 = (p + j) * PR;  // from b0
        w[j] = blk.panels + (p + j) * blk.panel_bytes;
        out[j].n = b0 + r0;
        out[j].nv = (int)(blk.nrows - r0 < PR ? blk.nrows - r0 : PR);
        out[j].s = O::fload(rc.scale + r0);
        out[j].b = O::fload(rc.bias + r0);
      }
      wide_tile_w8a8<decltype(mb)::value, NP>(a, in, w, PR * kPanelK, nkb, m0, out);
    });
  }
}

#endif

}  // namespace
}  // namespace NM_QLINEAR_NS
}  // namespace nm
