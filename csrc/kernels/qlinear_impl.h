// Per-level bodies of qlinear (semantics in qlinear.h), written once against
// an integer "ops" type O that each level's unit defines before including
// this file (qlinear_{scalar,avx2,avx512,avx512vnni}.cpp). O provides:
//   I           64 int8 lanes (a chunk of 64 elements along K)
//   A           int32 accumulator lanes;  F  float32 lanes, FW of them
//   load_i8(p)  64 int8 at p;   load_u4(p)  the 64 nibbles (0..15) of an I4
//               chunk of 32 bytes at p, in element order
//   dot_i8(acc, w, x)   acc + Σ (w + kI8Offset)·x over groups of lanes
//   dot_u4(acc, u, x)   acc + Σ u·x (u unsigned 0..15)
//   sub_lane0(acc, v)   acc with v subtracted from one lane (exact)
//   hsum(acc)           Σ lanes (int32, exact)
//   fma_cvt(f, acc, s)  f + float(acc)·s, lanewise
//   u4_to_f(p, out)     the 64 values (nibble - 8) of a chunk as 64 / FW F's
//   F ops: fzero, fload(p), fmadd(a, b, c) = a·b + c, fmul_s(f, s), hsumf
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

inline float bias_at(const QLinearArgs& a, int64_t n) {
  if (!a.bias) return 0.0f;
  return load_as_f32(a.bias, a.bias_dtype, n);
}

// Pointer to chunk c of I8 weight row n, through a zero-padded copy when the
// chunk runs past K (rows are only K bytes long).
inline const int8_t* i8_chunk(const QLinearArgs& a, int64_t n, int64_t c, int8_t* tail) {
  const int8_t* row = static_cast<const int8_t*>(a.w) + n * a.w_stride;
  const int64_t k0 = c * kChunk;
  if (k0 + kChunk <= a.K) return row + k0;
  std::memset(tail, 0, kChunk);
  std::memcpy(tail, row + k0, (size_t)(a.K - k0));
  return tail;
}

// W8A8: R weight rows from n x MB input rows from m0.
template <int R, int MB>
void tile_w8a8(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0) {
  typename O::A acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = O::azero();
  alignas(64) int8_t tail[R][kChunk];
  const int64_t chunks = in.Kp / kChunk;
  for (int64_t c = 0; c < chunks; ++c) {
    typename O::I x[MB];
    for (int m = 0; m < MB; ++m) x[m] = O::load_i8(in.q + (m0 + m) * in.Kp + c * kChunk);
    for (int r = 0; r < R; ++r) {
      const typename O::I w = O::load_i8(i8_chunk(a, n + r, c, tail[r]));
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

// W4A8: per group of 128 (two chunks) an exact int32 sum, corrected for the
// +8 nibble offset (8·Σ q_x over the group, subtracted in one lane), then
// scaled by the group's weight scale into float lanes.
template <int R, int MB>
void tile_w4a8(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0) {
  typename O::F f[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) f[r][m] = O::fzero();
  const int64_t chunks = in.Kp / kChunk, G = in.groups;
  const uint8_t* w0 = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
  for (int64_t g = 0; g < G; ++g) {
    typename O::A acc[R][MB];
    for (int r = 0; r < R; ++r)
      for (int m = 0; m < MB; ++m) acc[r][m] = O::azero();
    const int64_t c1 = (g + 1) * 2 < chunks ? (g + 1) * 2 : chunks;
    for (int64_t c = g * 2; c < c1; ++c) {
      typename O::I x[MB];
      for (int m = 0; m < MB; ++m) x[m] = O::load_i8(in.q + (m0 + m) * in.Kp + c * kChunk);
      for (int r = 0; r < R; ++r) {
        const typename O::I u = O::load_u4(w0 + r * a.w_stride + c * (kChunk / 2));
        for (int m = 0; m < MB; ++m) acc[r][m] = O::dot_u4(acc[r][m], u, x[m]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const float s = a.w_scales[(n + r) * G + g];
      for (int m = 0; m < MB; ++m) {
        const typename O::A exact = O::sub_lane0(acc[r][m], 8 * in.gsum[(m0 + m) * G + g]);
        f[r][m] = O::fma_cvt(f[r][m], exact, s);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = bias_at(a, n + r);
    for (int m = 0; m < MB; ++m) {
      float v = O::hsumf(f[r][m]) * a.x_scale + b;
      if (in.nan_row[m0 + m]) v = NAN;
      a.y[(m0 + m) * a.y_stride + n + r] = v;
    }
  }
}

// W4A16: per group, Σ (nibble - 8)·x in float lanes, then times the group
// scale.
template <int R, int MB>
void tile_w4a16(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0) {
  constexpr int kF = (int)(kChunk / O::FW);
  typename O::F f[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) f[r][m] = O::fzero();
  const int64_t chunks = in.Kp / kChunk, G = in.groups;
  const uint8_t* w0 = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
  for (int64_t g = 0; g < G; ++g) {
    typename O::F part[R][MB];
    for (int r = 0; r < R; ++r)
      for (int m = 0; m < MB; ++m) part[r][m] = O::fzero();
    const int64_t c1 = (g + 1) * 2 < chunks ? (g + 1) * 2 : chunks;
    for (int64_t c = g * 2; c < c1; ++c) {
      for (int r = 0; r < R; ++r) {
        typename O::F wv[kF];
        O::u4_to_f(w0 + r * a.w_stride + c * (kChunk / 2), wv);
        for (int m = 0; m < MB; ++m) {
          const float* xr = in.xf + (m0 + m) * in.Kp + c * kChunk;
          for (int j = 0; j < kF; ++j) part[r][m] = O::fmadd(wv[j], O::fload(xr + j * O::FW), part[r][m]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const float s = a.w_scales[(n + r) * G + g];
      for (int m = 0; m < MB; ++m) f[r][m] = O::fmadd(part[r][m], O::fset1(s), f[r][m]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = bias_at(a, n + r);
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = O::hsumf(f[r][m]) + b;
  }
}

enum class Scheme { W8A8, W4A8, W4A16 };

template <Scheme S, int R, int MB>
inline void tile(const QLinearArgs& a, const QInput& in, int64_t n, int64_t m0) {
  if constexpr (S == Scheme::W8A8) tile_w8a8<R, MB>(a, in, n, m0);
  else if constexpr (S == Scheme::W4A8) tile_w4a8<R, MB>(a, in, n, m0);
  else tile_w4a16<R, MB>(a, in, n, m0);
}

// Weight rows [n0, n1) in tiles of R against input rows [m0, m0 + MB).
template <Scheme S, int MB>
void rows_mb(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, int64_t m0) {
  constexpr int R = S == Scheme::W8A8 ? O::kRowsI8 : O::kRowsI4;
  int64_t n = n0;
  for (; n + R <= n1; n += R) tile<S, R, MB>(a, in, n, m0);
  for (; n < n1; ++n) tile<S, 1, MB>(a, in, n, m0);
}

template <Scheme S>
void rows_all_m(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  constexpr int MB = S == Scheme::W4A16 ? O::kInRowsF : O::kInRows;
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

// Weight rows [n0, n1) for all M input rows.
void qlinear_rows(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1) {
  if (a.w_dtype == DType::I8) rows_all_m<Scheme::W8A8>(a, in, n0, n1);
  else if (in.q) rows_all_m<Scheme::W4A8>(a, in, n0, n1);
  else rows_all_m<Scheme::W4A16>(a, in, n0, n1);
}

}  // namespace NM_QLINEAR_NS
}  // namespace nm
