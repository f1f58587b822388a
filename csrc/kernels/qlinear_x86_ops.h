// The integer ops of qlinear_impl.h for x86 levels (AVX2 and AVX-512 without
// VNNI): products of signed int8 through vpmaddubsw (unsigned x signed bytes,
// pairwise into int16) then vpmaddwd with ones (pairs into int32).
//   I8 x I8: |x| times w with x's sign moved onto it; |x|, |w| <= 127, so a
//            pair sums to at most 2·127·127 = 32258 < 2^15: no saturation.
//   U4 x I8: nibble (0..15) times x: a pair is at most 2·15·127.
// The panel ops (qlinear_panel.h) work on vectors of 4 consecutive k of
// kPR = 16 (AVX-512) or 8 (AVX2) weight rows, against 4 input bytes
// broadcast to every row.
// Included by qlinear_avx2.cpp and qlinear_avx512.cpp with their flags; the
// avx512vnni unit (qlinear_avx512vnni.cpp) derives from the 512-bit ops and
// replaces the dot products.
#pragma once
#include <immintrin.h>

// These levels take the panel path (qlinear_panel.h) for several input rows.
#define NM_QLINEAR_PANELS 1

#include <cstdint>
#include <cstring>
#include <limits>

namespace nm {
namespace NM_QLINEAR_NS {
namespace {

// Ops shared by both widths: quads of int32 / float32 lanes (the W4A8 row
// tiles' exact group sums and their float accumulation), and the tiles'
// prefetch hints.
struct OpsQuad {
  // The hints as asm: GCC 12 at -O3 dropped _mm_prefetch from some tiles'
  // loops (at AVX2 the one-row W4A8, Q8_0 and Q4_0 panel tiles, found in
  // their disassembly; bench/NOTES.md). The address goes in a register: a
  // memory operand made GCC store a tile's accumulators to the stack before
  // each prefetch. prefetch_l1: into L1; prefetch_nta: into L1, marked for
  // early eviction (not kept in the outer caches).
#if defined(__GNUC__)
  static void prefetch_l1(const void* p) { __asm__ volatile("prefetcht0 (%0)" : : "r"(p)); }
  static void prefetch_nta(const void* p) { __asm__ volatile("prefetchnta (%0)" : : "r"(p)); }
#else
  static void prefetch_l1(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_nta(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_NTA); }
#endif
  using Q = __m128i;
  using F4 = __m128;
  static Q qsetr(int32_t a, int32_t b, int32_t c, int32_t d) { return _mm_setr_epi32(a, b, c, d); }
  static Q qsub(Q a, Q b) { return _mm_sub_epi32(a, b); }
  static F4 f4zero() { return _mm_setzero_ps(); }
  static F4 f4setr(float a, float b, float c, float d) { return _mm_setr_ps(a, b, c, d); }
  static F4 f4_fma_cvt(F4 f, Q i, F4 s) { return _mm_fmadd_ps(_mm_cvtepi32_ps(i), s, f); }
  static void f4store(float* p, F4 f) { _mm_storeu_ps(p, f); }
  // Σ of each of a0..a3's 8 lanes into lanes 0..3 (exact: int32 adds).
  static Q reduce4_256(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    const __m256i t0 = _mm256_add_epi32(_mm256_unpacklo_epi32(a0, a1), _mm256_unpackhi_epi32(a0, a1));
    const __m256i t1 = _mm256_add_epi32(_mm256_unpacklo_epi32(a2, a3), _mm256_unpackhi_epi32(a2, a3));
    const __m256i u = _mm256_add_epi32(_mm256_unpacklo_epi64(t0, t1), _mm256_unpackhi_epi64(t0, t1));
    return _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
  }
  static int32_t load4(const int8_t* p) { int32_t v; std::memcpy(&v, p, 4); return v; }
};

// Both widths read W4A16 weights in lane order (L, lanes_to_f).
#define NM_QLINEAR_U4_LANES 1

#if defined(NM_QLINEAR_512)
struct Ops512 : OpsQuad {
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
  static int32_t hsum(A acc) { return _mm512_reduce_add_epi32(acc); }
  // The exact sums of four accumulators' lanes, one per int32 lane.
  static Q reduce4(A a0, A a1, A a2, A a3) {
    return reduce4_256(half_sum(a0), half_sum(a1), half_sum(a2), half_sum(a3));
  }
  static __m256i half_sum(A a) { return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1)); }
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
  // W4A16 in lane order (qlinear_impl.h, tile_w4a16_lanes): a group of 128
  // nibbles (64 bytes) as 16 int32 lanes of 8 nibbles each. vpermps reads
  // only the low 4 bits of each index, so a lane shifted right by 4·p looks
  // up its p-th nibble as it is: no mask, no widening to one lane per nibble.
  using L = __m512i;
  using LT = T;
  static LT u4_lane_table(float s) { return u4_table(s); }
  // Weights as s·(j - 8) straight from the table (AVX2 factors s out: its O below).
  static constexpr bool kLanesFactored = false;
  // Weight rows per tile at one input row; rows x input rows per tile at more;
  // rows per tile in passes of 8 input rows (each weight widened once for 8).
  static constexpr int kLanesRowsM1 = 8, kLanesRows = 4, kLanesInRows = 4, kLanesRows8 = 2;
  // The group at p; `half`: only its first chunk exists (32 bytes; lanes
  // 8..15 read as 0, whose inputs are 0 in lane order).
  static L load_lanes(const uint8_t* p, bool half) {
    return half ? _mm512_maskz_loadu_epi32(0x00ff, p) : _mm512_loadu_si512((const void*)p);
  }
  // (p is a constant once the callers' loops over p are unrolled; the 16
  // lanes are one vector: h is always 0)
  static F lanes_to_f(L v, const LT& t, int p, int /*h*/) {
    return _mm512_permutexvar_ps(p == 0 ? v : _mm512_srli_epi32(v, (unsigned)(4 * p)), t);
  }
  static F fload(const float* p) { return _mm512_loadu_ps(p); }
  static void fstore(float* p, F f) { _mm512_storeu_ps(p, f); }
  static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fset1(float s) { return _mm512_set1_ps(s); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static float hsumf(F f) { return _mm512_reduce_add_ps(f); }
  // Panels (qlinear_panel.h): 16 rows; input rows x panels per micro-tile.
  static constexpr int kPR = 16;
  static constexpr int kPanelMBI8 = 8, kPanelNPI8 = 2, kPanelMBI4 = 4, kPanelNPI4 = 2;
  // Whether streaming tiles of several input rows are one packed panel wide
  // (qlinear_packed.h packed_np): where a product costs one instruction (VNNI).
  static constexpr bool kOneStreamTiles = false;
  using PV = __m512i;
  static PV pzero() { return _mm512_setzero_si512(); }
  static PV pload(const uint8_t* p) { return _mm512_load_si512((const void*)p); }
  static PV pset1(int32_t v) { return _mm512_set1_epi32(v); }
  static PV psub(PV a, PV b) { return _mm512_sub_epi32(a, b); }
  static F pcvt(PV v) { return _mm512_cvtepi32_ps(v); }
  static F fadd(F a, F b) { return _mm512_add_ps(a, b); }
  static void fstore_n(float* p, F f, int n) {
    if (n >= 16) _mm512_storeu_ps(p, f);
    else _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), f);
  }
  // 4 input bytes on every row. W8A8 keeps |x| and x's sign: vpmaddubsw
  // takes |x| as its unsigned operand and w with x's sign as the signed one.
  struct PX { __m512i ax; __mmask64 neg; };
  static PX pbcast_i8(const int8_t* p) {
    const __m512i x = _mm512_set1_epi32(load4(p));
    return {_mm512_abs_epi8(x), _mm512_movepi8_mask(x)};
  }
  static PV pdot_i8(PV acc, PV w, const PX& x) {
    const __m512i sw = _mm512_mask_sub_epi8(w, x.neg, _mm512_setzero_si512(), w);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(x.ax, sw), _mm512_set1_epi16(1)));
  }
  static PV pbcast_u4(const int8_t* p) { return _mm512_set1_epi32(load4(p)); }
  static PV pdot_u4(PV acc, PV u, PV x) { return dot_u4(acc, u, x); }
  // Packed panels (qlinear_packed.h): signed weights as pdot_i8 takes them
  // (here: as they are); the low / high nibbles of a vector of I4 bytes.
  static PV ploadu(const uint8_t* p) { return _mm512_loadu_si512((const void*)p); }
  // acc + u0·x0 + u1·x1 (nibbles): the two byte-pair sums added in int16
  // (at most 4·15·127 = 7620), then one widening to int32.
  static PV pdot_u4x2(PV acc, PV u0, PV x0, PV u1, PV x1) {
    const __m512i p = _mm512_add_epi16(_mm512_maddubs_epi16(u0, x0), _mm512_maddubs_epi16(u1, x1));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
  }
  static PV pflip_i8(PV w) { return w; }
  // Q8_0 / Q4_0 panels: the 16 rows' fp16 scales at p as floats.
  static F pscale_f16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  // W8A8 in int16 (qlinear_wide.h; the level without VNNI): as the AVX2 ops,
  // with 16-row panel vectors: lo holds rows 0..7, hi rows 8..15.
  static constexpr int kWideMB = 6, kWideNP = 1;
  static void pwiden(const uint8_t* p, PV& lo, PV& hi) {
    lo = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)p));
    hi = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(p + 32)));
  }
  static PV pbcast_i16(const int16_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
  }
  static PV pmadd_i16(PV acc, PV w, PV x) {
#if defined(__GNUC__)
    __m512i t;  // (asm: as the AVX2 version)
    __asm__("vpmaddwd %2, %3, %1\n\tvpaddd %1, %0, %0" : "+v"(acc), "=&v"(t) : "v"(w), "v"(x));
    return acc;
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(w, x));
#endif
  }
  static PV pfold_pairs(PV lo, PV hi) {
    // lane i < 8: the pair sum of row i (lo lanes 2i, 2i + 1); lane 8 + i: of row 8 + i (hi)
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi), _mm512_permutex2var_epi32(lo, odd, hi));
  }
  static PV pnib_lo(PV v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0f)); }
  static PV pnib_hi(PV v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f)); }
  // 128-bit lane i: the 16 bytes at rows[a + 4i] + off.
  static __m512i lanes_of_rows(const uint8_t* const* rows, int a, int off) {
    // broadcast loads merged under masks: no shuffle uops
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)(rows[a] + off)));
    v = _mm512_mask_broadcast_i32x4(v, 0x00f0, _mm_loadu_si128((const __m128i*)(rows[a + 4] + off)));
    v = _mm512_mask_broadcast_i32x4(v, 0x0f00, _mm_loadu_si128((const __m128i*)(rows[a + 8] + off)));
    return _mm512_mask_broadcast_i32x4(v, 0xf000, _mm_loadu_si128((const __m128i*)(rows[a + 12] + off)));
  }
  // In each 128-bit lane, a 4x4 transpose of dwords: t[j].dword[a] = v[a].dword[j].
  // On lanes_of_rows(rows, a, off) for a = 0..3, t[j] is dword j at off of
  // rows 0..15 in order (lane i, dword a: row 4i + a).
  static void transpose4(const __m512i* v, __m512i* t) {
    const __m512i l01 = _mm512_unpacklo_epi32(v[0], v[1]), h01 = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i l23 = _mm512_unpacklo_epi32(v[2], v[3]), h23 = _mm512_unpackhi_epi32(v[2], v[3]);
    t[0] = _mm512_unpacklo_epi64(l01, l23);
    t[1] = _mm512_unpackhi_epi64(l01, l23);
    t[2] = _mm512_unpacklo_epi64(h01, h23);
    t[3] = _mm512_unpackhi_epi64(h01, h23);
  }
  // 64 k of 16 rows (rows[r]: 64 readable bytes) -> 16 panel vectors at out
  // (vector j: k 4j..4j+3 of every row); flip: xor 0x80 (w + 128, unsigned).
  static void pack_i8(const uint8_t* const* rows, uint8_t* out, bool flip) {
    for (int q = 0; q < 4; ++q) {
      __m512i v[4], t[4];
      for (int a = 0; a < 4; ++a) v[a] = lanes_of_rows(rows, a, 16 * q);
      transpose4(v, t);
      for (int j = 0; j < 4; ++j)
        _mm512_store_si512((void*)(out + (4 * q + j) * 64), flip ? _mm512_xor_si512(t[j], _mm512_set1_epi8(-128)) : t[j]);
    }
  }
  // One I4 chunk (32 bytes at rows[r]) of 16 rows -> its 16 panel vectors of
  // nibbles 0..15. Byte d of a chunk holds k = d (low nibble) and d + 32
  // (high), so packed dword j gives panel vectors j and j + 8.
  static void pack_u4(const uint8_t* const* rows, uint8_t* out) {
    const __m512i m = _mm512_set1_epi8(0x0f);
    for (int q = 0; q < 2; ++q) {
      __m512i v[4], t[4];
      for (int a = 0; a < 4; ++a) v[a] = lanes_of_rows(rows, a, 16 * q);
      transpose4(v, t);
      for (int j = 0; j < 4; ++j) {
        _mm512_store_si512((void*)(out + (4 * q + j) * 64), _mm512_and_si512(t[j], m));
        _mm512_store_si512((void*)(out + (4 * q + j + 8) * 64), _mm512_and_si512(_mm512_srli_epi16(t[j], 4), m));
      }
    }
  }
  // max |x[0..n)| for n a multiple of 16, NaN when any x is NaN.
  static float absmax(const float* x, int64_t n) {
    __m512 m = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (int64_t k = 0; k < n; k += 16) {
      const __m512 v = _mm512_loadu_ps(x + k);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      m = _mm512_max_ps(m, _mm512_abs_ps(v));
    }
    return nan ? std::numeric_limits<float>::quiet_NaN() : _mm512_reduce_max_ps(m);
  }
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
// W8A8 takes the int16 tiles (qlinear_wide.h) at prefill row counts.
#define NM_QLINEAR_WIDE 1
struct O : Ops512 {};
#endif
#else
// W8A8 takes the int16 tiles (qlinear_wide.h) at prefill row counts.
#define NM_QLINEAR_WIDE 1
struct O : OpsQuad {
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
  static Q reduce4(A a0, A a1, A a2, A a3) { return reduce4_256(a0, a1, a2, a3); }
  static int32_t hsum(A acc) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
  }
  using T = __m256;  // the group scale, broadcast
  static T u4_table(float s) { return _mm256_set1_ps(s); }
  // W4A16 in lane order (qlinear_impl.h, tile_w4a16_lanes): the group's 16
  // int32 lanes are two vectors of 8 (h = 0, 1). AVX2's vpermps selects
  // among 8 values, not 16, so nibble p of 8 lanes is shifted down, masked
  // and converted to the float j, and the scale is factored out of the
  // group: s · (Σ j·x - 8 Σ x) (kLanesFactored). Tiles for 16 registers:
  // 4 weight rows at one input row, 2 weight rows x 4 input rows at more
  // (measured best: bench/NOTES.md).
  static constexpr bool kLanesFactored = true;
  struct L { __m256i lo, hi; };
  using LT = float;
  static LT u4_lane_table(float s) { return s; }
  static constexpr int kLanesRowsM1 = 4, kLanesRows = 2, kLanesInRows = 4, kLanesRows8 = 0;  // no 8-row passes
  // The group at p; `half`: only its first chunk exists (lanes 8..15 read as
  // 0, whose inputs are 0 in lane order).
  static L load_lanes(const uint8_t* p, bool half) {
    return {_mm256_loadu_si256((const __m256i*)p),
            half ? _mm256_setzero_si256() : _mm256_loadu_si256((const __m256i*)(p + 32))};
  }
  // Nibble p of the lanes of half h as floats j = 0..15 (exact).
  static F lanes_to_f(const L& v, const LT&, int p, int h) {
    const __m256i x = h ? v.hi : v.lo;
    const __m256i j = p == 7 ? _mm256_srli_epi32(x, 28)
                             : _mm256_and_si256(p == 0 ? x : _mm256_srli_epi32(x, 4 * p), _mm256_set1_epi32(15));
    return _mm256_cvtepi32_ps(j);
  }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
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
  // Panels (qlinear_panel.h): 8 rows; input rows x panels per micro-tile.
  static constexpr int kPR = 8;
  static constexpr int kPanelMBI8 = 4, kPanelNPI8 = 2, kPanelMBI4 = 4, kPanelNPI4 = 1;
  static constexpr bool kOneStreamTiles = false;  // (see Ops512)
  using PV = __m256i;
  static PV pzero() { return _mm256_setzero_si256(); }
  static PV pload(const uint8_t* p) { return _mm256_load_si256((const __m256i*)p); }
  static PV pset1(int32_t v) { return _mm256_set1_epi32(v); }
  static PV psub(PV a, PV b) { return _mm256_sub_epi32(a, b); }
  static F pcvt(PV v) { return _mm256_cvtepi32_ps(v); }
  static F fadd(F a, F b) { return _mm256_add_ps(a, b); }
  static void fstore_n(float* p, F f, int n) {
    if (n >= 8) _mm256_storeu_ps(p, f);
    else _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), f);
  }
  // 4 input bytes on every row; W8A8 keeps |x| (vpmaddubsw's unsigned
  // operand) and x, whose sign vpsignb moves onto w.
  struct PX { __m256i ax, x; };
  static PX pbcast_i8(const int8_t* p) {
    const __m256i x = _mm256_set1_epi32(load4(p));
    return {_mm256_abs_epi8(x), x};
  }
  static PV pdot_i8(PV acc, PV w, const PX& x) {
    const __m256i p16 = _mm256_maddubs_epi16(x.ax, _mm256_sign_epi8(w, x.x));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
  static PV pbcast_u4(const int8_t* p) { return _mm256_set1_epi32(load4(p)); }
  static PV pdot_u4(PV acc, PV u, PV x) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
  }
  // Packed panels (as Ops512).
  static PV ploadu(const uint8_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
  // As Ops512::pdot_u4x2.
  static PV pdot_u4x2(PV acc, PV u0, PV x0, PV u1, PV x1) {
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(u0, x0), _mm256_maddubs_epi16(u1, x1));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static PV pflip_i8(PV w) { return w; }
  // Q8_0 / Q4_0 panels: the 8 rows' fp16 scales at p as floats.
  static F pscale_f16(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
  static PV pnib_lo(PV v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0f)); }
  static PV pnib_hi(PV v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)); }
  // W8A8 in int16 (qlinear_wide.h): the panel vector at p (8 rows x 4 k)
  // widened to rows 0..3 (lo) and 4..7 (hi), 16 lanes each; 4 input values
  // on every row; acc + the products summed in pairs of k (vpmaddwd: int32
  // lanes (row, k pair)); lo and hi's pairs summed into 8 lanes in row order.
  static constexpr int kWideMB = 6, kWideNP = 1;
  static void pwiden(const uint8_t* p, PV& lo, PV& hi) {
    lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)p));
    hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(p + 16)));
  }
  static PV pbcast_i16(const int16_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
  }
  static PV pmadd_i16(PV acc, PV w, PV x) {
#if defined(__GNUC__)
    // asm with acc tied in and out: GCC otherwise copies every accumulator
    // of the tile to another register (and one to the stack) per k step.
    __m256i t;
    __asm__("vpmaddwd %2, %3, %1\n\tvpaddd %1, %0, %0" : "+x"(acc), "=&x"(t) : "x"(w), "x"(x));
    return acc;
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(w, x));
#endif
  }
  static PV pfold_pairs(PV lo, PV hi) {
    // hadd: lane halves [r0 r1 r4 r5 | r2 r3 r6 r7]; the 64-bit swap puts them in order
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xd8);
  }
  // 128-bit lane i: the 16 bytes at rows[a + 4i] + off.
  static __m256i lanes_of_rows(const uint8_t* const* rows, int a, int off) {
    // two broadcast loads and a blend: no shuffle uops
    return _mm256_blend_epi32(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(rows[a] + off))),
                              _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(rows[a + 4] + off))), 0xf0);
  }
  // In each 128-bit lane, a 4x4 transpose of dwords (see the AVX-512 version):
  // t[j] is dword j at off of rows 0..7 in order.
  static void transpose4(const __m256i* v, __m256i* t) {
    const __m256i l01 = _mm256_unpacklo_epi32(v[0], v[1]), h01 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i l23 = _mm256_unpacklo_epi32(v[2], v[3]), h23 = _mm256_unpackhi_epi32(v[2], v[3]);
    t[0] = _mm256_unpacklo_epi64(l01, l23);
    t[1] = _mm256_unpackhi_epi64(l01, l23);
    t[2] = _mm256_unpacklo_epi64(h01, h23);
    t[3] = _mm256_unpackhi_epi64(h01, h23);
  }
  // 64 k of 8 rows -> 16 panel vectors at out (vector j: k 4j..4j+3).
  static void pack_i8(const uint8_t* const* rows, uint8_t* out, bool flip) {
    for (int q = 0; q < 4; ++q) {
      __m256i v[4], t[4];
      for (int a = 0; a < 4; ++a) v[a] = lanes_of_rows(rows, a, 16 * q);
      transpose4(v, t);
      for (int j = 0; j < 4; ++j)
        _mm256_store_si256((__m256i*)(out + (4 * q + j) * 32), flip ? _mm256_xor_si256(t[j], _mm256_set1_epi8(-128)) : t[j]);
    }
  }
  // One I4 chunk of 8 rows -> its 16 panel vectors of nibbles (as Ops512).
  static void pack_u4(const uint8_t* const* rows, uint8_t* out) {
    const __m256i m = _mm256_set1_epi8(0x0f);
    for (int q = 0; q < 2; ++q) {
      __m256i v[4], t[4];
      for (int a = 0; a < 4; ++a) v[a] = lanes_of_rows(rows, a, 16 * q);
      transpose4(v, t);
      for (int j = 0; j < 4; ++j) {
        _mm256_store_si256((__m256i*)(out + (4 * q + j) * 32), _mm256_and_si256(t[j], m));
        _mm256_store_si256((__m256i*)(out + (4 * q + j + 8) * 32), _mm256_and_si256(_mm256_srli_epi16(t[j], 4), m));
      }
    }
  }
  // max |x[0..n)| for n a multiple of 8, NaN when any x is NaN.
  static float absmax(const float* x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    int nan = 0;
    for (int64_t k = 0; k < n; k += 8) {
      const __m256 v = _mm256_loadu_ps(x + k);
      nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return nan ? std::numeric_limits<float>::quiet_NaN() : _mm_cvtss_f32(h);
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
