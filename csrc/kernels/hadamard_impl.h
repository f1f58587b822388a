// Per-level bodies of the Hadamard kernels (see hadamard.h for the matrices
// and kernels/simd/README.md for how this file is compiled). Every level does
// the same float32 additions in the same order, so all levels agree bit for
// bit: the lane butterflies (vfwht) are exact re-orderings of the scalar ones.
#include "kernels/hadamard.h"

namespace nm {
namespace NM_ISA {

// ±1 matrices of order q + 1 by Paley's construction I (q a prime ≡ 3 mod 4):
// chi(a) = 0 for a ≡ 0, 1 for a non-zero square mod q, -1 otherwise;
// Jacobsthal Q[i][j] = chi(j - i mod q); C = [[0, 1ᵀ], [-1, Q]] (row 0 is
// 0 then q ones, column 0 is 0 then q minus ones); H = I + C. Evaluated at
// compile time; nothing is tabulated by hand.
struct SignTable {
  int8_t h[20][20];
};

static constexpr int paley_chi(int a, int q) {
  a %= q;
  if (a < 0) a += q;
  if (a == 0) return 0;
  for (int t = 1; t < q; ++t)
    if ((t * t) % q == a) return 1;
  return -1;
}

static constexpr SignTable paley(int q) {
  SignTable t{};
  for (int i = 0; i <= q; ++i)
    for (int j = 0; j <= q; ++j) {
      const int c = i == 0 ? (j == 0 ? 0 : 1) : j == 0 ? -1 : paley_chi(j - i, q);
      t.h[i][j] = (int8_t)(c + (i == j ? 1 : 0));
    }
  return t;
}

// H·Hᵀ = order·I (checked at compile time).
static constexpr bool is_hadamard(const SignTable& t, int order) {
  for (int i = 0; i < order; ++i)
    for (int j = 0; j < order; ++j) {
      int s = 0;
      for (int k = 0; k < order; ++k) s += t.h[i][k] * t.h[j][k];
      if (s != (i == j ? order : 0)) return false;
    }
  return true;
}

static constexpr SignTable kH12 = paley(11), kH20 = paley(19);
static_assert(is_hadamard(kH12, 12) && is_hadamard(kH20, 20), "Paley construction I");

// dst[0, p) = S_p·src[0, p), unnormalised (p a power of two; src may be dst).
// Butterfly stages of stride 1, 2, 4, …: strides below the vector width
// inside each vector (vfwht), the others across vectors two stages per pass.
static void fwht_block(const float* src, float* dst, int64_t p) {
  constexpr int W = VF::W;
  if (p < W) {
    for (int64_t i = 0; i < p; ++i) dst[i] = src[i];
    for (int64_t h = 1; h < p; h *= 2)
      for (int64_t i = 0; i < p; i += 2 * h)
        for (int64_t j = i; j < i + h; ++j) {
          const float u = dst[j], v = dst[j + h];
          dst[j] = u + v;
          dst[j + h] = u - v;
        }
    return;
  }
  for (int64_t j = 0; j < p; j += W) vfwht(VF::load(src + j)).store(dst + j);
  int64_t h = W;
  for (; 4 * h <= p; h *= 4)  // stages h and 2h
    for (int64_t i = 0; i < p; i += 4 * h)
      for (int64_t j = i; j < i + h; j += W) {
        const VF a = VF::load(dst + j), b = VF::load(dst + j + h);
        const VF c = VF::load(dst + j + 2 * h), d = VF::load(dst + j + 3 * h);
        const VF ab = a + b, amb = a - b, cd = c + d, cmd = c - d;
        (ab + cd).store(dst + j);
        (amb + cmd).store(dst + j + h);
        (ab - cd).store(dst + j + 2 * h);
        (amb - cmd).store(dst + j + 3 * h);
      }
  if (2 * h <= p)  // one stage left
    for (int64_t j = 0; j < h; j += W) {
      const VF a = VF::load(dst + j), b = VF::load(dst + j + h);
      (a + b).store(dst + j);
      (a - b).store(dst + j + h);
    }
}

// Blocks a < M of y (each p long): block a := scale·Σ_c H[a][c]·block c, with
// H = H_M (or H_Mᵀ when Tr), in place. Vectorised along the block; the signs
// are compile-time constants, so each term is one add or subtract.
template <int M, bool Tr, bool Full>
static inline void mix_columns(float* y, int64_t p, int64_t j, int w, VF vs) {
  constexpr const SignTable& H = M == 12 ? kH12 : kH20;
  VF v[M];
#pragma GCC unroll 20
  for (int c = 0; c < M; ++c) v[c] = Full ? VF::load(y + c * p + j) : VF::load_partial(y + c * p + j, w);
#pragma GCC unroll 20
  for (int a = 0; a < M; ++a) {
    VF acc = (Tr ? H.h[0][a] : H.h[a][0]) > 0 ? v[0] : VF::zero() - v[0];
#pragma GCC unroll 20
    for (int c = 1; c < M; ++c) acc = (Tr ? H.h[c][a] : H.h[a][c]) > 0 ? acc + v[c] : acc - v[c];
    acc = acc * vs;
    if (Full) acc.store(y + a * p + j);
    else acc.store_partial(y + a * p + j, w);
  }
}

template <int M, bool Tr>
static void mix_blocks(float* y, int64_t p, float scale) {
  const VF vs = VF::set1(scale);
  if (p < VF::W) {
    mix_columns<M, Tr, false>(y, p, 0, (int)p, vs);
    return;
  }
  for (int64_t j = 0; j < p; j += VF::W) mix_columns<M, Tr, true>(y, p, j, VF::W, vs);
}

// (y[j], y[half + j]) := scale·(u + v, u - v): the H_2 factor of H_40.
static void butterfly_halves(float* y, int64_t half, float scale) {
  const VF vs = VF::set1(scale);
  int64_t j = 0;
  for (; j + VF::W <= half; j += VF::W) {
    const VF u = VF::load(y + j), v = VF::load(y + half + j);
    ((u + v) * vs).store(y + j);
    ((u - v) * vs).store(y + half + j);
  }
  if (j < half) {
    const int w = (int)(half - j);
    const VF u = VF::load_partial(y + j, w), v = VF::load_partial(y + half + j, w);
    ((u + v) * vs).store_partial(y + j, w);
    ((u - v) * vs).store_partial(y + half + j, w);
  }
}

// dst = scale·H_n·src (or H_nᵀ); src may be dst.
static void transform_row(const float* src, float* dst, const HadamardShape& s, float scale) {
  const int64_t p = s.p;
  for (int a = 0; a < s.m; ++a) fwht_block(src + a * p, dst + a * p, p);
  if (s.m == 12) {
    if (s.transpose) mix_blocks<12, true>(dst, p, scale);
    else mix_blocks<12, false>(dst, p, scale);
  } else if (s.m == 40) {  // H_2 ⊗ H_20: H_20 on each half, then H_2 across the halves
    for (int half = 0; half < 2; ++half) {
      if (s.transpose) mix_blocks<20, true>(dst + half * 20 * p, p, 1.0f);
      else mix_blocks<20, false>(dst + half * 20 * p, p, 1.0f);
    }
    butterfly_halves(dst, 20 * p, scale);
  } else if (scale != 1.0f) {
    const VF vs = VF::set1(scale);
    int64_t j = 0;
    for (; j + VF::W <= p; j += VF::W) (VF::load(dst + j) * vs).store(dst + j);
    if (j < p) (VF::load_partial(dst + j, (int)(p - j)) * vs).store_partial(dst + j, (int)(p - j));
  }
}

// out = clamp(nearbyint(y·mul), -127, 127), NaN -> 0. y (scratch) is overwritten.
static inline VF quantize_vec(VF v, VF vm) {
  const VF zero = VF::zero();
  v = v * vm;
  // vmax / vmin return their second operand when the first is NaN (x86
  // max/min and the scalar ternaries alike): NaN -> 0 + 0, others unchanged.
  v = vmax(v, zero) + vmin(v, zero);
  return vround(vmin(vmax(v, VF::set1(-127.0f)), VF::set1(127.0f)));
}

static void quantize_row(float* y, int8_t* out, int64_t n, float mul) {
  const VF vm = VF::set1(mul);
  int64_t j = 0;
  for (; j + VF::W <= n; j += VF::W) quantize_vec(VF::load(y + j), vm).store(y + j);
  if (j < n) quantize_vec(VF::load_partial(y + j, (int)(n - j)), vm).store_partial(y + j, (int)(n - j));
  for (j = 0; j < n; ++j) out[j] = (int8_t)(int32_t)y[j];  // integral, in [-127, 127]
}

void hadamard_rows(const HadamardArgs& a, const HadamardShape& s, float scale, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) transform_row(a.x + r * a.x_stride, a.out + r * a.out_stride, s, scale);
}

// fold = inv_scale / sqrt(n) (float32); scratch holds n floats.
void hadamard_quantize_rows(const HadamardQuantArgs& a, const HadamardShape& s, float fold, float* scratch,
                            int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    // The factor goes where the transform scales anyway (the mix), or into
    // the quantization pass when there is no mix.
    transform_row(a.x + r * a.x_stride, scratch, s, s.m == 1 ? 1.0f : fold);
    quantize_row(scratch, a.out + r * a.out_stride, a.n, s.m == 1 ? fold : 1.0f);
  }
}

}  // namespace NM_ISA
}  // namespace nm
