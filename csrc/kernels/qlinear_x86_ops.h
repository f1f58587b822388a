// The integer ops of qlinear_impl.h for x86 levels (AVX2 and AVX-512 without
// VNNI): products of signed int8 through vpmaddubsw (unsigned x signed bytes,
// pairwise into int16) then vpmaddwd with ones (pairs into int32).
//   I8 x I8: |x| times w with x's sign moved onto it; |x|, |w| <= 127, so a
//            pair sums to at most 2·127·127 = 32258 < 2^15: no saturation.
//   U4 x I8: nibble (0..15) times x: a pair is at most 2·15·127.
// Included by qlinear_avx2.cpp and qlinear_avx512.cpp with their flags; the
// avx512vnni unit (qlinear_avx512vnni.cpp) derives from the 512-bit ops and
// replaces the two dot products.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

#if defined(NM_QLINEAR_512)
struct Ops512 {
  using I = __m512i;
  using A = __m512i;
  using F = __m512;
  static constexpr int FW = 16;
  static constexpr int32_t kI8Offset = 0;
  static constexpr int kRowsI8 = 4, kInRowsI8 = 4, kRowsI4 = 4, kInRowsI4 = 2, kRowsF = 4, kInRowsF = 2;
  static void prefetch(const void* p) { _mm_prefetch((const char*)p, _MM_HINT_T1); }
  static A azero() { return _mm512_setzero_si512(); }
  static F fzero() { return _mm512_setzero_ps(); }
  static I load_i8(const int8_t* p) { return _mm512_loadu_si512((const void*)p); }
  static I load_u4(const uint8_t* p) {
    const __m256i b = _mm256_loadu_si256((const __m256i*)p), m = _mm256_set1_epi8(0x0f);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(b, m)),
                              _mm256_and_si256(_mm256_srli_epi16(b, 4), m), 1);
  }
  static void store_u4(const uint8_t* p, uint8_t* out) { _mm512_storeu_si512((void*)out, load_u4(p)); }
  static A dot_i8(A acc, I w, I x) {
    const __mmask64 neg = _mm512_movepi8_mask(x);
    const __m512i sw = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
    const __m512i p16 = _mm512_maddubs_epi16(_mm512_abs_epi8(x), sw);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
  }
  static A dot_u4(A acc, I u, I x) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, x), _mm512_set1_epi16(1)));
  }
  static A sub_lane0(A acc, int32_t v) { return _mm512_sub_epi32(acc, _mm512_zextsi128_si512(_mm_cvtsi32_si128(v))); }
  static int32_t hsum(A acc) { return _mm512_reduce_add_epi32(acc); }
  static F fma_cvt(F f, A acc, float s) { return _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(s), f); }
  // The 16 values s·(j - 8) in one register; a nibble selects its lane.
  using T = __m512;
  static T u4_table(float s) {
    return _mm512_mul_ps(_mm512_set1_ps(s), _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7));
  }
  static void u4_to_f(const uint8_t* p, const T& t, F* out) {
    const __m256i b = _mm256_loadu_si256((const __m256i*)p), m = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(b, m), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
    out[0] = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(lo)), t);
    out[1] = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(lo, 1)), t);
    out[2] = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(hi)), t);
    out[3] = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(hi, 1)), t);
  }
  static F fload(const float* p) { return _mm512_loadu_ps(p); }
  static void fstore(float* p, F f) { _mm512_storeu_ps(p, f); }
  static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fset1(float s) { return _mm512_set1_ps(s); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsumf(F f) { return _mm512_reduce_add_ps(f); }
  // x · inv rounded to nearest even (MXCSR's default mode) after clamping to
  // ±127 in float (so that no value overflows the conversion).
  static bool quantize_row(const float* x, int64_t K, float inv, int8_t* q) {
    const __m512 vi = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    __mmask16 nan = 0;
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(m, x + k);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      const __m512 c = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, vi), lo), hi);
      _mm_mask_storeu_epi8(q + k, m, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(c)));
    }
    return nan != 0;
  }
};
#if !defined(NM_QLINEAR_VNNI)
struct O : Ops512 {};
#endif
#else
struct O {
  struct I { __m256i lo, hi; };
  using A = __m256i;
  using F = __m256;
  static constexpr int FW = 8;
  static constexpr int32_t kI8Offset = 0;
  static constexpr int kRowsI8 = 2, kInRowsI8 = 2, kRowsI4 = 2, kInRowsI4 = 2, kRowsF = 2, kInRowsF = 2;
  static void prefetch(const void* p) { _mm_prefetch((const char*)p, _MM_HINT_T1); }
  static A azero() { return _mm256_setzero_si256(); }
  static F fzero() { return _mm256_setzero_ps(); }
  static I load_i8(const int8_t* p) {
    return {_mm256_loadu_si256((const __m256i*)p), _mm256_loadu_si256((const __m256i*)(p + 32))};
  }
  static I load_u4(const uint8_t* p) {
    const __m256i b = _mm256_loadu_si256((const __m256i*)p), m = _mm256_set1_epi8(0x0f);
    return {_mm256_and_si256(b, m), _mm256_and_si256(_mm256_srli_epi16(b, 4), m)};
  }
  static void store_u4(const uint8_t* p, uint8_t* out) {
    const I u = load_u4(p);
    _mm256_storeu_si256((__m256i*)out, u.lo);
    _mm256_storeu_si256((__m256i*)(out + 32), u.hi);
  }
  static __m256i dot32(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x)),
                             _mm256_set1_epi16(1));
  }
  static A dot_i8(A acc, const I& w, const I& x) {
    return _mm256_add_epi32(acc, _mm256_add_epi32(dot32(w.lo, x.lo), dot32(w.hi, x.hi)));
  }
  static A dot_u4(A acc, const I& u, const I& x) {
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(u.lo, x.lo), _mm256_maddubs_epi16(u.hi, x.hi));
    // Two pairs summed in int16: at most 4·15·127 = 7620, no overflow.
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static A sub_lane0(A acc, int32_t v) { return _mm256_sub_epi32(acc, _mm256_zextsi128_si256(_mm_cvtsi32_si128(v))); }
  static int32_t hsum(A acc) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
  }
  static F fma_cvt(F f, A acc, float s) { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(s), f); }
  using T = __m256;  // the group scale, broadcast
  static T u4_table(float s) { return _mm256_set1_ps(s); }
  static void u4_to_f(const uint8_t* p, const T& s, F* out) {
    const I u = load_u4(p);
    const __m256i e8 = _mm256_set1_epi8(8);
    const __m256i lo = _mm256_sub_epi8(u.lo, e8), hi = _mm256_sub_epi8(u.hi, e8);
    const __m128i parts[4] = {_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1),
                              _mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1)};
    for (int j = 0; j < 4; ++j) {
      out[2 * j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[j])), s);
      out[2 * j + 1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(parts[j], 8))), s);
    }
  }
  static F fload(const float* p) { return _mm256_loadu_ps(p); }
  static void fstore(float* p, F f) { _mm256_storeu_ps(p, f); }
  static F fmul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fset1(float s) { return _mm256_set1_ps(s); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsumf(F f) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // As the AVX-512 version; the tail of fewer than 8 elements is scalar.
  static bool quantize_row(const float* x, int64_t K, float inv, int8_t* q) {
    const __m256 vi = _mm256_set1_ps(inv), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    int nan = 0;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m256 v = _mm256_loadu_ps(x + k);
      nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      const __m256i i = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, vi), lo), hi));
      const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
      _mm_storel_epi64((__m128i*)(q + k), _mm_packs_epi16(w, w));
    }
    for (; k < K; ++k) {
      const float v = x[k] * inv;
      nan |= v != v;
      const __m128 c = _mm_min_ss(_mm_max_ss(_mm_set_ss(v), _mm_set_ss(-127.0f)), _mm_set_ss(127.0f));
      q[k] = (int8_t)_mm_cvtss_si32(c);
    }
    return nan != 0;
  }
};
#endif

}  // namespace
}  // namespace NM_QLINEAR_NS
}  // namespace nm
