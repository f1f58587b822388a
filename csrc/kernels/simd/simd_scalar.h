// One-lane VF: the portable path. Uses libm's expf, so it is also the most
// accurate path.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

namespace nm {
namespace NM_ISA {

struct VF {
  static constexpr int W = 1;
  float v;
  static VF zero() { return VF{0.0f}; }
  static VF set1(float x) { return VF{x}; }
  static VF load(const float* p) { return VF{*p}; }
  static VF load_partial(const float* p, int n) { return VF{n > 0 ? *p : 0.0f}; }
  static VF load_f16(const uint16_t* p) { return VF{h2f(*p)}; }
  static VF load_f16_partial(const uint16_t* p, int n) { return VF{n > 0 ? h2f(*p) : 0.0f}; }
  static VF load_bf16(const uint16_t* p) { return VF{b2f(*p)}; }
  static VF load_bf16_partial(const uint16_t* p, int n) { return VF{n > 0 ? b2f(*p) : 0.0f}; }
  void store(float* p) const { *p = v; }
  void store_partial(float* p, int n) const { if (n > 0) *p = v; }

  static float b2f(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  static float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
      if (man == 0) {
        bits = sign;
      } else {
        int e = -1;
        do { man <<= 1; ++e; } while ((man & 0x400) == 0);
        bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
      }
    } else if (exp == 0x1f) {
      bits = sign | 0x7f800000u | (man << 13);
    } else {
      bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
};

static inline VF operator+(VF a, VF b) { return VF{a.v + b.v}; }
static inline VF operator-(VF a, VF b) { return VF{a.v - b.v}; }
static inline VF operator*(VF a, VF b) { return VF{a.v * b.v}; }
// Plain multiply-add: fmaf() is a slow libm call where the baseline has no FMA.
static inline VF fmadd(VF a, VF b, VF c) { return VF{a.v * b.v + c.v}; }
static inline VF vmax(VF a, VF b) { return VF{a.v > b.v ? a.v : b.v}; }
static inline VF vmin(VF a, VF b) { return VF{a.v < b.v ? a.v : b.v}; }
static inline float reduce_sum(VF a) { return a.v; }
static inline VF vexp(VF a) { return VF{expf(a.v)}; }
static inline VF vsilu(VF a) { return VF{a.v / (1.0f + expf(-a.v))}; }

}  // namespace NM_ISA
}  // namespace nm
