// GEMV of Q4_0 weights against inputs rounded to int8 per block of 32
// (ActRounding::Q8Block, linear.h "Rounded activations") on integer dot
// products, for the AVX2 level and AVX-512 without VNNI (linear.cpp
// run_dot_gemv): the twin of linear_dot_avx512vnni.cpp's int8 path, which
// those levels cannot run. Without it they dequantized every weight to
// float and multiplied by the rounded x: 1.8x slower (bench/NOTES.md).
// Q8_0 stays on that float path at these levels: its integer version here
// (int16 products, exact for w = -128) measured 0.92-1.05x of it.
// Inputs in the same Q8Rows records as the VNNI path.
//
// A block b of 32 weights (scale dw) against its 32 quantized inputs q
// (scale dx) adds dw·dx·Σ (n_j - 8)·q_j to a float accumulator. The integer
// sum, 8 int32 lanes of 4 products each: vpmaddubsw multiplies the nibbles
// n (0..15, unsigned) by q (a pair is at most 2·15·127), vpmaddwd widens,
// and -8·Σq per lane comes from the record (corr = -128·Σq, shifted right by
// 4: exact). Then per lane float(sum)·(dw·dx) accumulated by fma, blocks in
// order, and the 8 lanes summed at the end in a fixed order, so a row's
// result does not depend on the tile that computed it (rows of a batch
// equal single rows).
// Everything but the declared entry points is static (no weak symbols in an
// ISA object, scripts/check-isa-symbols.sh).
#include "kernels/linear_dot.h"

#if NM_LINEAR_DOT
#include <immintrin.h>
#include <string.h>

#include <cmath>

namespace nm::avx2dot {

using avx512vnni::kQ8Record;
using avx512vnni::Q8Rows;

namespace {

using dot::min64;
using dot::half_at;

// Bytes of a Q4_0 block: f16 scale, 16 bytes of nibbles (byte j: element j
// low, j + 16 high; value nibble - 8).
constexpr int64_t kQ4Block = 18;

// The block's 32 nibbles in element order.
inline __m256i block_nibbles(const uint8_t* blk) {
  const __m128i b = _mm_loadu_si128((const __m128i*)(blk + 2)), m = _mm_set1_epi8(0x0f);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(b, m)), _mm_and_si128(_mm_srli_epi16(b, 4), m), 1);
}

// Σ of the 8 lanes, in a fixed order.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// R weight rows x MB input rows, accumulated over all of K.
template <int R, int MB>
void q4dot_tile(const LinearArgs& a, const Q8Rows& q, int64_t n, int64_t m0) {
  const int64_t row_bytes = dtype_row_bytes(a.w_dtype, a.w_stride);
  const int64_t nb = a.K / kQuantBlock;
  const uint8_t* wr[R];
  for (int r = 0; r < R; ++r) wr[r] = static_cast<const uint8_t*>(a.w) + (n + r) * row_bytes;
  const int64_t x_step = q.M * kQ8Record;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][MB];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm256_setzero_ps();
  const int64_t pf_off = R * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    // block 2p's inputs are bytes 0-31 of the pair's record, 2p + 1's 32-63
    const char* xp = q.base + (b / 2) * x_step + m0 * kQ8Record + (b % 2) * 32;
    const int64_t boff = b * kQ4Block;
    __m256i w[R];
    __m256 dw[R];
    for (int r = 0; r < R; ++r) {
      if (b % 4 == 0) NM_DOT_PREFETCH_L2(wr[r] + boff + pf_off);
      w[r] = block_nibbles(wr[r] + boff);
      dw[r] = _mm256_set1_ps(half_at(wr[r] + boff));
    }
    for (int m = 0; m < MB; ++m) {
      const char* rec = xp + m * kQ8Record;
      const __m256i qv = _mm256_load_si256((const __m256i*)rec);
      const __m256i corr8 = _mm256_srai_epi32(_mm256_load_si256((const __m256i*)(rec + 64)), 4);
      const __m256 dx = _mm256_load_ps((const float*)(rec + 128));
      for (int r = 0; r < R; ++r) {
        const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w[r], qv), ones), corr8);
        acc[r][m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw[r], dx), acc[r][m]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float bias = a.bias ? load_as_f32(a.bias, a.bias_dtype, n + r) : 0.0f;
    for (int m = 0; m < MB; ++m) a.y[(m0 + m) * a.y_stride + n + r] = hsum8(acc[r][m]) + bias;
  }
}

// Tile heights: R * MB accumulators + 2R weight registers + 3 per input row
// within the 16 ymm registers.
constexpr int kDotMB = 4;      // input rows per tile (chunk)
constexpr int kDotGroup = 24;  // weight rows per group when M > kDotMB
constexpr int rows_for(int mb) { return mb <= 1 ? 4 : mb <= 2 ? 3 : 2; }

template <int MB>
void q4dot_group(const LinearArgs& a, const Q8Rows& q, int64_t n, int64_t nt, int64_t m0) {
  constexpr int R = rows_for(MB);
  static_assert(kDotGroup % R == 0, "R must divide the group");
  int64_t r = 0;
  for (; r + R <= nt; r += R) q4dot_tile<R, MB>(a, q, n + r, m0);
  for (; r < nt; ++r) q4dot_tile<1, MB>(a, q, n + r, m0);
}

void q4dot_chunk(const LinearArgs& a, const Q8Rows& q, int64_t n, int64_t nt, int64_t m0, int mb) {
  switch (mb) {
    case 1: q4dot_group<1>(a, q, n, nt, m0); break;
    case 2: q4dot_group<2>(a, q, n, nt, m0); break;
    case 3: q4dot_group<3>(a, q, n, nt, m0); break;
    default: q4dot_group<4>(a, q, n, nt, m0); break;
  }
}

// Max |v| over 8 lanes.
inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void quantize_q8_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K, const Q8Rows& out) {
  const int64_t nb = K / kQuantBlock;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + (x_rows ? (int64_t)x_rows[m] : m) * xs;
    for (int64_t p = 0; p < out.pairs; ++p) {
      char* rec = out.base + (p * M + m) * kQ8Record;
      int32_t* corr = reinterpret_cast<int32_t*>(rec + 64);
      float* sc = reinterpret_cast<float*>(rec + 128);
      for (int h = 0; h < 2; ++h) {
        const int64_t b = 2 * p + h;
        int8_t* qo = reinterpret_cast<int8_t*>(rec + 32 * h);
        if (b >= nb) {
          memset(qo, 0, 32);
          for (int i = 0; i < 8; ++i) corr[8 * h + i] = 0, sc[8 * h + i] = 0.0f;
          continue;
        }
        __m256 v[4], mx = _mm256_setzero_ps();
        int nan = 0;
        for (int i = 0; i < 4; ++i) {
          v[i] = _mm256_loadu_ps(xr + 32 * b + 8 * i);
          mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[i]));
          nan |= _mm256_movemask_ps(_mm256_cmp_ps(v[i], v[i], _CMP_UNORD_Q));
        }
        // As round_activations (linear.cpp) and the VNNI quantizer: scale
        // amax / 127, q = x·(127 / amax) rounded to nearest even, clamped;
        // a NaN makes the block's scale NaN.
        const float amax = nan ? NAN : hmax8(mx);
        const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        __m256i qi[4];
        for (int i = 0; i < 4; ++i)
          qi[i] = _mm256_min_epi32(hi, _mm256_max_epi32(lo, _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id))));
        // int32 -> int8 in element order (packs work within 128-bit lanes)
        const __m256i w01 = _mm256_packs_epi32(qi[0], qi[1]), w23 = _mm256_packs_epi32(qi[2], qi[3]);
        const __m256i b8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_store_si256((__m256i*)qo, b8);
        // -128 * (sum of each 4 consecutive q)
        const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), b8), _mm256_set1_epi16(1));
        _mm256_store_si256((__m256i*)corr + h, _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), s4), 7));
        _mm256_store_ps(sc + 8 * h, _mm256_set1_ps(amax / 127.0f));
      }
    }
  }
}

int64_t dot_split_rows(int64_t M) {
  if (M > kDotMB) return kDotGroup;
  return rows_for((int)(M < 1 ? 1 : M));
}

// Weight rows in groups of kDotGroup; every chunk of input rows runs while
// the group's rows are in L2.
void gemv_q4dot(const LinearArgs& a, const Q8Rows& q, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n += kDotGroup) {
    const int64_t nt = min64(kDotGroup, n1 - n);
    for (int64_t m0 = 0; m0 < a.M; m0 += kDotMB) q4dot_chunk(a, q, n, nt, m0, (int)min64(kDotMB, a.M - m0));
  }
}

}  // namespace nm::avx2dot

#endif  // NM_LINEAR_DOT
