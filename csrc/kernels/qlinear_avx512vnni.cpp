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

#define NM_QLINEAR_NS avx512vnni
#define NM_QLINEAR_512
#define NM_QLINEAR_VNNI
#include "kernels/qlinear_x86_ops.h"

namespace nm::avx512vnni {
namespace {

// acc + Σ_4 u·s per int32 lane (u unsigned, s signed bytes). Written as asm
// with acc tied in and out: GCC 12 copies every accumulator of a tile in and
// out of another register around each _mm512_dpbusd_epi32.
inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
#if defined(__GNUC__)
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, u, s);
#endif
}

// The avx512 level's ops with the dot products on vpdpbusd.
struct O : Ops512 {
  static constexpr int32_t kI8Offset = 128;
  static A dot_i8(A acc, I w, I x) { return dpbusd(acc, _mm512_xor_si512(w, _mm512_set1_epi8(-128)), x); }
  static A dot_u4(A acc, I u, I x) { return dpbusd(acc, u, x); }
  // Panels: the weights were packed as w + 128 (pack_i8's flip, or pflip_i8
  // on packed panels).
  using PX = __m512i;
  static PX pbcast_i8(const int8_t* p) { return _mm512_set1_epi32(load4(p)); }
  static PV pdot_i8(PV acc, PV w, PX x) { return dpbusd(acc, w, x); }
  static PV pdot_u4(PV acc, PV u, PV x) { return dpbusd(acc, u, x); }
  // Packed panels hold signed weights: offset here, once per vector.
  static PV pflip_i8(PV w) { return _mm512_xor_si512(w, _mm512_set1_epi8(-128)); }
  static PV pdot_u4x2(PV acc, PV u0, PV x0, PV u1, PV x1) { return dpbusd(dpbusd(acc, u0, x0), u1, x1); }
  // One dot product per weight vector and input row: at decode's few input
  // rows the weight stream, not the products, bounds a tile, so streaming
  // tiles are one packed panel wide (qlinear_packed.h packed_np).
  static constexpr bool kOneStreamTiles = true;
};

}  // namespace
}  // namespace nm::avx512vnni

#include "kernels/qlinear_impl.h"
#endif
