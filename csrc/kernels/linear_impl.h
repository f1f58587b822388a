// Per-level bodies of the linear kernel (see linear.h for semantics and
// kernels/simd/README.md for how this file is compiled). Threading and
// scratch allocation are in linear.cpp.
#include "kernels/linear.h"

#include <string.h>

namespace nm {
namespace NM_ISA {

// Prefetch into L2 (an address as an integer, so that one past the end of
// the weights is no pointer arithmetic on it); _STREAM into L1, for the
// decode GEMVs' weight streams (read once, at once: prefetches into L2 only
// streamed slower from DRAM, bench/NOTES.md, nineteenth session).
#if defined(__GNUC__) || defined(__clang__)
#define NM_LIN_PREFETCH_L2(addr) __builtin_prefetch((const void*)(addr), 0, 2)
#define NM_LIN_PREFETCH_STREAM(addr) __builtin_prefetch((const void*)(addr), 0, 3)
#else
#define NM_LIN_PREFETCH_L2(addr) ((void)(addr))
#define NM_LIN_PREFETCH_STREAM(addr) ((void)(addr))
#endif

static inline int64_t lin_min(int64_t a, int64_t b) { return a < b ? a : b; }
// Row m of x (LinearArgs::x_rows: a gather fused into the loads).
static inline const float* lin_x_row(const LinearArgs& a, int64_t m) {
  return a.x + (a.x_rows ? (int64_t)a.x_rows[m] : m) * a.x_stride;
}

// ---------------------------------------------------------------------------
// Quantized blocks (Q8_0 / Q4_0, see core/dtype.h): a block of 32 weights is
// 32 / VF::W vectors; lin_qvec<DT>(blk, v) is vector v of the block as
// integers converted to float (q for Q8_0, nibble - 8 for Q4_0), to be
// multiplied by the block's scale lin_half(blk). Both steps are exact.
constexpr int kQ8 = (int)DType::Q8_0, kQ4 = (int)DType::Q4_0;
template <int DT> struct QuantTraits { static constexpr bool quant = false; static constexpr int64_t bytes = 0; };
template <> struct QuantTraits<(int)DType::Q8_0> { static constexpr bool quant = true; static constexpr int64_t bytes = 34; };
template <> struct QuantTraits<(int)DType::Q4_0> { static constexpr bool quant = true; static constexpr int64_t bytes = 18; };
constexpr int kQVecs = (int)(kQuantBlock / VF::W);  // vectors per block

#if defined(NM_LINEAR_LANES) && (defined(__AVX512F__) || defined(__AVX2__))
// The block scale (fp16) as float32, with F16C (both x86 levels have it).
static inline float lin_half(const uint8_t* p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
#endif

#if defined(NM_LINEAR_LANES) && NM_LINEAR_LANES == 16 && defined(__AVX512F__)
template <int DT>
static inline VF lin_qvec(const uint8_t* blk, int v) {
  if constexpr (DT == kQ8) return VF{_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(blk + 2 + 16 * v))))};
  __m128i b = _mm_loadu_si128((const __m128i*)(blk + 2));
  if (v) b = _mm_srli_epi16(b, 4);
  b = _mm_and_si128(b, _mm_set1_epi8(0x0f));
  const __m512i q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(b), _mm512_set1_epi32(8));
  return VF{_mm512_cvtepi32_ps(q)};
}
#elif defined(NM_LINEAR_LANES) && NM_LINEAR_LANES == 8 && defined(__AVX2__)
template <int DT>
static inline VF lin_qvec(const uint8_t* blk, int v) {
  if constexpr (DT == kQ8) return VF{_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(blk + 2 + 8 * v))))};
  // v = 0, 1: low nibbles of bytes 0-7, 8-15; v = 2, 3: their high nibbles.
  __m128i b = _mm_loadl_epi64((const __m128i*)(blk + 2 + 8 * (v & 1)));
  if (v & 2) b = _mm_srli_epi16(b, 4);
  b = _mm_and_si128(b, _mm_set1_epi8(0x0f));
  const __m256i q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b), _mm256_set1_epi32(8));
  return VF{_mm256_cvtepi32_ps(q)};
}
#else
static inline float lin_half(const uint8_t* p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return VF::load_f16(&h).v;  // one lane here (the scalar VF)
}
template <int DT>
static inline VF lin_qvec(const uint8_t* blk, int v) {
  static_assert(VF::W == 1, "generic quantized path is for the one-lane VF");
  if constexpr (DT == kQ8) return VF{(float)(int8_t)blk[2 + v]};
  const uint8_t b = blk[2 + (v & 15)];
  return VF{(float)((v < 16 ? (b & 0x0f) : (b >> 4)) - 8)};
}
#endif

// Weight / bias loads, dtype fixed at compile time (DT = int(DType)). For
// the quantized types p is the start of a block-aligned run and i a multiple
// of VF::W.
template <int DT>
static inline VF lin_load(const void* p, int64_t i) {
  if constexpr (DT == (int)DType::F32) return VF::load(static_cast<const float*>(p) + i);
  if constexpr (DT == (int)DType::F16) return VF::load_f16(static_cast<const uint16_t*>(p) + i);
  if constexpr (QuantTraits<DT>::quant) {
    const uint8_t* blk = static_cast<const uint8_t*>(p) + (i / kQuantBlock) * QuantTraits<DT>::bytes;
    return lin_qvec<DT>(blk, (int)((i % kQuantBlock) / VF::W)) * VF::set1(lin_half(blk));
  }
  return VF::load_bf16(static_cast<const uint16_t*>(p) + i);
}
// Partial loads never happen for the quantized types (K and every K block
// are multiples of 32, hence of VF::W).
template <int DT>
static inline VF lin_load_partial(const void* p, int64_t i, int n) {
  if constexpr (DT == (int)DType::F32) return VF::load_partial(static_cast<const float*>(p) + i, n);
  if constexpr (DT == (int)DType::F16) return VF::load_f16_partial(static_cast<const uint16_t*>(p) + i, n);
  if constexpr (QuantTraits<DT>::quant) return lin_load<DT>(p, i);
  return VF::load_bf16_partial(static_cast<const uint16_t*>(p) + i, n);
}
// Element offset -> address (for the quantized types the offset is a
// multiple of 32, see linear.h).
static inline const void* lin_row(const void* base, DType t, int64_t elem_offset) {
  return static_cast<const char*>(base) + dtype_row_bytes(t, elem_offset);
}

// ---------------------------------------------------------------------------
// GEMV path: a tile of R weight rows x MB input rows, accumulated over the
// whole of K in R*MB vector registers. Each weight vector is loaded (and
// converted) once and used for all MB input rows.

// Tile shapes. A tile keeps R*MB accumulators, R weight vectors and one x
// vector live: AVX-512 has 32 vector registers, AVX2 (and x86-64 scalar) 16.
// Every R divides kGemvGroup so that groups split into whole tiles.
constexpr int kGemvMB = VF::W == 16 ? 8 : 4;  // input rows per tile
constexpr int kGemvGroup = 24;                // weight rows per group

template <int MB>
struct GemvRows {
  static constexpr int R = VF::W == 16 ? (MB <= 2 ? 8 : MB <= 4 ? 6 : MB <= 6 ? 4 : 3)
                                       : (MB <= 1 ? 8 : MB <= 2 ? 6 : MB <= 3 ? 3 : 2);
  static_assert(kGemvGroup % R == 0, "R must divide kGemvGroup");
};

// The tile's MB input rows come interleaved by vectors (XTile): the vector
// of row m at k is xt.p + (k / W) * MB * W + m * W, one pointer with constant
// offsets for all rows (eight row pointers plus R weight pointers made GCC
// spill pointers to the stack inside the loop). For MB = 1 that is the row
// itself; for M > 1 linear.cpp packs the rows (gemv_rows_dt).
struct XTile {
  const float* p;
};

template <int R, int MB, int DT>
static inline void gemv_tile(const LinearArgs& a, int64_t n, XTile xt, int64_t m0) {
  const int64_t K = a.K;
  constexpr int64_t XS = (int64_t)MB * VF::W;  // floats per k-vector of all rows
  const void* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = lin_row(a.w, a.w_dtype, (n + r) * a.w_stride);
  const float* xk = xt.p;
  VF acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = VF::zero();
  int64_t k = 0;
  // Prefetch (into L1) the same position of the next tile's rows, R rows on:
  // weight rows are short (K elements), too short for the hardware
  // prefetcher to ramp up on each one, but consecutive tiles form a regular
  // pattern. Measured on Zen 4 (K=768, N=3072, weights from DRAM): M=1 bf16
  // 290 -> 195 us, M=8 f32 670 -> 390 us. Prefetching past the end of W is
  // harmless (a prefetch never faults).
  const int64_t pf_off = R * a.w_stride * dtype_size(a.w_dtype);
  constexpr int64_t kEl = DT == (int)DType::F32 ? 4 : 2;
  for (; k + VF::W <= K; k += VF::W, xk += XS) {
    VF wv[R];
    for (int r = 0; r < R; ++r) NM_LIN_PREFETCH_STREAM((uintptr_t)wr[r] + (uintptr_t)(k * kEl + pf_off));
    for (int r = 0; r < R; ++r) wv[r] = lin_load<DT>(wr[r], k);
    for (int m = 0; m < MB; ++m) {
      const VF xv = VF::load(xk + m * VF::W);
      for (int r = 0; r < R; ++r) acc[r][m] = fmadd(wv[r], xv, acc[r][m]);
    }
  }
  if (k < K) {
    const int t = (int)(K - k);
    VF wv[R];
    for (int r = 0; r < R; ++r) wv[r] = lin_load_partial<DT>(wr[r], k, t);
    for (int m = 0; m < MB; ++m) {
      const VF xv = VF::load_partial(xk + m * VF::W, t);
      for (int r = 0; r < R; ++r) acc[r][m] = fmadd(wv[r], xv, acc[r][m]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = a.bias ? load_as_f32(a.bias, a.bias_dtype, n + r) : 0.0f;
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = reduce_sum(acc[r][m]) + b;
  }
}

// Quantized tile: the same accumulation as gemv_tile, block by block. Each
// weight vector is dequantised in registers (integers -> float, times the
// block scale, both exact) and then used for all MB input rows, in the same
// k order as the f32 path, so the result equals the f32 path's on the
// dequantised weights bit for bit.
template <int R, int MB, int DT>
static inline void gemv_tile_q(const LinearArgs& a, int64_t n, XTile xt, int64_t m0) {
  constexpr int64_t BB = QuantTraits<DT>::bytes;
  constexpr int64_t XS = (int64_t)MB * VF::W;
  const int64_t row_bytes = dtype_row_bytes(a.w_dtype, a.w_stride);
  const uint8_t* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const uint8_t*>(a.w) + (n + r) * row_bytes;
  VF acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = VF::zero();
  const int64_t nb = a.K / kQuantBlock;
  const int64_t pf_off = R * row_bytes;  // the next tile's rows (see gemv_tile)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t boff = b * BB;
    VF d[R];
    for (int r = 0; r < R; ++r) {
      NM_LIN_PREFETCH_STREAM((uintptr_t)wr[r] + (uintptr_t)(boff + pf_off));
      d[r] = VF::set1(lin_half(wr[r] + boff));
    }
    const int64_t k = b * kQuantBlock;
    for (int v = 0; v < kQVecs; ++v) {
      VF wv[R];
      for (int r = 0; r < R; ++r) wv[r] = lin_qvec<DT>(wr[r] + boff, v) * d[r];
      const float* xk = xt.p + (k / VF::W + v) * XS;
      for (int m = 0; m < MB; ++m) {
        const VF xv = VF::load(xk + m * VF::W);
        for (int r = 0; r < R; ++r) acc[r][m] = fmadd(wv[r], xv, acc[r][m]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float bs = a.bias ? load_as_f32(a.bias, a.bias_dtype, n + r) : 0.0f;
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = reduce_sum(acc[r][m]) + bs;
  }
}

// Rows [n, n + nt) of W against input rows [m0, m0 + MB).
template <int MB, int DT>
static void gemv_group(const LinearArgs& a, int64_t n, int64_t nt, XTile xt, int64_t m0) {
  constexpr int R = GemvRows<MB>::R;
  int64_t r = 0;
  if constexpr (QuantTraits<DT>::quant) {
    for (; r + R <= nt; r += R) gemv_tile_q<R, MB, DT>(a, n + r, xt, m0);
    for (; r < nt; ++r) gemv_tile_q<1, MB, DT>(a, n + r, xt, m0);
  } else {
    for (; r + R <= nt; r += R) gemv_tile<R, MB, DT>(a, n + r, xt, m0);
    for (; r < nt; ++r) gemv_tile<1, MB, DT>(a, n + r, xt, m0);
  }
}

// mb <= kGemvMB; larger cases are clamped only so that they compile.
template <int DT>
static void gemv_dispatch_mb(const LinearArgs& a, int64_t n, int64_t nt, XTile xt, int64_t m0, int mb) {
#define NM_LIN_MB(c) (c <= kGemvMB ? c : kGemvMB)
  switch (mb) {
    case 1: gemv_group<1, DT>(a, n, nt, xt, m0); break;
    case 2: gemv_group<2, DT>(a, n, nt, xt, m0); break;
    case 3: gemv_group<3, DT>(a, n, nt, xt, m0); break;
    case 4: gemv_group<4, DT>(a, n, nt, xt, m0); break;
    case 5: gemv_group<NM_LIN_MB(5), DT>(a, n, nt, xt, m0); break;
    case 6: gemv_group<NM_LIN_MB(6), DT>(a, n, nt, xt, m0); break;
    case 7: gemv_group<NM_LIN_MB(7), DT>(a, n, nt, xt, m0); break;
    default: gemv_group<NM_LIN_MB(8), DT>(a, n, nt, xt, m0); break;
  }
#undef NM_LIN_MB
}

// y[:, n0:n1] for all M rows; for M > 1, xp holds x interleaved by
// linear.cpp (linear_gemv_x_layout): chunk c of kGemvMB rows at
// xp + c * kGemvMB * ceil(K / W) * W, vector j of its row m at
// + (j * mb + m) * W (mb = rows in the chunk), zero past K.
template <int DT>
static void gemv_rows_dt(const LinearArgs& a, const float* xp, int64_t n0, int64_t n1) {
  const int64_t chunks = (a.M + kGemvMB - 1) / kGemvMB;
  const int64_t chunk_floats = kGemvMB * ((a.K + VF::W - 1) / VF::W) * VF::W;
  // Weight rows in groups of kGemvGroup; for each group every chunk of input
  // rows runs while the group's rows are still in L2, so W is streamed from
  // memory once whatever M is.
  for (int64_t n = n0; n < n1; n += kGemvGroup) {
    const int64_t nt = lin_min(kGemvGroup, n1 - n);
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t m0 = c * kGemvMB;
      const XTile xt{a.M > 1 ? xp + c * chunk_floats : lin_x_row(a, 0)};
      gemv_dispatch_mb<DT>(a, n, nt, xt, m0, (int)lin_min(kGemvMB, a.M - m0));
    }
  }
}

void linear_gemv_x_layout(int64_t* lanes, int64_t* chunk_rows) {
  *lanes = VF::W;
  *chunk_rows = kGemvMB;
}

// The unit linear.cpp splits N into for M input rows: the tile height R
// when all M rows are one chunk (kGemvGroup only matters when several chunks
// of input rows share a group's rows in L2), else kGemvGroup.
static int64_t gemv_split_rows(int64_t M) {
  switch (M) {
    case 1: return GemvRows<1>::R;
    case 2: return GemvRows<2>::R;
    case 3: return GemvRows<(3 <= kGemvMB ? 3 : kGemvMB)>::R;
    case 4: return GemvRows<(4 <= kGemvMB ? 4 : kGemvMB)>::R;
    case 5: return GemvRows<(5 <= kGemvMB ? 5 : kGemvMB)>::R;
    case 6: return GemvRows<(6 <= kGemvMB ? 6 : kGemvMB)>::R;
    case 7: return GemvRows<(7 <= kGemvMB ? 7 : kGemvMB)>::R;
    default: return M <= kGemvMB ? GemvRows<kGemvMB>::R : kGemvGroup;
  }
}
void linear_gemv_split_rows(int64_t M, int64_t* rows) { *rows = gemv_split_rows(M); }

void linear_gemv(const LinearArgs& a, const float* xp, int64_t n0, int64_t n1) {
  switch (a.w_dtype) {
    case DType::F32: gemv_rows_dt<(int)DType::F32>(a, xp, n0, n1); break;
    case DType::F16: gemv_rows_dt<(int)DType::F16>(a, xp, n0, n1); break;
    case DType::Q8_0: gemv_rows_dt<kQ8>(a, xp, n0, n1); break;
    case DType::Q4_0: gemv_rows_dt<kQ4>(a, xp, n0, n1); break;
    case DType::BF16: gemv_rows_dt<(int)DType::BF16>(a, xp, n0, n1); break;
    default: throw_unknown_dtype(a.w_dtype);  // linear() admits only the Float-kernel formats
  }
}

// ---------------------------------------------------------------------------
// GEMM path. Micro-kernel: kMR rows of x by kNR = kNV vectors of y columns,
// kMR * kNV accumulators (AVX-512 8 x 32: 16 of 32 registers; AVX2 6 x 16:
// 12 of 16; scalar 4 x 4). On Zen 4 AVX-512 tiles of 4, 6, 8 and 12 rows by
// 32 columns and 6 x 64 all measured within 5% of each other (~185 GFLOP/s
// on 2 cores); 8 rows waste nothing for M a multiple of 8 and keep enough
// independent FMA chains for two FMA ports.
//   B panel (W block, converted): kc x nc, stored as strips of kNR columns,
//     strip s at bp + s * kc * kNR, element [k][j] (j contiguous).
//   A panel (x block): kMR x kc, element [k][i] (i contiguous), rows past M
//     zero-padded.
constexpr int kNV = VF::W == 1 ? 4 : 2;
constexpr int kNR = kNV * VF::W;
constexpr int kMR = VF::W == 16 ? 8 : VF::W == 8 ? 6 : 4;
constexpr int64_t kKC = 256;   // K block: A panel 8 KiB (L1), B strip 32 KiB
constexpr int64_t kNC = 256;   // N block: B panel kKC x kNC = 256 KiB (L2)
static_assert(kNC % kNR == 0, "kNC must be a multiple of kNR");

// Transpose of a VF::W x VF::W tile held in registers (r[j] = row j becomes
// r[i] = column i): log2(W) rounds of r'[2j] = lo(r[j], r[j + W/2]),
// r'[2j+1] = hi(r[j], r[j + W/2]), where lo / hi interleave the low / high
// halves of two vectors. Each round rotates the (row, column) bit index by
// one, so log2(W) rounds swap row and column. Only the lane shuffle is
// ISA-specific (NM_LINEAR_LANES is set by linear_avx2.cpp / linear_avx512.cpp);
// the scalar level (W = 1) needs none.
#if defined(NM_LINEAR_LANES) && NM_LINEAR_LANES == 16 && defined(__AVX512F__)
#define NM_LINEAR_HAS_TRANSPOSE 1
static inline void lin_interleave(VF a, VF b, VF& lo, VF& hi) {
  const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  lo.v = _mm512_permutex2var_ps(a.v, il, b.v);
  hi.v = _mm512_permutex2var_ps(a.v, ih, b.v);
}
#elif defined(NM_LINEAR_LANES) && NM_LINEAR_LANES == 8 && defined(__AVX2__)
#define NM_LINEAR_HAS_TRANSPOSE 1
static inline void lin_interleave(VF a, VF b, VF& lo, VF& hi) {
  const __m256 l = _mm256_unpacklo_ps(a.v, b.v), h = _mm256_unpackhi_ps(a.v, b.v);
  lo.v = _mm256_permute2f128_ps(l, h, 0x20);
  hi.v = _mm256_permute2f128_ps(l, h, 0x31);
}
#endif

#ifdef NM_LINEAR_HAS_TRANSPOSE
static inline void lin_transpose(VF r[VF::W]) {
  constexpr int H = VF::W / 2;
  for (int round = 1; round < VF::W; round *= 2) {
    VF t[VF::W];
    for (int j = 0; j < H; ++j) lin_interleave(r[j], r[j + H], t[2 * j], t[2 * j + 1]);
    for (int j = 0; j < VF::W; ++j) r[j] = t[j];
  }
}
#endif

// Rows of W that the pack after this one reads (PackNext): kNR rows from
// row n0 (fewer at the end of W), elements k0 .. k0 + kc. n0 < 0: none.
struct PackNext {
  int64_t n0 = -1, k0 = 0, kc = 0;
};

// Prefetches (into L2) part `step` of `steps` of the lines that the strip of
// rows r0 .. r0 + kNR - 1 (below r_end), elements k0 .. k0 + kc, occupies.
// Weight rows are short (kc elements of K), and a strip reads kNR of them at
// once: more streams than the hardware prefetcher follows, so without this
// every strip waited on DRAM (a GEMM over weights not in cache ran at 55-70%
// of the speed of the same GEMM over cached weights).
static inline void prefetch_strip_part(const LinearArgs& a, int64_t r0, int64_t r_end, int64_t k0, int64_t kc,
                                       int64_t step, int64_t steps) {
  const int64_t lines = dtype_row_bytes(a.w_dtype, kc) / 64 + 2;  // a misaligned row spans one more line
  const int64_t l0 = step * lines / steps, l1 = (step + 1) * lines / steps;
  if (l0 == l1) return;
  const int64_t rn = lin_min(kNR, r_end - r0);
  for (int64_t j = 0; j < rn; ++j) {
    const uintptr_t base = (uintptr_t)lin_row(a.w, a.w_dtype, (r0 + j) * a.w_stride + k0) & ~(uintptr_t)63;
    for (int64_t l = l0; l < l1; ++l) NM_LIN_PREFETCH_L2(base + (uintptr_t)(l * 64));
  }
}

// Packs W[n0 : n0 + nc, k0 : k0 + kc] as float32 strips (columns past nc are 0).
// A strip is filled VF::W columns of k at a time: VF::W rows' vectors are
// loaded (converted) and transposed so that the strip is written k-major.
// While a strip is packed, the rows of the next one (the next strip of this
// block, else `next`'s) are prefetched.
template <int DT>
static void pack_b(const LinearArgs& a, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float* bp,
                   const PackNext& next) {
  const int64_t steps = (kc + VF::W - 1) / VF::W;
  for (int64_t s = 0; s * kNR < nc; ++s) {
    float* d = bp + s * kc * kNR;
    const int jn = (int)lin_min(kNR, nc - s * kNR);
    const void* rows[kNR];
    for (int j = 0; j < jn; ++j) rows[j] = lin_row(a.w, a.w_dtype, (n0 + s * kNR + j) * a.w_stride + k0);
    const bool in_block = (s + 1) * kNR < nc;
    const int64_t pr0 = in_block ? n0 + (s + 1) * kNR : next.n0;
    const int64_t pr_end = in_block ? n0 + nc : a.N;
    const int64_t pk0 = in_block ? k0 : next.k0, pkc = in_block ? kc : next.kc;
    for (int64_t k = 0; k < kc; k += VF::W) {
      if (pr0 >= 0) prefetch_strip_part(a, pr0, pr_end, pk0, pkc, k / VF::W, steps);
      const int t = (int)lin_min(VF::W, kc - k);
      float* dk = d + k * kNR;
      for (int jb = 0; jb < kNR; jb += VF::W) {
        VF r[VF::W];
        for (int j = 0; j < VF::W; ++j)
          r[j] = jb + j >= jn ? VF::zero()
                 : t == VF::W ? lin_load<DT>(rows[jb + j], k)
                              : lin_load_partial<DT>(rows[jb + j], k, t);
#ifdef NM_LINEAR_HAS_TRANSPOSE
        lin_transpose(r);
        for (int i = 0; i < t; ++i) r[i].store(dk + i * kNR + jb);
#else
        float tmp[VF::W * VF::W];  // [j][i]
        for (int j = 0; j < VF::W; ++j) r[j].store(tmp + j * VF::W);
        for (int i = 0; i < t; ++i)
          for (int j = 0; j < VF::W; ++j) dk[i * kNR + jb + j] = tmp[j * VF::W + i];
#endif
      }
    }
  }
}

// C[mr x ncols] (row stride ys) = init + x rows * B strip, where init is the
// current C (accumulate), else the bias strip (kNR floats), else 0. The
// rows are read in place (xr[i][k], k < kc; rows past mr repeat a valid
// one, their results unused): each is a sequential stream, and packing them
// into a panel first cost a transpose per element (6% of an AVX2 prefill).
static inline void gemm_ukernel(int64_t kc, const float* const* xr, const float* bp, float* c, int64_t ys,
                                int mr, int ncols, const float* bias, bool accumulate) {
  VF acc[kMR][kNV];
  if (accumulate) {
    for (int i = 0; i < kMR; ++i)
      for (int v = 0; v < kNV; ++v)
        acc[i][v] = i < mr ? VF::load_partial(c + i * ys + v * VF::W, ncols - v * VF::W) : VF::zero();
  } else {
    for (int v = 0; v < kNV; ++v) {
      const VF b = bias ? VF::load(bias + v * VF::W) : VF::zero();
      for (int i = 0; i < kMR; ++i) acc[i][v] = b;
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    VF b[kNV];
    for (int v = 0; v < kNV; ++v) b[v] = VF::load(bp + k * kNR + v * VF::W);
    for (int i = 0; i < kMR; ++i) {
      const VF av = VF::set1(xr[i][k]);
      for (int v = 0; v < kNV; ++v) acc[i][v] = fmadd(av, b[v], acc[i][v]);
    }
  }
  if (ncols == kNR) {
    for (int i = 0; i < kMR; ++i)
      if (i < mr)
        for (int v = 0; v < kNV; ++v) acc[i][v].store(c + i * ys + v * VF::W);
  } else {
    for (int i = 0; i < kMR; ++i)
      if (i < mr)
        for (int v = 0; v < kNV; ++v) acc[i][v].store_partial(c + i * ys + v * VF::W, ncols - v * VF::W);
  }
}

// Rows of x per M block: the rows' K block stays in cache while every N
// block passes over it (kMC * kKC floats: 512 KiB on AVX-512).
constexpr int64_t kMC = 64 * kMR;
static_assert(kMC % kMR == 0, "kMC must be a multiple of kMR");

// Register/cache geometry for the dispatcher: micro-tile rows and columns,
// and the per-thread scratch (floats) linear_gemm needs.
void linear_gemm_geometry(int64_t* mr, int64_t* nr, int64_t* scratch_floats) {
  *mr = kMR;
  *nr = kNR;
  *scratch_floats = kKC * kNC + kNC;
}

// Loop nest: M blocks of kMC rows > K blocks of kKC > N blocks of kNC >
// pack B > micro-tiles. Each element of y
// still sums its K blocks in ascending order (the first one adds the bias),
// so the order of the N and K loops does not change any result.
template <int DT>
static void gemm_dt(const LinearArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* scratch) {
  float* bp = scratch;                  // kKC * kNC
  float* bias = bp + kKC * kNC;         // kNC
  const int64_t K = a.K;
  for (int64_t mb = m0; mb < m1; mb += kMC) {
    const int64_t me = lin_min(m1, mb + kMC);
    // One pass with kc = 0 when K == 0 so that y still gets the bias.
    for (int64_t k0 = 0;; k0 += kKC) {
      const int64_t kc = lin_min(kKC, K - k0);
      const bool first = k0 == 0;
      for (int64_t nb = n0; nb < n1; nb += kNC) {
        const int64_t nc = lin_min(kNC, n1 - nb);
        if (first && a.bias) {
          const int64_t ncp = (nc + kNR - 1) / kNR * kNR;
          for (int64_t j = 0; j < ncp; ++j) bias[j] = j < nc ? load_as_f32(a.bias, a.bias_dtype, nb + j) : 0.0f;
        }
        // The block this thread packs next: the next N block, else the
        // next K block's first, else the next M block's first.
        PackNext next;
        if (nb + kNC < n1) next = {nb + kNC, k0, kc};
        else if (k0 + kKC < K) next = {n0, k0 + kKC, lin_min(kKC, K - k0 - kKC)};
        else if (me < m1) next = {n0, 0, lin_min(kKC, K)};
        pack_b<DT>(a, nb, nc, k0, kc, bp, next);
        for (int64_t m = mb; m < me; m += kMR) {
          const int mr = (int)lin_min(kMR, me - m);
          const float* xr[kMR];
          for (int i = 0; i < kMR; ++i) xr[i] = lin_x_row(a, i < mr ? m + i : m) + k0;
          for (int64_t s = 0; s * kNR < nc; ++s) {
            const int ncols = (int)lin_min(kNR, nc - s * kNR);
            gemm_ukernel(kc, xr, bp + s * kc * kNR, a.y + m * a.y_stride + nb + s * kNR, a.y_stride, mr,
                         ncols, first && a.bias ? bias + s * kNR : nullptr, !first);
          }
        }
      }
      if (k0 + kKC >= K) break;
    }
  }
}

// ---------------------------------------------------------------------------
// GEMM for few input rows (linear_small_m_geometry): y^T = W x^T.
// The blocked GEMM above packs (transposes) every W block it uses and reuses
// it for M / kMR row tiles; with tens of rows, as each expert of a mixture-
// of-experts prefill gets, the packing of W cost as much as a third of the
// products. Here the roles swap: x (small) is transposed once per call into
// strips of VF::W rows (element [k][j], xt_layout), and W is read in place,
// one element broadcast per row and k, against a vector of VF::W rows of x.
// A tile is VF::W weight rows x VF::W input rows, VF::W accumulators,
// transposed in registers before the store. Each y element is the same fma
// chain as in the blocked GEMM (bias first, then k ascending; fma(w, x, acc)
// is fma(x, w, acc)), so both give the same bits. Needs the in-register
// transpose: the scalar level reports no rows and linear.cpp uses the
// blocked GEMM there.
#ifdef NM_LINEAR_HAS_TRANSPOSE
constexpr int64_t kTW = VF::W;
// Row stride (floats) of the converted weight rows: K rounded up to whole
// cache lines, plus one line.
static inline int64_t linear_small_m_wbuf_stride(int64_t K) { return (K + 15) / 16 * 16 + 16; }

// Lanes (tile size) and the largest M this path takes, for f32 weights and
// for the converted formats: where it beat the blocked GEMM over weights
// streamed from memory (bench/NOTES.md, ninth session). AVX2's 8 x 8 tile has
// fewer independent chains than its blocked 6 x 16 one and wins less.
void linear_small_m_geometry(int64_t K, int64_t* lanes, int64_t* max_rows_f32, int64_t* max_rows_other,
                             int64_t* wbuf_floats) {
  *lanes = kTW;
  *wbuf_floats = kTW * linear_small_m_wbuf_stride(K);
  *max_rows_f32 = kTW == 16 ? 64 : 32;
  *max_rows_other = kTW == 16 ? 64 : 0;
}

// Strips [s0, s1) of x^T: strip s holds rows s*W .. s*W + W - 1 of x (zero
// past M) at xt + s * K * W.
void linear_pack_xt(const LinearArgs& a, int64_t s0, int64_t s1, float* xt) {
  const int64_t K = a.K;
  for (int64_t s = s0; s < s1; ++s) {
    float* d = xt + s * K * kTW;
    const int64_t m0 = s * kTW, mr = lin_min(kTW, a.M - m0);
    const float* rows[kTW];
    for (int64_t j = 0; j < mr; ++j) rows[j] = lin_x_row(a, m0 + j);
    for (int64_t k = 0; k < K; k += kTW) {
      const int t = (int)lin_min(kTW, K - k);
      VF r[kTW];
      for (int64_t j = 0; j < kTW; ++j)
        r[j] = j >= mr ? VF::zero() : t == kTW ? VF::load(rows[j] + k) : VF::load_partial(rows[j] + k, t);
      lin_transpose(r);
      for (int i = 0; i < t; ++i) r[i].store(d + (k + i) * kTW);
    }
  }
}

// The two halves of a vector swapped (lanes W/2.. first).
#if NM_LINEAR_LANES == 16
static inline VF lin_swap_halves(VF v) { return VF{_mm512_shuffle_f32x4(v.v, v.v, 0x4E)}; }
#else
static inline VF lin_swap_halves(VF v) { return VF{_mm256_permute2f128_ps(v.v, v.v, 0x01)}; }
#endif

// The tile's weight row i when its rows are output columns n .. n + nr - 1
// of W (sw == nullptr; rows past nr repeat the last), or the SwiGLU tile's:
// the first half gate rows (a.w), the second the same columns of up.
static inline const void* gemm_t_row(const LinearArgs& a, const LinearSwiglu* sw, int64_t n, int64_t nr, int64_t i) {
  if (!sw) return lin_row(a.w, a.w_dtype, (n + lin_min(i, nr - 1)) * a.w_stride);
  constexpr int64_t H = kTW / 2;
  const void* base = i < H ? a.w : sw->w_up;
  return lin_row(base, a.w_dtype, (n + lin_min(i % H, nr - 1)) * a.w_stride);
}

template <int DT>
static void gemm_t_dt(const LinearArgs& a, const float* xt, int64_t n0, int64_t n1, float* wbuf,
                      const LinearSwiglu* sw) {
  const int64_t K = a.K, strips = (a.M + kTW - 1) / kTW;
  const int64_t ws = linear_small_m_wbuf_stride(K);
  const bool in_place = DT == (int)DType::F32 && (a.w_stride * (int64_t)sizeof(float)) % 4096 != 0;
  // Output columns per tile: all of its rows', or half (gate and up).
  const int64_t tn = sw ? kTW / 2 : kTW;
  for (int64_t n = n0; n < n1; n += tn) {
    const int64_t nr = lin_min(tn, n1 - n);
    // The tile's rows: f32 in place, unless rows a multiple of 4 KiB apart
    // (K = 1024) would all fall into one L1 set (the tile then ran at 0.6x
    // the blocked GEMM); otherwise converted to float32 (the conversion
    // pack_b makes; a copy for f32) at a stride one cache line longer than a
    // multiple of the lines.
    const float* wr[kTW];
    for (int64_t i = 0; i < kTW; ++i) {
      const void* row = gemm_t_row(a, sw, n, nr, i);
      if (in_place) {
        wr[i] = static_cast<const float*>(row);
        continue;
      }
      float* d = wbuf + i * ws;
      for (int64_t k = 0; k < K; k += kTW) {
        const int t = (int)lin_min(kTW, K - k);
        (t == kTW ? lin_load<DT>(row, k) : lin_load_partial<DT>(row, k, t)).store(d + k);
      }
      wr[i] = d;
    }
    // The next tile's rows are prefetched while the first strip runs: the
    // tile reads VF::W rows at once, more streams than the hardware
    // prefetcher follows.
    const bool has_next = n + tn < n1;
    const int64_t next_nr = has_next ? lin_min(tn, n1 - n - tn) : 0;
    uintptr_t pf[kTW];
    for (int64_t i = 0; i < kTW && has_next; ++i) pf[i] = (uintptr_t)gemm_t_row(a, sw, n + tn, next_nr, i);
    float bias[kTW];
    for (int64_t i = 0; i < kTW; ++i) bias[i] = a.bias && i < nr ? load_as_f32(a.bias, a.bias_dtype, n + i) : 0.0f;
    for (int64_t s = 0; s < strips; ++s) {
      VF acc[kTW];
      for (int64_t i = 0; i < kTW; ++i) acc[i] = VF::set1(bias[i]);
      const float* xs = xt + s * K * kTW;
      constexpr int64_t kLine = 64 / (int64_t)sizeof(float);
      for (int64_t kb = 0; kb < K; kb += kLine) {
        if (s == 0 && has_next) {
          // Byte offset of element kb in a row (a quantized block's start).
          const int64_t off = dtype_row_bytes(a.w_dtype, kb - kb % kQuantBlock) + kb % kQuantBlock * dtype_size(a.w_dtype);
          for (int64_t i = 0; i < kTW; ++i) NM_LIN_PREFETCH_L2(pf[i] + (uintptr_t)off);
        }
        const int64_t ke = lin_min(K, kb + kLine);
        for (int64_t k = kb; k < ke; ++k) {
          const VF xv = VF::load(xs + k * kTW);
          for (int64_t i = 0; i < kTW; ++i) acc[i] = fmadd(VF::set1(wr[i][k]), xv, acc[i]);
        }
      }
      lin_transpose(acc);  // acc[j]: tile rows' outputs for input row s*W + j
      const int64_t mr = lin_min(kTW, a.M - s * kTW);
      for (int64_t j = 0; j < mr; ++j) {
        if (sw) {
          // h = silu(gate) * up, element for element as moe_swiglu_rows.
          float* hr = sw->h + (s * kTW + j) * sw->h_stride + n;
          (vsilu(acc[j]) * lin_swap_halves(acc[j])).store_partial(hr, (int)nr);
          continue;
        }
        float* yr = a.y + (s * kTW + j) * a.y_stride + n;
        if (nr == kTW) acc[j].store(yr);
        else acc[j].store_partial(yr, (int)nr);
      }
    }
  }
}

// y[:, n0:n1] from xt (linear_pack_xt, all strips), or with sw the SwiGLU
// of columns n0:n1 of gate and up into sw->h; n0 a multiple of the tile's
// columns (the lanes, half of them with sw); wbuf: linear_small_m_geometry's
// wbuf_floats, this thread's own.
void linear_gemm_t(const LinearArgs& a, const float* xt, int64_t n0, int64_t n1, float* wbuf,
                   const LinearSwiglu* sw) {
  switch (a.w_dtype) {
    case DType::F32: gemm_t_dt<(int)DType::F32>(a, xt, n0, n1, wbuf, sw); break;
    case DType::F16: gemm_t_dt<(int)DType::F16>(a, xt, n0, n1, wbuf, sw); break;
    case DType::Q8_0: gemm_t_dt<kQ8>(a, xt, n0, n1, wbuf, sw); break;
    case DType::Q4_0: gemm_t_dt<kQ4>(a, xt, n0, n1, wbuf, sw); break;
    case DType::BF16: gemm_t_dt<(int)DType::BF16>(a, xt, n0, n1, wbuf, sw); break;
    default: throw_unknown_dtype(a.w_dtype);
  }
}
#else
void linear_small_m_geometry(int64_t, int64_t* lanes, int64_t* max_rows_f32, int64_t* max_rows_other,
                             int64_t* wbuf_floats) {
  *lanes = *max_rows_f32 = *max_rows_other = *wbuf_floats = 0;
}
void linear_pack_xt(const LinearArgs&, int64_t, int64_t, float*) {}
void linear_gemm_t(const LinearArgs&, const float*, int64_t, int64_t, float*, const LinearSwiglu*) {}
#endif

// y[m0:m1, n0:n1]; scratch: linear_gemm_geometry's scratch_floats, this
// thread's own.
void linear_gemm(const LinearArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* scratch) {
  switch (a.w_dtype) {
    case DType::F32: gemm_dt<(int)DType::F32>(a, m0, m1, n0, n1, scratch); break;
    case DType::F16: gemm_dt<(int)DType::F16>(a, m0, m1, n0, n1, scratch); break;
    case DType::Q8_0: gemm_dt<kQ8>(a, m0, m1, n0, n1, scratch); break;
    case DType::Q4_0: gemm_dt<kQ4>(a, m0, m1, n0, n1, scratch); break;
    case DType::BF16: gemm_dt<(int)DType::BF16>(a, m0, m1, n0, n1, scratch); break;
    default: throw_unknown_dtype(a.w_dtype);
  }
}

}  // namespace NM_ISA
}  // namespace nm
