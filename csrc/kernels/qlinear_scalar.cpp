// qlinear for the portable level: plain loops (one int32 / float lane).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace nm::scalar {
namespace {

struct O {
  struct I { int8_t v[64]; };
  using A = int32_t;
  using F = float;
  static constexpr int FW = 1;
  static constexpr int32_t kI8Offset = 0;
  static constexpr int kRowsI8 = 4, kInRowsI8 = 4, kRowsI4 = 2, kInRowsI4 = 2, kRowsF = 2, kInRowsF = 2;

  static void prefetch(const void*) {}
  static A azero() { return 0; }
  static F fzero() { return 0.0f; }
  static I load_i8(const int8_t* p) { I r; std::memcpy(r.v, p, 64); return r; }
  static I load_u4(const uint8_t* p) {
    I r;
    for (int j = 0; j < 32; ++j) { r.v[j] = (int8_t)(p[j] & 0x0f); r.v[j + 32] = (int8_t)(p[j] >> 4); }
    return r;
  }
  static void store_u4(const uint8_t* p, uint8_t* out) { std::memcpy(out, load_u4(p).v, 64); }
  static A dot_i8(A acc, const I& w, const I& x) {
    for (int j = 0; j < 64; ++j) acc += (int32_t)w.v[j] * (int32_t)x.v[j];
    return acc;
  }
  static A dot_u4(A acc, const I& u, const I& x) { return dot_i8(acc, u, x); }
  static int32_t hsum(A acc) { return acc; }
  // Quads of int32 / float lanes (qlinear_impl.h's W4A8 group sums).
  struct Q { int32_t v[4]; };
  struct F4 { float v[4]; };
  static Q reduce4(A a0, A a1, A a2, A a3) { return {{a0, a1, a2, a3}}; }
  static Q qsetr(int32_t a, int32_t b, int32_t c, int32_t d) { return {{a, b, c, d}}; }
  static Q qsub(Q a, const Q& b) {
    for (int l = 0; l < 4; ++l) a.v[l] -= b.v[l];
    return a;
  }
  static F4 f4zero() { return {{0.0f, 0.0f, 0.0f, 0.0f}}; }
  static F4 f4setr(float a, float b, float c, float d) { return {{a, b, c, d}}; }
  static F4 f4_fma_cvt(F4 f, const Q& i, const F4& s) {
    for (int l = 0; l < 4; ++l) f.v[l] = std::fma((float)i.v[l], s.v[l], f.v[l]);
    return f;
  }
  static void f4store(float* p, const F4& f) { std::memcpy(p, f.v, sizeof f.v); }
  using T = float;
  static T u4_table(float s) { return s; }
  static void u4_to_f(const uint8_t* p, T s, F* out) {
    for (int j = 0; j < 32; ++j) { out[j] = s * (float)((p[j] & 0x0f) - 8); out[j + 32] = s * (float)((p[j] >> 4) - 8); }
  }
  static void fstore(float* p, F f) { *p = f; }
  static F fload(const float* p) { return *p; }
  static F fmul(F a, F b) { return a * b; }
  static F fset1(float s) { return s; }
  static F fmadd(F a, F b, F c) { return std::fma(a, b, c); }
  static float hsumf(F f) { return f; }
  // max |x[0..n)|, NaN when any x is NaN.
  static float absmax(const float* x, int64_t n) {
    float m = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      const float v = std::fabs(x[k]);
      if (v > m || v != v) m = v;
      if (m != m) break;
    }
    return m;
  }
  static bool quantize_row(const float* x, int64_t K, float inv, int8_t* q) {
    bool nan = false;
    for (int64_t k = 0; k < K; ++k) {
      const float v = std::nearbyint(x[k] * inv);
      nan |= v != v;
      q[k] = v != v ? 0 : (int8_t)std::fmin(127.0f, std::fmax(-127.0f, v));
    }
    return nan;
  }
};

}  // namespace
}  // namespace nm::scalar

#define NM_QLINEAR_NS scalar
#include "kernels/qlinear_impl.h"
