// Per-level bodies of qlinear (semantics in qlinear.h), written once against
// an integer "ops" type O that each level's unit defines before including
// this file (qlinear_{scalar,avx2,avx512,avx512vnni}.cpp). O provides:
//   I           64 int8 lanes (a chunk of 64 elements along K)
//   A           int32 accumulator lanes;  F  float32 lanes, FW of them
//   load_i8(p)  64 int8 at p;   load_u4(p)  the 64 nibbles (0..15) of an I4
//               chunk of 32 bytes at p, in element order; store_u4(p, out)
//               writes them as 64 bytes to out
//   dot_i8(acc, w, x)   acc + Σ (w + kI8Offset)·x over groups of lanes
//   dot_u4(acc, u, x)   acc + Σ u·x (u unsigned 0..15)
//   hsum(acc)           Σ lanes (int32, exact)
//   Q, F4               four int32 / float32 lanes: reduce4(a0..a3) the exact
//                       Σ lanes of each of four A's; qsetr, qsub; f4zero,
//                       f4setr, f4store, f4_fma_cvt(f, i, s) = fma(float(i), s, f)
//   u4_table(s)         T: what u4_to_f needs to produce s·(nibble - 8)
//   u4_to_f(p, t, out)  the 64 values s·(nibble - 8) of a chunk as 64 / FW F's
//   F ops: fzero, fload(p), fstore(p, f), fset1, fmul, fmadd(a, b, c) = a·b + c, hsumf
//   prefetch(p)         a hint to load the line at p (any address: never faults)
//   tile shapes (weight rows x input rows) per scheme, sized so that the
//   accumulators fit the level's registers: kRowsI8 x kInRowsI8 (W8A8),
//   kRowsI4 x kInRowsI4 (W4A8: int and float accumulators), kRowsF x
//   kInRowsF (W4A16), every input-row count at most 4
// Levels that define NM_QLINEAR_PANELS also provide the panel ops of
// qlinear_panel.h (the int8 schemes' path for several input rows: qlinear_panel_path)
// and qlinear_packed.h (weights packed at load: ploadu, pflip_i8, pnib_lo,
// pnib_hi, pdot_u4x2).
// qlinear's float steps are written out in order, and its units are built
// with -ffp-contract=off (CMakeLists.txt) so that the compiler fuses no
// multiply-add the code does not spell: every level and path rounds alike.
// Everything here has internal linkage (anonymous namespace): an ISA object
// must not define weak symbols (scripts/check-isa-symbols.sh).
#include <cmath>
#include <cstring>

#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

constexpr int64_t kChunk = 64;
// Weight rows are prefetched (into L2) about kPrefetchBytes ahead of the
// tile being read: the rows are short (K bytes, or K / 2), so a tile ends
// before the hardware prefetcher has picked up its streams. Distances are in
// bench/NOTES.md.
constexpr int64_t kPrefetchBytes = 8192;
// Offset (bytes) from a tile's first row to the rows prefetched meanwhile:
// whole rows, at least one tile of R rows ahead.
inline int64_t prefetch_offset(int64_t R, int64_t row_bytes) {
  const int64_t rows = (kPrefetchBytes + row_bytes - 1) / (row_bytes > 0 ? row_bytes : 1);
  return (rows > R ? rows : R) * row_bytes;
}

inline float bias_at(const QLinearArgs& a, int64_t n) {
  if (!a.bias) return 0.0f;
  return load_as_f32(a.bias, a.bias_dtype, n);
}

// W8A8: R weight rows from n x MB input rows from m0. The chunk loop makes
// no calls and takes no addresses, so the accumulators stay in registers;
// the last chunk of a row whose K is not a multiple of 64 is read through a
// zero-padded copy (rows are only K bytes long), after the loop.
template <int R, int MB>
void tile_w8a8(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0) {
  typename O::A acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = O::azero();
  const int8_t* w0 = static_cast<const int8_t*>(a.w) + n * a.w_stride;
  const int8_t* x0 = in.q + m0 * in.Kp;
  const int64_t full = a.K / kChunk;
  const int8_t* pf = w0 + prefetch_offset(R, a.w_stride);
  for (int64_t c = 0; c < full; ++c) {
    typename O::I x[MB];
    for (int m = 0; m < MB; ++m) x[m] = O::load_i8(x0 + m * in.Kp + c * kChunk);
    for (int r = 0; r < R; ++r) O::prefetch(pf + r * a.w_stride + c * kChunk);
    for (int r = 0; r < R; ++r) {
      const typename O::I w = O::load_i8(w0 + r * a.w_stride + c * kChunk);
      for (int m = 0; m < MB; ++m) acc[r][m] = O::dot_i8(acc[r][m], w, x[m]);
    }
  }
  const int64_t rest = a.K - full * kChunk;
  if (rest > 0) {
    alignas(64) int8_t tail[R][kChunk];
    for (int r = 0; r < R; ++r) {
      std::memset(tail[r], 0, kChunk);
      std::memcpy(tail[r], w0 + r * a.w_stride + full * kChunk, (size_t)rest);
    }
    typename O::I x[MB];
    for (int m = 0; m < MB; ++m) x[m] = O::load_i8(x0 + m * in.Kp + full * kChunk);
    for (int r = 0; r < R; ++r) {
      const typename O::I w = O::load_i8(tail[r]);
      for (int m = 0; m < MB; ++m) acc[r][m] = O::dot_i8(acc[r][m], w, x[m]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float s = a.x_scale * a.w_scales[n + r];
    const float b = bias_at(a, n + r);
    for (int m = 0; m < MB; ++m) {
      const int32_t sum = O::hsum(acc[r][m]) - O::kI8Offset * in.rowsum[m0 + m];
      float v = (float)sum * s + b;
      if (in.nan_row[m0 + m]) v = NAN;
      a.y[(m0 + m) * a.y_stride + n + r] = v;
    }
  }
}

// W4A8, as qlinear.h documents it at every level and path: per group of 128
// (two chunks) the exact int32 sum isum_g (the +8 nibble offset taken back
// with 8·Σ q_x over the group), then f = fma(float(isum_g), s_w[n, g], f) in
// group order from f = 0, and y = f · s_x + b. The R x MB accumulators of a
// group are reduced together, four at a time (O::reduce4, lane i = r·MB + m),
// and their float accumulation runs in quads of lanes.
//
// Unpacked: the weights were widened beforehand to one byte per nibble
// (0..15, rows of Kp bytes at w0, `ws` apart: unpack_u4_rows), as the
// batched path does once per block of rows instead of once per tile of
// input rows.
template <int R, int MB, bool Unpacked = false>
void tile_w4a8(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0, const uint8_t* w0, int64_t ws) {
  constexpr int L = R * MB, NQ = (L + 3) / 4;
  typename O::F4 f[NQ];
  for (int q = 0; q < NQ; ++q) f[q] = O::f4zero();
  const int64_t chunks = in.Kp / kChunk, G = in.groups;
  const int8_t* x0 = in.q + m0 * in.Kp;
  const float* s0 = a.w_scales + n * G;
  const int64_t pf_off = prefetch_offset(R, ws);
  const int32_t* gs0 = in.gsum + m0 * G;
  for (int64_t g = 0; g < G; ++g) {
    typename O::A acc[R][MB];
    for (int r = 0; r < R; ++r)
      for (int m = 0; m < MB; ++m) acc[r][m] = O::azero();
    const int64_t c1 = (g + 1) * 2 < chunks ? (g + 1) * 2 : chunks;
    // a group's two chunks are one 64-byte line of each packed row
    if (!Unpacked)
      for (int r = 0; r < R; ++r) O::prefetch(w0 + pf_off + r * ws + g * kChunk);
    for (int64_t c = g * 2; c < c1; ++c) {
      typename O::I x[MB];
      for (int m = 0; m < MB; ++m) x[m] = O::load_i8(x0 + m * in.Kp + c * kChunk);
      for (int r = 0; r < R; ++r) {
        const typename O::I u = Unpacked ? O::load_i8(reinterpret_cast<const int8_t*>(w0 + r * ws + c * kChunk))
                                         : O::load_u4(w0 + r * ws + c * (kChunk / 2));
        for (int m = 0; m < MB; ++m) acc[r][m] = O::dot_u4(acc[r][m], u, x[m]);
      }
    }
    for (int q = 0; q < NQ; ++q) {
      typename O::A v[4];
      int32_t off[4];
      float s[4];
      for (int l = 0; l < 4; ++l) {
        const int i = 4 * q + l, r = i < L ? i / MB : 0, m = i < L ? i % MB : 0;
        v[l] = i < L ? acc[r][m] : O::azero();
        off[l] = i < L ? 8 * gs0[m * G + g] : 0;
        s[l] = i < L ? s0[r * G + g] : 0.0f;
      }
      const typename O::Q isum = O::qsub(O::reduce4(v[0], v[1], v[2], v[3]), O::qsetr(off[0], off[1], off[2], off[3]));
      f[q] = O::f4_fma_cvt(f[q], isum, O::f4setr(s[0], s[1], s[2], s[3]));
    }
  }
  float fs[NQ * 4];
  for (int q = 0; q < NQ; ++q) O::f4store(fs + 4 * q, f[q]);
  for (int r = 0; r < R; ++r) {
    const float b = bias_at(a, n + r);
    for (int m = 0; m < MB; ++m) {
      float v = fs[r * MB + m] * a.x_scale + b;
      if (in.nan_row[m0 + m]) v = NAN;
      a.y[(m0 + m) * a.y_stride + n + r] = v;
    }
  }
}

// W4A16: the nibbles widened to float already multiplied by their group's
// scale (O::u4_table: s·(j - 8) for each nibble value j), then dotted with x
// in float lanes.
//
// Unpacked: the weights were widened beforehand to float32 s·q (rows of Kp
// floats at w0, `ws` bytes apart: unpack_f_rows), once per block of rows.
template <int R, int MB, bool Unpacked = false>
void tile_w4a16(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0, const uint8_t* w0, int64_t ws) {
  constexpr int kF = (int)(kChunk / O::FW);
  typename O::F f[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) f[r][m] = O::fzero();
  const int64_t chunks = in.Kp / kChunk, G = in.groups;
  const float* x0 = in.xf + m0 * in.Kp;
  const int64_t pf_off = prefetch_offset(R, ws);
  for (int64_t g = 0; g < G; ++g) {
    typename O::T table[R];
    for (int r = 0; r < R; ++r) {
      if (Unpacked) continue;
      table[r] = O::u4_table(a.w_scales[(n + r) * G + g]);
      O::prefetch(w0 + pf_off + r * ws + g * kChunk);
    }
    const int64_t c1 = (g + 1) * 2 < chunks ? (g + 1) * 2 : chunks;
    for (int64_t c = g * 2; c < c1; ++c) {
      for (int r = 0; r < R; ++r) {
        typename O::F wv[kF];
        if (Unpacked) {
          const float* wf = reinterpret_cast<const float*>(w0 + r * ws) + c * kChunk;
          for (int j = 0; j < kF; ++j) wv[j] = O::fload(wf + j * O::FW);
        } else {
          O::u4_to_f(w0 + r * ws + c * (kChunk / 2), table[r], wv);
        }
        for (int m = 0; m < MB; ++m) {
          const float* xr = x0 + m * in.Kp + c * kChunk;
          for (int j = 0; j < kF; ++j) f[r][m] = O::fmadd(wv[j], O::fload(xr + j * O::FW), f[r][m]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = bias_at(a, n + r);
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = O::hsumf(f[r][m]) + b;
  }
}

#if defined(NM_QLINEAR_U4_LANES)
// W4A16 in lane order (QInput::xg, u4_lane_element in qlinear_input.h): per
// group of 128, nibble p = 0..7 of the 16 lanes is widened (O::lanes_to_f)
// and multiplied with vector p of the inputs into one accumulator per
// output; y = Σ lanes + b. The 512-bit levels widen to s·(j - 8) (one shift
// and one vpermps for 16 weights); AVX2 (O::kLanesFactored) to j (shift,
// mask, convert for 8) and adds s·(Σ j·x - 8 Σ x) per group. Every tile
// shape takes these steps in this order, so a row's result never depends
// on M (batch invariance): these tiles read the packed nibbles, the
// Unpacked ones the same weights widened beforehand (rows of groups · 128
// floats in lane order, `ws` bytes apart: unpack_f_rows_lanes).
//
// Interleaved (XI): the MB input rows' lane-order values interleaved per
// group and nibble position, xi[g][p][m][16] (QInput::xi), so that one base
// address reaches every input row of the tile: with 8 rows, their separate
// row addresses no longer fit the general registers.
constexpr int64_t kLanesPrefetchBytes = 4096;
template <int R, int MB, bool Unpacked = false, bool XI = false>
void tile_w4a16_lanes(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0, const uint8_t* w0, int64_t ws,
                      const float* xi = nullptr, const float* xsums = nullptr) {
  typename O::F f[R][MB];
  NM_UNROLL_TILE
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) f[r][m] = O::fzero();
  const int64_t G = in.groups, xs = G * kI4Group;
  const int64_t chunks = (a.K + kChunk - 1) / kChunk;
  const float* x0 = XI ? xi : in.xg + m0 * xs;
  // Prefetched into L1 about kLanesPrefetchBytes (at least the next tile)
  // ahead: closer and into L1 measured 5-7% faster here than the other
  // tiles' distance into L2 (bench/NOTES.md).
  const int64_t pf_rows = (kLanesPrefetchBytes + ws - 1) / ws, pf_off = (pf_rows > R ? pf_rows : R) * ws;
  constexpr int kHalves = kU4Lanes / O::FW;  // vectors per nibble position: 1 (512-bit), 2 (AVX2)
  constexpr bool kFactored = O::kLanesFactored;
  for (int64_t g = 0; g < G; ++g) {
    typename O::LT table[R];
    typename O::L lw[R];
    if constexpr (!Unpacked) {
      const bool half = 2 * g + 1 >= chunks;
      for (int r = 0; r < R; ++r) {
        table[r] = O::u4_lane_table(a.w_scales[(n + r) * G + g]);
        O::prefetch_l1(w0 + pf_off + r * ws + g * kChunk);
        lw[r] = O::load_lanes(w0 + r * ws + g * kChunk, half);
      }
    }
    // Factored: per group, Σ j·x into acc, then f += s · (acc - 8 xsum),
    // xsum the group's Σ x per lane (QInput::xsum8, summed once per call:
    // in the loop it took MB registers and an add per input vector, and the
    // 2 x 4 tile spilled).
    typename O::F acc[kFactored ? R : 1][kFactored ? MB : 1];
    if constexpr (kFactored) {
      for (int m = 0; m < MB; ++m)
        for (int r = 0; r < R; ++r) acc[r][m] = O::fzero();
    }
    const float* xg = x0 + g * kI4Group * (XI ? MB : 1);
    NM_UNROLL_TILE
    for (int p = 0; p < 8; ++p) {
      NM_UNROLL_TILE
      for (int h = 0; h < kHalves; ++h) {
        const int64_t at = p * kU4Lanes + h * O::FW;
        // Input row m's values at (p, h): XI: xg[p][m][h·FW ..], else row m's own.
        auto xat = [&](int m) { return XI ? xg + (p * MB + m) * kU4Lanes + h * O::FW : xg + m * xs + at; };
        typename O::F wv[R];
        for (int r = 0; r < R; ++r) {
          if constexpr (Unpacked) wv[r] = O::fload(reinterpret_cast<const float*>(w0 + r * ws) + g * kI4Group + at);
          else wv[r] = O::lanes_to_f(lw[r], table[r], p, h);
        }
        for (int m = 0; m < MB; ++m) {
          const typename O::F xv = O::fload(xat(m));
          if constexpr (kFactored) {
            for (int r = 0; r < R; ++r) acc[r][m] = O::fmadd(wv[r], xv, acc[r][m]);
          } else {
            for (int r = 0; r < R; ++r) f[r][m] = O::fmadd(wv[r], xv, f[r][m]);
          }
        }
      }
    }
    if constexpr (kFactored) {
      for (int r = 0; r < R; ++r) {
        const typename O::F s = O::fset1(a.w_scales[(n + r) * G + g]);
        static_assert(!kFactored || O::FW == 8, "QInput::xsum8 holds 8 lanes");
        for (int m = 0; m < MB; ++m) {
          const typename O::F xsum = O::fload(xsums + ((m0 + m) * G + g) * 8);
          f[r][m] = O::fmadd(O::fnmadd(O::fset1(8.0f), xsum, acc[r][m]), s, f[r][m]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = bias_at(a, n + r);
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = O::hsumf(f[r][m]) + b;
  }
}

// Rows [n0, n1) of an I4 weight widened to float32 in lane order (s·q; the
// nibble j where the level factors the scale out, O::kLanesFactored), rows
// of groups · 128 floats (past K: whatever the padding nibbles give; the
// inputs there are 0).
inline void unpack_f_rows_lanes(const QLinearArgs& a, int64_t G, int64_t n0, int64_t n1, float* out) {
  const int64_t chunks = (a.K + kChunk - 1) / kChunk;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* src = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
    float* dst = out + (n - n0) * G * kI4Group;
    for (int64_t g = 0; g < G; ++g) {
      const typename O::LT t = O::u4_lane_table(a.w_scales[n * G + g]);
      const typename O::L lw = O::load_lanes(src + g * kChunk, 2 * g + 1 >= chunks);
      NM_UNROLL_TILE
      for (int p = 0; p < 8; ++p)
        for (int h = 0; h < kU4Lanes / O::FW; ++h)
          O::fstore(dst + g * kI4Group + p * kU4Lanes + h * O::FW, O::lanes_to_f(lw, t, p, h));
    }
  }
}

// Weight rows [n, n1) in tiles of R (then R / 2, then 1) against input rows
// [m0, m0 + MB). One accumulator chain per output: R · MB chains hide the
// fma latency (O::kLanesRowsM1 at one input row).
template <int R, int MB, bool Unpacked>
void rows_w4a16_lanes_mb(const QLinearArgs& a, const QInput& in, int64_t n, int64_t n1, int64_t m0, const uint8_t* w0,
                         int64_t ws, int64_t wrow0, const float* xsums) {
  for (; n + R <= n1; n += R) tile_w4a16_lanes<R, MB, Unpacked>(a, in, n, m0, w0 + (n - wrow0) * ws, ws, nullptr, xsums);
  if constexpr (R > 2) {
    for (; n + R / 2 <= n1; n += R / 2)
      tile_w4a16_lanes<R / 2, MB, Unpacked>(a, in, n, m0, w0 + (n - wrow0) * ws, ws, nullptr, xsums);
  }
  for (; n < n1; ++n) tile_w4a16_lanes<1, MB, Unpacked>(a, in, n, m0, w0 + (n - wrow0) * ws, ws, nullptr, xsums);
}

// Input rows [0, M) in passes of O::kLanesInRows (then those left) over weight
// rows [b0, b1) (w0: row wrow0's weights, rows ws bytes apart).
template <bool Unpacked>
void passes_w4a16_lanes(const QLinearArgs& a, const QInput& in, int64_t b0, int64_t b1, const uint8_t* w0, int64_t ws,
                        int64_t wrow0, const float* xsums) {
  constexpr int R = O::kLanesRows, MB = O::kLanesInRows;
  static_assert(MB == 2 || MB == 4, "input rows per pass");
  int64_t m0 = 0;
  for (; m0 + MB <= a.M; m0 += MB) rows_w4a16_lanes_mb<R, MB, Unpacked>(a, in, b0, b1, m0, w0, ws, wrow0, xsums);
  const int64_t left = a.M - m0;  // < MB
  if constexpr (MB == 4) {
    if (left == 3) return rows_w4a16_lanes_mb<R, 3, Unpacked>(a, in, b0, b1, m0, w0, ws, wrow0, xsums);
  }
  if (left == 2) rows_w4a16_lanes_mb<R, 2, Unpacked>(a, in, b0, b1, m0, w0, ws, wrow0, xsums);
  else if (left == 1) rows_w4a16_lanes_mb<R, 1, Unpacked>(a, in, b0, b1, m0, w0, ws, wrow0, xsums);
}

// W4A16 weight rows [n0, n1) for all M input rows in lane order, in blocks
// of kQLinearUnpackRows weight rows (in cache while every pass of input rows
// reads them). Up to kQLinearStreamRows input rows (decode) look up the
// nibbles in every pass; more widen each block once into ub and read floats
// (measured at 8 and 16 sequences: bench/NOTES.md).
void rows_w4a16_lanes(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* ub) {
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  const float* xsums = in.xsum8;
  if (a.M == 1) return rows_w4a16_lanes_mb<O::kLanesRowsM1, 1, false>(a, in, n0, n1, 0, w, a.w_stride, 0, xsums);
  if constexpr (O::kLanesRows8 > 0) {
    // 8 input rows (8 sequences' decode) in one pass over the weights, each
    // group widened once for all 8, the inputs interleaved (QInput::xi).
    if (a.M == 8 && in.xi) {
      const float* xi = in.xi;
      constexpr int R = O::kLanesRows8;
      int64_t n = n0;
      for (; n + R <= n1; n += R) tile_w4a16_lanes<R, 8, false, true>(a, in, n, 0, w + n * a.w_stride, a.w_stride, xi);
      for (; n < n1; ++n) tile_w4a16_lanes<1, 8, false, true>(a, in, n, 0, w + n * a.w_stride, a.w_stride, xi);
      return;
    }
  }
  const int64_t ws = in.groups * kI4Group * (int64_t)sizeof(float);
  for (int64_t b0 = n0; b0 < n1; b0 += kQLinearUnpackRows) {
    const int64_t b1 = b0 + kQLinearUnpackRows < n1 ? b0 + kQLinearUnpackRows : n1;
    if (a.M <= kQLinearStreamRows) {
      passes_w4a16_lanes<false>(a, in, b0, b1, w, a.w_stride, 0, xsums);
    } else {
      unpack_f_rows_lanes(a, in.groups, b0, b1, reinterpret_cast<float*>(ub));
      passes_w4a16_lanes<true>(a, in, b0, b1, ub, ws, b0, xsums);
    }
  }
}
#endif

// Rows [n0, n1) of an I4 weight widened to float32 s·q, rows of Kp floats.
inline void unpack_f_rows(const QLinearArgs& a, int64_t Kp, int64_t G, int64_t n0, int64_t n1, float* out) {
  constexpr int kF = (int)(kChunk / O::FW);
  const int64_t chunks = Kp / kChunk;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* src = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
    float* dst = out + (n - n0) * Kp;
    for (int64_t c = 0; c < chunks; ++c) {
      const typename O::T t = O::u4_table(a.w_scales[n * G + c / 2]);
      typename O::F wv[kF];
      O::u4_to_f(src + c * (kChunk / 2), t, wv);
      for (int j = 0; j < kF; ++j) O::fstore(dst + c * kChunk + j * O::FW, wv[j]);
    }
  }
}

// Rows [n0, n1) of an I4 weight widened to one byte per nibble (0..15), rows
// of Kp bytes in out (nibbles past the row's chunks: 8, i.e. q = 0).
inline void unpack_u4_rows(const QLinearArgs& a, int64_t Kp, int64_t n0, int64_t n1, uint8_t* out) {
  const int64_t chunks = (a.K + kChunk - 1) / kChunk;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* src = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
    uint8_t* dst = out + (n - n0) * Kp;
    for (int64_t c = 0; c < chunks; ++c) O::store_u4(src + c * (kChunk / 2), dst + c * kChunk);
    std::memset(dst + chunks * kChunk, 8, (size_t)(Kp - chunks * kChunk));
  }
}

}  // namespace
}  // namespace NM_QLINEAR_NS
}  // namespace nm

#if defined(NM_QLINEAR_PANELS)
#include "kernels/qlinear_panel.h"
#endif
#include "kernels/qlinear_packed.h"
#include "kernels/qlinear_wide.h"

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

enum class Scheme { W8A8, W4A8, W4A16 };

template <Scheme S, int R, int MB>
inline void tile(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0) {
  if constexpr (S == Scheme::W8A8) tile_w8a8<R, MB>(a, in, n, m0);
  else if constexpr (S == Scheme::W4A8) tile_w4a8<R, MB>(a, in, n, m0, static_cast<const uint8_t*>(a.w) + n * a.w_stride, a.w_stride);
  else tile_w4a16<R, MB>(a, in, n, m0, static_cast<const uint8_t*>(a.w) + n * a.w_stride, a.w_stride);
}

// Weight rows [n0, n1) in tiles of R against input rows [m0, m0 + MB).
template <Scheme S, int MB>
void rows_mb(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, int64_t m0) {
  constexpr int R = S == Scheme::W8A8 ? O::kRowsI8 : S == Scheme::W4A8 ? O::kRowsI4 : O::kRowsF;
  int64_t n = n0;
  for (; n + R <= n1; n += R) tile<S, R, MB>(a, in, n, m0);
  for (; n < n1; ++n) tile<S, 1, MB>(a, in, n, m0);
}

// I4 weights with more input rows than one tile takes: each block of weight
// rows is unpacked once (W4A8: to bytes 0..15; W4A16: to floats s·q), and
// every tile of input rows reads the unpacked block from cache.
template <Scheme S, int MB>
void rows_mb_unpacked(const QLinearArgs& a, const QInput& in, int64_t b0, int64_t b1, int64_t m0, const uint8_t* ub, int64_t ws) {
  constexpr int R = S == Scheme::W4A8 ? O::kRowsI4 : O::kRowsF;
  int64_t n = b0;
  for (; n + R <= b1; n += R) {
    if constexpr (S == Scheme::W4A8) tile_w4a8<R, MB, true>(a, in, n, m0, ub + (n - b0) * ws, ws);
    else tile_w4a16<R, MB, true>(a, in, n, m0, ub + (n - b0) * ws, ws);
  }
  for (; n < b1; ++n) {
    if constexpr (S == Scheme::W4A8) tile_w4a8<1, MB, true>(a, in, n, m0, ub + (n - b0) * ws, ws);
    else tile_w4a16<1, MB, true>(a, in, n, m0, ub + (n - b0) * ws, ws);
  }
}

// ub: the calling task's scratch (kQLinearUnpackRows rows of groups · 128
// floats; allocated by qlinear.cpp: an ISA object must not instantiate
// std::vector's weak symbols).
template <Scheme S>
void rows_all_m_unpacked(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* ub) {
  constexpr int MB = S == Scheme::W4A8 ? O::kInRowsI4 : O::kInRowsF;
  constexpr int64_t block = kQLinearUnpackRows;
  const int64_t ws = S == Scheme::W4A8 ? in.Kp : in.Kp * (int64_t)sizeof(float);  // bytes per unpacked row
  for (int64_t b0 = n0; b0 < n1; b0 += block) {
    const int64_t b1 = b0 + block < n1 ? b0 + block : n1;
    if constexpr (S == Scheme::W4A8) unpack_u4_rows(a, in.Kp, b0, b1, ub);
    else unpack_f_rows(a, in.Kp, in.groups, b0, b1, reinterpret_cast<float*>(ub));
    int64_t m0 = 0;
    for (; m0 + MB <= a.M; m0 += MB) rows_mb_unpacked<S, MB>(a, in, b0, b1, m0, ub, ws);
    if constexpr (MB > 3) {
      if (a.M - m0 == 3) { rows_mb_unpacked<S, 3>(a, in, b0, b1, m0, ub, ws); continue; }
    }
    if constexpr (MB > 2) {
      if (a.M - m0 == 2) { rows_mb_unpacked<S, 2>(a, in, b0, b1, m0, ub, ws); continue; }
    }
    for (int64_t m = m0; m < a.M; ++m) rows_mb_unpacked<S, 1>(a, in, b0, b1, m, ub, ws);
  }
}

template <Scheme S>
void rows_all_m(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  constexpr int MB = S == Scheme::W8A8 ? O::kInRowsI8 : S == Scheme::W4A8 ? O::kInRowsI4 : O::kInRowsF;
  static_assert(MB >= 1 && MB <= 4, "tails below assume at most 4 input rows per tile");
  // Blocks of weight rows small enough to stay in L1 / L2 while every
  // chunk of MB input rows passes over them (at decode M <= MB: one pass).
  const int64_t block = 32;
  for (int64_t b0 = n0; b0 < n1; b0 += block) {
    const int64_t b1 = b0 + block < n1 ? b0 + block : n1;
    int64_t m0 = 0;
    for (; m0 + MB <= a.M; m0 += MB) rows_mb<S, MB>(a, in, b0, b1, m0);
    // MB <= 4 at every level, so at most 3 rows are left.
    const int64_t rest = a.M - m0;
    if constexpr (MB > 3) {
      if (rest == 3) { rows_mb<S, 3>(a, in, b0, b1, m0); continue; }
    }
    if constexpr (MB > 2) {
      if (rest == 2) { rows_mb<S, 2>(a, in, b0, b1, m0); continue; }
    }
    for (int64_t m = m0; m < a.M; ++m) rows_mb<S, 1>(a, in, b0, b1, m);
  }
}

}  // namespace

// Row x [K] quantized into q [K] (symmetric int8, inv = 1 / s_x); returns
// whether the row holds a NaN (its q values are then meaningless: qlinear
// makes the output row NaN).
bool qlinear_quantize_row(const float* x, int64_t K, float inv, int8_t* q) {
  return O::quantize_row(x, K, inv, q);
}

// Rows [m0, m1) of x (row m at x + (x_rows ? x_rows[m] : m) · xs; K a
// multiple of 32) quantized per block of 32 as ggml's Q8_0 for the block
// panels (ggml_panels.h): d = amax / 127, q = clamp(nearbyint(x · (127 /
// amax)), ±127) (0 when amax = 0; amax NaN when the block holds a NaN),
// the same numbers as linear.cpp's round_activations. q [M, K], d and Σq
// [M, K / 32].
void q8_block_quantize_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t m0, int64_t m1, int64_t K, int8_t* q,
                        float* d, int32_t* sum) {
  const int64_t nb = K / kQuantBlock;
  for (int64_t m = m0; m < m1; ++m) {
    const float* xr = x + (x_rows ? (int64_t)x_rows[m] : m) * xs;
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = xr + b * kQuantBlock;
      const float amax = O::absmax(xb, kQuantBlock);
      int8_t* qb = q + m * K + b * kQuantBlock;
      O::quantize_row(xb, kQuantBlock, amax > 0.0f ? 127.0f / amax : 0.0f, qb);
      int32_t s = 0;
      for (int64_t j = 0; j < kQuantBlock; ++j) s += qb[j];
      d[m * nb + b] = amax / 127.0f;
      sum[m * nb + b] = s;
    }
  }
}

// Whether W4A16 reads its weights in lane order (QInput::xg): 0 no, 1 yes,
// 2 yes with the group scale factored out (the tiles read QInput::xsum8).
int qlinear_u4_lanes() {
#if defined(NM_QLINEAR_U4_LANES)
  return O::kLanesFactored ? 2 : 1;
#else
  return 0;
#endif
}

// Whether W8A8 wants its inputs widened to int16 (QInput::q16) at prefill
// row counts (qlinear_wide.h).
bool qlinear_wide_i8() {
#if defined(NM_QLINEAR_WIDE)
  return true;
#else
  return false;
#endif
}

// Weight rows [n0, n1) for all M input rows; scratch: see rows_all_m_unpacked
// and rows_panel.
void qlinear_rows(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* scratch) {
  if (a.w_layout == WeightLayout::Panels) {  // int8 inputs (qlinear / ggml_panels checked)
    if (a.w_dtype == DType::Q8_0) return rows_packed_ggml<false>(a, in, n0, n1);
    if (a.w_dtype == DType::Q4_0) return rows_packed_ggml<true>(a, in, n0, n1);
#if defined(NM_QLINEAR_WIDE)
    if (in.q16 && a.w_dtype == DType::I8) return rows_packed_wide(a, in, n0, n1);
#endif
    if (a.w_dtype == DType::I8) rows_packed<true>(a, in, n0, n1);
    else rows_packed<false>(a, in, n0, n1);
    return;
  }
#if defined(NM_QLINEAR_PANELS)
  if (in.q && qlinear_panel_path(a.w_dtype == DType::I8, a.M)) {
#if defined(NM_QLINEAR_WIDE)
    if (in.q16 && a.w_dtype == DType::I8) return rows_panel_wide(a, in, n0, n1, scratch);
#endif
    if (a.w_dtype == DType::I8) rows_panel<true>(a, in, n0, n1, scratch);
    else rows_panel<false>(a, in, n0, n1, scratch);
    return;
  }
#endif
#if defined(NM_QLINEAR_U4_LANES)
  if (in.xg) return rows_w4a16_lanes(a, in, n0, n1, scratch);
#endif
  if (a.w_dtype == DType::I8) rows_all_m<Scheme::W8A8>(a, in, n0, n1);
  else if (in.q && a.M > O::kInRowsI4) rows_all_m_unpacked<Scheme::W4A8>(a, in, n0, n1, scratch);
  else if (in.q) rows_all_m<Scheme::W4A8>(a, in, n0, n1);
  else if (a.M > O::kInRowsF) rows_all_m_unpacked<Scheme::W4A16>(a, in, n0, n1, scratch);
  else rows_all_m<Scheme::W4A16>(a, in, n0, n1);
}

}  // namespace NM_QLINEAR_NS
}  // namespace nm
