// qlinear compiled for the avx512vnni level: vpdpbusd multiplies unsigned by
// signed bytes and sums each four into an int32 lane in one instruction.
//   I8 x I8: weights offset to w + 128 (0..255, exact; one xor per weight
//            vector, shared by every input row); Σ (w + 128)·x - 128·Σ x is
//            taken back with the input's row sum (kI8Offset).
//   U4 x I8: the nibble is already unsigned.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

// GCC 12 reports a false -Wuninitialized inside _mm512_reduce_add_ps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace nm::avx512vnni {
namespace {

struct O {
  using I = __m512i;
  using A = __m512i;
  using F = __m512;
  static constexpr int FW = 16;
  static constexpr int32_t kI8Offset = 128;
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
  static A dot_i8(A acc, I w, I x) { return _mm512_dpbusd_epi32(acc, _mm512_xor_si512(w, _mm512_set1_epi8(-128)), x); }
  static A dot_u4(A acc, I u, I x) { return _mm512_dpbusd_epi32(acc, u, x); }
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
  static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fset1(float s) { return _mm512_set1_ps(s); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsumf(F f) { return _mm512_reduce_add_ps(f); }
  // As the avx512 level's (qlinear_x86_ops.h).
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

}  // namespace
}  // namespace nm::avx512vnni

#define NM_QLINEAR_NS avx512vnni
#include "kernels/qlinear_impl.h"
#endif
