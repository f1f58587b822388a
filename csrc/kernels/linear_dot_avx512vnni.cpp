// GEMV on int8 (VNNI vpdpbusd) and bf16 (vdpbf16ps) dot products, for the
// rounded-activation modes of linear.h. Compiled with AVX-512 + VNNI + BF16
// flags (CMakeLists.txt / binding.gyp, by the file suffix); only called at
// the Avx512Vnni level, the bf16 kernel only when the CPU has AVX512_BF16.
// Everything but the declared entry points is static (no weak symbols in an
// ISA object, scripts/check-isa-symbols.sh).
#include "kernels/linear_dot.h"

// GCC 12 reports a false -Wuninitialized inside _mm512_reduce_add_ps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#if NM_LINEAR_DOT
#include <immintrin.h>
#include <string.h>

#include <cmath>

namespace nm::avx512vnni {

namespace {

using dot::min64;
using dot::half_at;

// ---------------------------------------------------------------------------
// Int8 path. For a block of 32 weights w (int8) with scale dw and 32 inputs
// quantized as q (int8) with scale dx, the block's contribution is
//   dw * dx * sum_j w_j q_j.
// vpdpbusd multiplies UNSIGNED bytes by signed bytes, four per int32 lane, so
// the weights are offset to u = w + 128 (0..255, exact) and the offset is
// taken back with the input's own sums: sum u q = sum w q + 128 sum q. The
// term -128 * (sum of each 4 q's) is computed once per input row (corr) and
// seeds the accumulator, so each (weight row, input row) pair costs one
// vpdpbusd, one int -> float conversion and two float ops per 64 weights
// (two blocks per 512-bit register). Integer sums are exact; only the
// per-block float scaling rounds.

// Weights of blocks b and b + 1 (b + 1 absent: zero lanes) as u = w + 128.
template <int DT>
inline __m512i weight_pair_u8(const uint8_t* blk, int64_t bb, bool has1) {
  if constexpr (DT == (int)DType::Q8_0) {
    const __m256i lo = _mm256_loadu_si256((const __m256i*)(blk + 2));
    const __m256i hi = has1 ? _mm256_loadu_si256((const __m256i*)(blk + bb + 2)) : _mm256_set1_epi8(-128);
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(-128));
  } else {
    // Q4_0: byte j of a block holds element j (low nibble) and j + 16 (high
    // nibble), value nibble - 8; u = nibble + 120.
    const __m128i m = _mm_set1_epi8(0x0f);
    auto block = [&](const uint8_t* p) {
      const __m128i b = _mm_loadu_si128((const __m128i*)(p + 2));
      const __m256i n = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(b, m)),
                                                _mm_and_si128(_mm_srli_epi16(b, 4), m), 1);
      return _mm256_add_epi8(n, _mm256_set1_epi8(120));
    };
    const __m256i lo = block(blk);
    const __m256i hi = has1 ? block(blk + bb) : _mm256_set1_epi8(-128);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }
}

template <int DT> struct QBytes;
template <> struct QBytes<(int)DType::Q8_0> { static constexpr int64_t v = 34; };
template <> struct QBytes<(int)DType::Q4_0> { static constexpr int64_t v = 18; };

// R weight rows x MB input rows, accumulated over all of K. The input rows
// of a pair of blocks are interleaved in q (see Q8Rows), so that one pointer
// with constant offsets reaches all of them (GCC otherwise spills the row
// pointers into vector registers and the accumulators to the stack).
template <int R, int MB, int DT>
void q8dot_tile(const LinearArgs& a, const Q8Rows& q, int64_t n, int64_t m0) {
  constexpr int64_t BB = QBytes<DT>::v;
  const int64_t row_bytes = dtype_row_bytes(a.w_dtype, a.w_stride);
  const int64_t nb = a.K / kQuantBlock;
  const uint8_t* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const uint8_t*>(a.w) + (n + r) * row_bytes;
  const char* xp = q.base + m0 * kQ8Record;
  const int64_t x_step = q.M * kQ8Record;
  __m512 acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  // Prefetch the next tile's rows (as the exact GEMV in linear_impl.h).
  const int64_t pf_off = R * row_bytes;
  for (int64_t p = 0; p < q.pairs; ++p, xp += x_step) {
    const int64_t boff = 2 * p * BB;
    const bool has1 = 2 * p + 1 < nb;
    __m512i wu[R];
    __m512 dw[R];
    for (int r = 0; r < R; ++r) {
      NM_DOT_PREFETCH_L2(wr[r] + boff + pf_off);
      NM_DOT_PREFETCH_L2(wr[r] + boff + pf_off + 2 * BB - 1);
      wu[r] = weight_pair_u8<DT>(wr[r] + boff, BB, has1);
      const float d1 = has1 ? half_at(wr[r] + boff + BB) : 0.0f;
      dw[r] = _mm512_insertf32x8(_mm512_set1_ps(half_at(wr[r] + boff)), _mm256_set1_ps(d1), 1);
    }
    for (int m = 0; m < MB; ++m) {
      const char* rec = xp + m * kQ8Record;
      const __m512i xv = _mm512_load_si512((const void*)rec);
      const __m512i cv = _mm512_load_si512((const void*)(rec + 64));
      const __m512 dx = _mm512_load_ps((const float*)(rec + 128));
      for (int r = 0; r < R; ++r) {
        const __m512i s = _mm512_dpbusd_epi32(cv, wu[r], xv);
        acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dx), acc[r][m]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = a.bias ? load_as_f32(a.bias, a.bias_dtype, n + r) : 0.0f;
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = _mm512_reduce_add_ps(acc[r][m]) + b;
  }
}

// Tile heights: R * MB accumulators + 2R weight registers + 3 per input row
// + temporaries within the 32 zmm registers.
constexpr int kDotMB = 8;   // input rows per tile (chunk)
constexpr int kDotGroup = 24;  // weight rows per group when M > kDotMB
constexpr int q8_rows_for(int mb) { return mb <= 1 ? 8 : mb <= 2 ? 6 : mb <= 4 ? 4 : 2; }
constexpr int bf16_rows_for(int mb) { return mb <= 2 ? 8 : mb <= 4 ? 6 : mb <= 6 ? 4 : 3; }

template <int MB, int DT>
void q8dot_group(const LinearArgs& a, const Q8Rows& q, int64_t n, int64_t nt, int64_t m0) {
  constexpr int R = q8_rows_for(MB);
  static_assert(kDotGroup % R == 0, "R must divide the group");
  int64_t r = 0;
  for (; r + R <= nt; r += R) q8dot_tile<R, MB, DT>(a, q, n + r, m0);
  for (; r < nt; ++r) q8dot_tile<1, MB, DT>(a, q, n + r, m0);
}

// ---------------------------------------------------------------------------
// BF16 path: weights and rounded inputs are both bf16, vdpbf16ps adds two
// bf16 products per float lane (32 multiply-adds per instruction, no
// conversion of the weights).
// x is interleaved by 32-element chunks (round_bf16_rows): chunk c of row m
// at xb + (c * M + m) * 32, one pointer with constant offsets for the tile.
template <int R, int MB>
void bf16dot_tile(const LinearArgs& a, const uint16_t* xb, int64_t n, int64_t m0) {
  const int64_t K = a.K;
  const uint16_t* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const uint16_t*>(a.w) + (n + r) * a.w_stride;
  const uint16_t* xp = xb + m0 * 32;
  const int64_t x_step = a.M * 32;
  __m512 acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  const int64_t pf_off = R * a.w_stride * 2;
  const int64_t kfull = K / 32 * 32;
  for (int64_t k = 0; k < kfull; k += 32, xp += x_step) {
    __m512i wv[R];
    for (int r = 0; r < R; ++r) {
      NM_DOT_PREFETCH_L2((uintptr_t)(wr[r] + k) + pf_off);
      wv[r] = _mm512_loadu_si512((const void*)(wr[r] + k));
    }
    for (int m = 0; m < MB; ++m) {
      const __m512i xv = _mm512_load_si512((const void*)(xp + m * 32));
      for (int r = 0; r < R; ++r) acc[r][m] = _mm512_dpbf16_ps(acc[r][m], (__m512bh)wv[r], (__m512bh)xv);
    }
  }
  if (kfull < K) {
    // Masked loads never touch memory past the row (a masked-off element
    // does not fault); the rounded x is zero there.
    const __mmask32 tail = (__mmask32)((1u << (K - kfull)) - 1);
    __m512i wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_epi16(tail, wr[r] + kfull);
    for (int m = 0; m < MB; ++m) {
      const __m512i xv = _mm512_load_si512((const void*)(xp + m * 32));
      for (int r = 0; r < R; ++r) acc[r][m] = _mm512_dpbf16_ps(acc[r][m], (__m512bh)wv[r], (__m512bh)xv);
    }
  }
  for (int r = 0; r < R; ++r) {
    const float b = a.bias ? load_as_f32(a.bias, a.bias_dtype, n + r) : 0.0f;
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = _mm512_reduce_add_ps(acc[r][m]) + b;
  }
}

template <int MB>
void bf16dot_group(const LinearArgs& a, const uint16_t* xb, int64_t n, int64_t nt, int64_t m0) {
  constexpr int R = bf16_rows_for(MB);
  static_assert(kDotGroup % R == 0, "R must divide the group");
  int64_t r = 0;
  for (; r + R <= nt; r += R) bf16dot_tile<R, MB>(a, xb, n + r, m0);
  for (; r < nt; ++r) bf16dot_tile<1, MB>(a, xb, n + r, m0);
}

// One chunk of mb (1..8) input rows against weight rows [n, n + nt).
#define NM_DOT_SWITCH_MB(mb, CALL) \
  switch (mb) {                    \
    case 1: CALL(1); break;        \
    case 2: CALL(2); break;        \
    case 3: CALL(3); break;        \
    case 4: CALL(4); break;        \
    case 5: CALL(5); break;        \
    case 6: CALL(6); break;        \
    case 7: CALL(7); break;        \
    default: CALL(8); break;       \
  }

template <int DT>
void q8dot_chunk(const LinearArgs& a, const Q8Rows& q, int64_t n, int64_t nt, int64_t m0, int mb) {
#define NM_Q8_CALL(MB) q8dot_group<MB, DT>(a, q, n, nt, m0)
  NM_DOT_SWITCH_MB(mb, NM_Q8_CALL)
#undef NM_Q8_CALL
}

void bf16dot_chunk(const LinearArgs& a, const uint16_t* xb, int64_t n, int64_t nt, int64_t m0, int mb) {
#define NM_BF16_CALL(MB) bf16dot_group<MB>(a, xb, n, nt, m0)
  NM_DOT_SWITCH_MB(mb, NM_BF16_CALL)
#undef NM_BF16_CALL
}

// Round to bfloat16, nearest even, NaN kept NaN (as f32_to_bf16 in
// core/dtype.h), 16 floats.
inline __m256i bf16_round16(__m512 v) {
  const __m512i x = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace

void quantize_q8_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K, const Q8Rows& out) {
  const int64_t nb = K / kQuantBlock;
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + (x_rows ? (int64_t)x_rows[m] : m) * xs;
    for (int64_t p = 0; p < out.pairs; ++p) {
      char* rec = out.base + (p * M + m) * kQ8Record;
      __m128i qs[4];
      float scale[2];
      for (int h = 0; h < 2; ++h) {
        const int64_t b = 2 * p + h;
        scale[h] = 0.0f;
        qs[2 * h] = qs[2 * h + 1] = _mm_setzero_si128();
        if (b >= nb) continue;
        const __m512 v0 = _mm512_loadu_ps(xr + 32 * b), v1 = _mm512_loadu_ps(xr + 32 * b + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1)));
        // A NaN makes the block's scale NaN (as round_activations).
        if (_mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q)) amax = NAN;
        // The same float operations as round_activations (linear.cpp); cvtps
        // rounds to nearest even (the default MXCSR mode), as nearbyint.
        scale[h] = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        qs[2 * h] = _mm512_cvtepi32_epi8(_mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)))));
        qs[2 * h + 1] = _mm512_cvtepi32_epi8(_mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v1, id)))));
      }
      const __m512i qv = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(qs[0]), qs[1], 1)),
          _mm256_inserti128_si256(_mm256_castsi128_si256(qs[2]), qs[3], 1), 1);
      _mm512_store_si512((void*)rec, qv);
      // -128 * (sum of each 4 consecutive q): vpdpbusd of 128 (unsigned) by q.
      const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), qv);
      _mm512_store_si512((void*)(rec + 64), _mm512_sub_epi32(_mm512_setzero_si512(), s));
      _mm512_store_ps((float*)(rec + 128), _mm512_insertf32x8(_mm512_set1_ps(scale[0]), _mm256_set1_ps(scale[1]), 1));
    }
  }
}

int64_t bf16_row_elems(int64_t K) { return (K + 31) / 32 * 32; }

void round_bf16_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K, uint16_t* out) {
  const int64_t chunks = (K + 31) / 32;
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + (x_rows ? (int64_t)x_rows[m] : m) * xs;
    for (int64_t c = 0; c < chunks; ++c) {
      uint16_t* o = out + (c * M + m) * 32;
      for (int h = 0; h < 2; ++h) {
        const int64_t k = 32 * c + 16 * h, t = min64(16, K - k);
        const __mmask16 mask = t >= 16 ? (__mmask16)0xffff : t <= 0 ? 0 : (__mmask16)((1u << t) - 1);
        _mm256_store_si256((__m256i*)(o + 16 * h), bf16_round16(_mm512_maskz_loadu_ps(mask, xr + k)));
      }
    }
  }
}

int64_t dot_split_rows(int64_t M, DType w_dtype) {
  if (M > kDotMB) return kDotGroup;
  const int mb = (int)(M < 1 ? 1 : M);
  return w_dtype == DType::BF16 ? bf16_rows_for(mb) : q8_rows_for(mb);
}

// Weight rows in groups of kDotGroup; every chunk of 8 input rows runs
// while the group's rows are in L2 (as linear_impl.h's gemv_rows_dt).
void gemv_q8dot(const LinearArgs& a, const Q8Rows& q, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += kDotGroup) {
    const int64_t nt = min64(kDotGroup, n1 - n);
    for (int64_t m0 = 0; m0 < a.M; m0 += kDotMB) {
      const int mb = (int)min64(kDotMB, a.M - m0);
      if (a.w_dtype == DType::Q4_0) q8dot_chunk<(int)DType::Q4_0>(a, q, n, nt, m0, mb);
      else q8dot_chunk<(int)DType::Q8_0>(a, q, n, nt, m0, mb);
    }
  }
}

void gemv_bf16dot(const LinearArgs& a, const uint16_t* xb, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += kDotGroup) {
    const int64_t nt = min64(kDotGroup, n1 - n);
    for (int64_t m0 = 0; m0 < a.M; m0 += kDotMB) bf16dot_chunk(a, xb, n, nt, m0, (int)min64(kDotMB, a.M - m0));
  }
}

}  // namespace nm::avx512vnni

#endif  // NM_LINEAR_DOT
