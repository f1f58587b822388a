// Per-level bodies of the norm kernels (see norm.h for semantics and
// kernels/simd/README.md for how this file is compiled).
#include "kernels/norm.h"

namespace nm {
namespace NM_ISA {

static inline VF load_weight(const void* w, DType t, int64_t i, int n) {
  if (t == DType::F32) return VF::load_partial(static_cast<const float*>(w) + i, n);
  const uint16_t* p = static_cast<const uint16_t*>(w) + i;
  return t == DType::F16 ? VF::load_f16_partial(p, n) : VF::load_bf16_partial(p, n);
}

void rms_norm_rows(const RmsNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.dim;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * a.x_stride;
    const float* res = a.residual_in ? a.residual_in + r * a.residual_in_stride : nullptr;
    float* res_out = a.residual_out ? a.residual_out + r * a.residual_out_stride : nullptr;
    VF acc = VF::zero();
    for (int64_t i = 0; i < D; i += VF::W) {
      int n = (int)(D - i < VF::W ? D - i : VF::W);
      VF v = VF::load_partial(x + i, n);
      if (res) v = v + VF::load_partial(res + i, n);
      if (res_out) v.store_partial(res_out + i, n);
      acc = fmadd(v, v, acc);
    }
    const float scale = 1.0f / sqrtf(reduce_sum(acc) / (float)D + a.eps);
    const VF vs = VF::set1(scale);
    // Second pass reads r back from residual_out when it was written (it may
    // alias residual_in), else recomputes it.
    float* out = a.out + r * a.out_stride;
    for (int64_t i = 0; i < D; i += VF::W) {
      int n = (int)(D - i < VF::W ? D - i : VF::W);
      VF v;
      if (res_out) {
        v = VF::load_partial(res_out + i, n);
      } else {
        v = VF::load_partial(x + i, n);
        if (res) v = v + VF::load_partial(res + i, n);
      }
      (v * vs * load_weight(a.weight, a.weight_dtype, i, n)).store_partial(out + i, n);
    }
  }
}

void gated_rms_norm_rows(const GatedRmsNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t D = a.dim, G = a.group_size;
  for (int64_t r = r0; r < r1; ++r) {
    const float* y = a.y + r * a.y_stride;
    const float* z = a.z ? a.z + r * a.z_stride : nullptr;
    float* out = a.out + r * a.out_stride;
    for (int64_t g0 = 0; g0 < D; g0 += G) {
      // Pass 1: gated value into out, sum of squares.
      VF acc = VF::zero();
      for (int64_t i = g0; i < g0 + G; i += VF::W) {
        int n = (int)(g0 + G - i < VF::W ? g0 + G - i : VF::W);
        VF v = VF::load_partial(y + i, n);
        if (z) v = v * vsilu(VF::load_partial(z + i, n));
        v.store_partial(out + i, n);
        acc = fmadd(v, v, acc);
      }
      const VF vs = VF::set1(1.0f / sqrtf(reduce_sum(acc) / (float)G + a.eps));
      for (int64_t i = g0; i < g0 + G; i += VF::W) {
        int n = (int)(g0 + G - i < VF::W ? g0 + G - i : VF::W);
        (VF::load_partial(out + i, n) * vs * load_weight(a.weight, a.weight_dtype, i, n))
            .store_partial(out + i, n);
      }
    }
  }
}

}  // namespace NM_ISA
}  // namespace nm
