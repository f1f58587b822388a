// Per-thread math of the CUDA Hadamard kernels (cuda/hadamard.cu), shared
// with the host emulation (cuda/check). Semantics and the order of every
// float operation: kernels/hadamard.h and hadamard_impl.h (all CPU levels
// agree bit for bit, and so does this). A block per row, the row in shared
// memory:
//   1. the Walsh-Hadamard butterfly of each length-p block, stage by stage
//      (strides 1, 2, 4, ...; thread per pair: u + v, u - v);
//   2. thread per column j < p: the m-block mix of column j (H_12, or H_20 on
//      each half then H_2 across the halves for m = 40), the terms added in
//      the CPU's order, times the scale; for m = 1 the scale per element;
//   3. out (float) or the int8 quantization (NaN -> 0, clamp, nearest even).
#pragma once
#include "kernels/hadamard.h"
#include "kernels_validate.h"
#include "math_common.cuh"

namespace nm::cuda {

constexpr int64_t kHadamardMaxN = 8192;  // the row in shared memory

struct HadSigns {
  int8_t h[20][20];
};

constexpr int had_chi(int a, int q) {
  a %= q;
  if (a < 0) a += q;
  if (a == 0) return 0;
  for (int t = 1; t < q; ++t)
    if ((t * t) % q == a) return 1;
  return -1;
}

// Paley construction I (hadamard_impl.h): H = I + C.
constexpr HadSigns had_paley(int q) {
  HadSigns t{};
  for (int i = 0; i <= q; ++i)
    for (int j = 0; j <= q; ++j) {
      const int c = i == 0 ? (j == 0 ? 0 : 1) : j == 0 ? -1 : had_chi(j - i, q);
      t.h[i][j] = (int8_t)(c + (i == j ? 1 : 0));
    }
  return t;
}

#if defined(__CUDA_ARCH__)
static __constant__ HadSigns kHadH12 = had_paley(11), kHadH20 = had_paley(19);
#else
static constexpr HadSigns kHadH12 = had_paley(11), kHadH20 = had_paley(19);
#endif

// n = m·p (m in {1, 12, 40}, p a power of two); false when unsupported.
NM_HD bool had_decompose(int64_t n, int* m, int64_t* p) {
  if (n <= 0) return false;
  const int ms[3] = {1, 12, 40};
  for (int i = 0; i < 3; ++i) {
    if (n % ms[i] != 0) continue;
    const int64_t q = n / ms[i];
    if ((q & (q - 1)) == 0) {
      *m = ms[i];
      *p = q;
      return true;
    }
  }
  return false;
}

NM_HD bool had_size_supported(int64_t n) {
  int m = 0;
  int64_t p = 0;
  return had_decompose(n, &m, &p);
}

inline Check check_args(const HadamardArgs& a) {
  return check_hadamard(a.rows, a.n, a.x, a.x_stride, a.out, a.out_stride, kHadamardMaxN, had_size_supported);
}

inline Check check_args(const HadamardQuantArgs& a) {
  if (!(a.inv_scale > 0.0f) || !(a.inv_scale < INFINITY)) return Check::kInvalid;
  return check_hadamard(a.rows, a.n, a.x, a.x_stride, a.out, a.out_stride, kHadamardMaxN, had_size_supported);
}

// Stage h (1, 2, 4, ... < p) of the butterfly, pair q < n / 2 of the row y.
NM_HD void had_butterfly_pair(float* y, int64_t p, int64_t h, int64_t q) {
  const int64_t half = p / 2, a = q / half, r = q % half;
  const int64_t j = a * p + (r / h) * 2 * h + r % h;
  const float u = y[j], v = y[j + h];
  y[j] = u + v;
  y[j + h] = u - v;
}

// Blocks a < M of column j (blocks p apart from y): a := scale·Σ_c H[a][c]·c.
template <int M>
NM_HD void had_mix_column(float* y, int64_t p, int64_t j, bool tr, float scale) {
  const HadSigns& H = M == 12 ? kHadH12 : kHadH20;
  float v[M], o[M];
NM_UNROLL
  for (int c = 0; c < M; ++c) v[c] = y[c * p + j];
NM_UNROLL
  for (int a = 0; a < M; ++a) {
    float acc = (tr ? H.h[0][a] : H.h[a][0]) > 0 ? v[0] : 0.0f - v[0];
NM_UNROLL
    for (int c = 1; c < M; ++c) acc = (tr ? H.h[c][a] : H.h[a][c]) > 0 ? acc + v[c] : acc - v[c];
    o[a] = acc * scale;
  }
NM_UNROLL
  for (int a = 0; a < M; ++a) y[a * p + j] = o[a];
}

// Step 2 for column j (m = 12 or 40) or element j (m = 1, j < n).
NM_HD void had_mix(float* y, int m, int64_t p, int64_t j, bool tr, float scale) {
  if (m == 12) {
    had_mix_column<12>(y, p, j, tr, scale);
  } else if (m == 40) {
    had_mix_column<20>(y, p, j, tr, 1.0f);
    had_mix_column<20>(y + 20 * p, p, j, tr, 1.0f);
    for (int a = 0; a < 20; ++a) {
      const float u = y[a * p + j], v = y[(20 + a) * p + j];
      y[a * p + j] = (u + v) * scale;
      y[(20 + a) * p + j] = (u - v) * scale;
    }
  } else if (scale != 1.0f) {
    y[j] = y[j] * scale;
  }
}

// clamp(nearbyint(v·mul), -127, 127), NaN -> 0 (hadamard_impl.h quantize_vec).
NM_HD int8_t had_quantize(float v, float mul) {
  v = v * mul;
  if (v != v) v = 0.0f;
  v = fminf(fmaxf(v, -127.0f), 127.0f);
  return (int8_t)(int32_t)rintf(v);
}

}  // namespace nm::cuda
