// Sixteen-lane VF on AVX-512 F/BW/DQ/VL.
#pragma once
#if !(defined(__x86_64__) || defined(_M_X64))
#include "kernels/simd/simd_scalar.h"
#else
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

namespace nm {
namespace NM_ISA {

struct VF {
  static constexpr int W = 16;
  __m512 v;
  static VF zero() { return VF{_mm512_setzero_ps()}; }
  static VF set1(float x) { return VF{_mm512_set1_ps(x)}; }
  static VF load(const float* p) { return VF{_mm512_loadu_ps(p)}; }
  static __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1); }
  static VF load_partial(const float* p, int n) { return VF{_mm512_maskz_loadu_ps(tail_mask(n), p)}; }
  // p[lane * stride] for lane < n, 0 beyond (15 * stride must fit an int32).
  static VF gather_partial(const float* p, int stride, int n) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_set1_epi32(stride),
                                           _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return VF{_mm512_mask_i32gather_ps(_mm512_setzero_ps(), tail_mask(n), idx, p, 4)};
  }
  static VF load_f16(const uint16_t* p) {
    return VF{_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p))};
  }
  static VF load_f16_partial(const uint16_t* p, int n) {
    return VF{_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask(n), p))};
  }
  static VF load_bf16(const uint16_t* p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p));
    return VF{_mm512_castsi512_ps(_mm512_slli_epi32(w, 16))};
  }
  static VF load_bf16_partial(const uint16_t* p, int n) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(tail_mask(n), p));
    return VF{_mm512_castsi512_ps(_mm512_slli_epi32(w, 16))};
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_partial(float* p, int n) const { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  // As binary16, rounded to nearest even.
  void store_f16(uint16_t* p) const { _mm256_storeu_si256((__m256i*)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
  void store_f16_partial(uint16_t* p, int n) const {
    _mm256_mask_storeu_epi16(p, tail_mask(n), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
};

static inline VF operator+(VF a, VF b) { return VF{_mm512_add_ps(a.v, b.v)}; }
static inline VF operator-(VF a, VF b) { return VF{_mm512_sub_ps(a.v, b.v)}; }
static inline VF operator*(VF a, VF b) { return VF{_mm512_mul_ps(a.v, b.v)}; }
static inline VF fmadd(VF a, VF b, VF c) { return VF{_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline VF vmax(VF a, VF b) { return VF{_mm512_max_ps(a.v, b.v)}; }
static inline VF vmin(VF a, VF b) { return VF{_mm512_min_ps(a.v, b.v)}; }
static inline float reduce_sum(VF a) { return _mm512_reduce_add_ps(a.v); }
// (GCC 12 warns of the "undefined" pass-through inside the unmasked
// shuffle intrinsics once inlined here: a false positive)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// Lane i = reduce_sum(v[i]) for i < 16, bit for bit: the same pairing
// (j + j+8, then j + j+4, j + j+2, j + j+1), applied to 16 vectors at once
// (46 shuffles and adds instead of 16 separate sums).
static inline VF reduce_sum_rows(const VF* v) {
  __m512 s[8], u[4], w[2];
  for (int p = 0; p < 8; ++p)  // halves: rows 2p (low 8 lanes), 2p+1 (high)
    s[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p].v, v[2 * p + 1].v, 0xee),
                         _mm512_shuffle_f32x4(v[2 * p].v, v[2 * p + 1].v, 0x44));
  for (int q = 0; q < 4; ++q)  // 128-bit lanes: rows 4q .. 4q+3
    u[q] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], 0xdd),
                         _mm512_shuffle_f32x4(s[2 * q], s[2 * q + 1], 0x88));
  for (int r = 0; r < 2; ++r)  // 128-bit lane L: rows 8r+L, 8r+4+L (2 partial sums each)
    w[r] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u[2 * r]), _mm512_castps_pd(u[2 * r + 1]))),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u[2 * r]), _mm512_castps_pd(u[2 * r + 1]))));
  // lane 4L+i: row 4i+L
  const __m512 t = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xdd));
  return VF{_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), t)};
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
static inline VF vround(VF a) { return VF{_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline VF vpow2i(VF n) {
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
  return VF{_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
}
// p * 2^n for integral n (vexp2): vscalefps, one op.
static inline VF vmul_pow2(VF p, VF n) { return VF{_mm512_scalef_ps(p.v, n.v)}; }
static inline VF vrcp_exact(VF a) { return VF{_mm512_div_ps(_mm512_set1_ps(1.0f), a.v)}; }
// int8 activations (ssm_q8.h): lanes [0, n) of q as floats, 0 beyond; and
// q = clamp(round half to even(v), ±127), NaN -> 0, into lanes [0, n) (the
// quantize pass's arithmetic: vcvtps2dq rounds half to even in the default mode).
static inline VF vload_i8(const int8_t* q, int n) {
  const __m128i b = n >= 16 ? _mm_loadu_si128((const __m128i*)q) : _mm_maskz_loadu_epi8(VF::tail_mask(n), q);
  return VF{_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b))};
}
static inline void vstore_i8(int8_t* q, VF v, int n) {
  __m512 m = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v.v, v.v, _CMP_ORD_Q), v.v);
  m = _mm512_min_ps(_mm512_max_ps(m, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
  _mm_mask_storeu_epi8(q, VF::tail_mask(n), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(m)));
}
// Walsh-Hadamard transform across the 16 lanes, unnormalised: butterfly stages
// of lane stride 1, 2, 4, 8, each lane pair (u, v) -> (u + v, u - v). Each
// stage is the partner lane plus or minus this lane (an exact fma by +-1), so
// the result is bit for bit that of the scalar butterflies.
static inline VF vfwht(VF a) {
  const __m512 s1 = _mm512_setr_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
  const __m512 s2 = _mm512_setr_ps(1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1);
  const __m512 s4 = _mm512_setr_ps(1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1);
  const __m512 s8 = _mm512_setr_ps(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
  __m512 v = _mm512_fmadd_ps(a.v, s1, _mm512_permute_ps(a.v, 0xB1));  // partner lane i ^ 1
  v = _mm512_fmadd_ps(v, s2, _mm512_permute_ps(v, 0x4E));             // i ^ 2
  v = _mm512_fmadd_ps(v, s4, _mm512_shuffle_f32x4(v, v, 0xB1));       // i ^ 4 (128-bit lanes 1,0,3,2)
  v = _mm512_fmadd_ps(v, s8, _mm512_shuffle_f32x4(v, v, 0x4E));       // i ^ 8 (128-bit lanes 2,3,0,1)
  return VF{v};
}
#include "kernels/simd/simd_exp_poly.h"

// Eight-lane float64 VD (the samplers' softmax, kernels/sampling_impl.h).
struct VD {
  static constexpr int W = 8;
  __m512d v;
  static VD set1(double x) { return VD{_mm512_set1_pd(x)}; }
  static VD load(const double* p) { return VD{_mm512_loadu_pd(p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
};
static inline VD operator+(VD a, VD b) { return VD{_mm512_add_pd(a.v, b.v)}; }
static inline VD operator-(VD a, VD b) { return VD{_mm512_sub_pd(a.v, b.v)}; }
static inline VD operator*(VD a, VD b) { return VD{_mm512_mul_pd(a.v, b.v)}; }
static inline VD fmadd(VD a, VD b, VD c) { return VD{_mm512_fmadd_pd(a.v, b.v, c.v)}; }
static inline VD vmax(VD a, VD b) { return VD{_mm512_max_pd(a.v, b.v)}; }
static inline VD vmin(VD a, VD b) { return VD{_mm512_min_pd(a.v, b.v)}; }
static inline VD vfloor(VD a) { return VD{_mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
// 2^n for integral n in [-1022, 1023] (as the AVX2 form).
static inline VD vpow2i(VD n) {
  const __m512d magic = _mm512_set1_pd(6755399441055744.0);
  const __m512i k = _mm512_sub_epi64(_mm512_castpd_si512(_mm512_add_pd(n.v, magic)), _mm512_castpd_si512(magic));
  return VD{_mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(k, _mm512_set1_epi64(1023)), 52))};
}
// (Through memory: GCC 12 reports a false -Wuninitialized in the 512 -> 256
// bit extracts.)
static inline double reduce_sum(VD a) {
  alignas(64) double t[8];
  _mm512_store_pd(t, a.v);
  return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}
#include "kernels/simd/simd_exp_f64.h"

}  // namespace NM_ISA
}  // namespace nm
#endif
