// Eight-lane VF on AVX2 + FMA + F16C.
#pragma once
#if !(defined(__x86_64__) || defined(_M_X64))
#include "kernels/simd/simd_scalar.h"
#else
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

namespace nm {
namespace NM_ISA {

struct VF {
  static constexpr int W = 8;
  __m256 v;
  static VF zero() { return VF{_mm256_setzero_ps()}; }
  static VF set1(float x) { return VF{_mm256_set1_ps(x)}; }
  static VF load(const float* p) { return VF{_mm256_loadu_ps(p)}; }
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // Whole vectors take plain loads and stores: vmaskmovps stores are
  // microcoded on AMD cores (and a load that overlaps one waits for it).
  static VF load_partial(const float* p, int n) {
    return VF{n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n))};
  }
  // p[lane * stride] for lane < n, 0 beyond (7 * stride must fit an int32).
  static VF gather_partial(const float* p, int stride, int n) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_set1_epi32(stride), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return VF{_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, idx, _mm256_castsi256_ps(tail_mask(n)), 4)};
  }
  static VF load_f16(const uint16_t* p) {
    return VF{_mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p))};
  }
  static VF load_bf16(const uint16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p));
    return VF{_mm256_castsi256_ps(_mm256_slli_epi32(w, 16))};
  }
  static VF load_f16_partial(const uint16_t* p, int n) {
    uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(tmp, p, (size_t)(n < 8 ? n : 8) * 2);
    return load_f16(tmp);
  }
  static VF load_bf16_partial(const uint16_t* p, int n) {
    uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(tmp, p, (size_t)(n < 8 ? n : 8) * 2);
    return load_bf16(tmp);
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_partial(float* p, int n) const {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(n), v);
  }
  // As binary16, rounded to nearest even (F16C).
  void store_f16(uint16_t* p) const { _mm_storeu_si128((__m128i*)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }
  void store_f16_partial(uint16_t* p, int n) const {
    uint16_t tmp[8];
    store_f16(tmp);
    memcpy(p, tmp, (size_t)(n < 8 ? n : 8) * 2);
  }
};

static inline VF operator+(VF a, VF b) { return VF{_mm256_add_ps(a.v, b.v)}; }
static inline VF operator-(VF a, VF b) { return VF{_mm256_sub_ps(a.v, b.v)}; }
static inline VF operator*(VF a, VF b) { return VF{_mm256_mul_ps(a.v, b.v)}; }
static inline VF fmadd(VF a, VF b, VF c) { return VF{_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline VF vmax(VF a, VF b) { return VF{_mm256_max_ps(a.v, b.v)}; }
static inline VF vmin(VF a, VF b) { return VF{_mm256_min_ps(a.v, b.v)}; }
static inline float reduce_sum(VF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// Lane i = reduce_sum(v[i]) for i < 8, bit for bit: the same pairing
// (j + j+4, then j + j+2, j + j+1), applied to 8 vectors at once.
static inline VF reduce_sum_rows(const VF* v) {
  __m256 s[4], u[2];
  for (int p = 0; p < 4; ++p)  // 128-bit lanes: rows 2p, 2p+1
    s[p] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * p].v, v[2 * p + 1].v, 0x20),
                         _mm256_permute2f128_ps(v[2 * p].v, v[2 * p + 1].v, 0x31));
  for (int q = 0; q < 2; ++q)  // 128-bit lane L: rows 4q+L, 4q+2+L (2 partial sums each)
    u[q] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(s[2 * q]), _mm256_castps_pd(s[2 * q + 1]))),
                         _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(s[2 * q]), _mm256_castps_pd(s[2 * q + 1]))));
  // lane 4L+i: row 2i+L
  const __m256 t = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], 0x88), _mm256_shuffle_ps(u[0], u[1], 0xdd));
  return VF{_mm256_permutevar8x32_ps(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))};
}
static inline VF vround(VF a) { return VF{_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline VF vpow2i(VF n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return VF{_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
}
// p * 2^n for integral n in [-127, 127] (vexp2; 2^-127 becomes 0).
static inline VF vmul_pow2(VF p, VF n) { return p * vpow2i(n); }
static inline VF vrcp_exact(VF a) { return VF{_mm256_div_ps(_mm256_set1_ps(1.0f), a.v)}; }
// int8 activations (ssm_q8.h): lanes [0, n) of q as floats, 0 beyond; and
// q = clamp(round half to even(v), ±127), NaN -> 0, into lanes [0, n) (the
// quantize pass's arithmetic: cvtps2dq rounds half to even in the default mode).
static inline VF vload_i8(const int8_t* q, int n) {
  __m128i b;
  if (n >= 8) {
    b = _mm_loadl_epi64((const __m128i*)q);
  } else {
    int8_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(t, q, (size_t)(n > 0 ? n : 0));
    b = _mm_loadl_epi64((const __m128i*)t);
  }
  return VF{_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))};
}
static inline void vstore_i8(int8_t* q, VF v, int n) {
  __m256 m = _mm256_and_ps(v.v, _mm256_cmp_ps(v.v, v.v, _CMP_ORD_Q));
  m = _mm256_min_ps(_mm256_max_ps(m, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
  const __m256i i = _mm256_cvtps_epi32(m);
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  const __m128i b = _mm_packs_epi16(w, w);
  if (n >= 8) {
    _mm_storel_epi64((__m128i*)q, b);
  } else if (n > 0) {
    int8_t t[16];
    _mm_storeu_si128((__m128i*)t, b);
    memcpy(q, t, (size_t)n);
  }
}
// Walsh-Hadamard transform across the 8 lanes, unnormalised: butterfly stages
// of lane stride 1, 2, 4, each lane pair (u, v) -> (u + v, u - v). Each stage
// is the partner lane plus or minus this lane (an exact fma by +-1), so the
// result is bit for bit that of the scalar butterflies.
static inline VF vfwht(VF a) {
  const __m256 s1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
  const __m256 s2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
  const __m256 s4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
  __m256 v = _mm256_fmadd_ps(a.v, s1, _mm256_permute_ps(a.v, 0xB1));  // partner lane i ^ 1
  v = _mm256_fmadd_ps(v, s2, _mm256_permute_ps(v, 0x4E));             // i ^ 2
  v = _mm256_fmadd_ps(v, s4, _mm256_permute2f128_ps(v, v, 0x01));     // i ^ 4
  return VF{v};
}
#include "kernels/simd/simd_exp_poly.h"

// Four-lane float64 VD (the samplers' softmax, kernels/sampling_impl.h).
struct VD {
  static constexpr int W = 4;
  __m256d v;
  static VD set1(double x) { return VD{_mm256_set1_pd(x)}; }
  static VD load(const double* p) { return VD{_mm256_loadu_pd(p)}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
};
static inline VD operator+(VD a, VD b) { return VD{_mm256_add_pd(a.v, b.v)}; }
static inline VD operator-(VD a, VD b) { return VD{_mm256_sub_pd(a.v, b.v)}; }
static inline VD operator*(VD a, VD b) { return VD{_mm256_mul_pd(a.v, b.v)}; }
static inline VD fmadd(VD a, VD b, VD c) { return VD{_mm256_fmadd_pd(a.v, b.v, c.v)}; }
static inline VD vmax(VD a, VD b) { return VD{_mm256_max_pd(a.v, b.v)}; }
static inline VD vmin(VD a, VD b) { return VD{_mm256_min_pd(a.v, b.v)}; }
static inline VD vfloor(VD a) { return VD{_mm256_floor_pd(a.v)}; }
// 2^n for integral n in [-1022, 1023]: n + 1.5·2^52 holds n in its low
// mantissa bits, so the integer difference of the two bit patterns is n.
static inline VD vpow2i(VD n) {
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);
  const __m256i k = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n.v, magic)), _mm256_castpd_si256(magic));
  return VD{_mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k, _mm256_set1_epi64x(1023)), 52))};
}
static inline double reduce_sum(VD a) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#include "kernels/simd/simd_exp_f64.h"

}  // namespace NM_ISA
}  // namespace nm
#endif
