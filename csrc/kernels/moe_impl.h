// Per-level bodies of the MoE element-wise steps (moe.h for the semantics,
// kernels/simd/README.md for how this file is compiled): the SwiGLU between
// the two expert GEMMs and the slot-order combine.
#include "kernels/moe.h"

namespace nm {
namespace NM_ISA {

// h[r, i] = silu(gu[r, i]) · gu[r, up_off + i] for r < rows, i < I.
void moe_swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                     int64_t I) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gu + r * gu_stride;
    const float* u = g + up_off;
    float* o = h + r * h_stride;
    for (int64_t i = 0; i < I; i += VF::W) {
      const int n = (int)(I - i < VF::W ? I - i : VF::W);
      (vsilu(VF::load_partial(g + i, n)) * VF::load_partial(u + i, n)).store_partial(o + i, n);
    }
  }
}

// out[0:d] = ((ys[0] + ys[1]) + … + ys[k-1]) (+ shared), element-wise adds
// in slot order (the same float32 result on every level).
void moe_combine_row(const float* const* ys, int64_t k, const float* shared, float* out, int64_t d) {
  for (int64_t i = 0; i < d; i += VF::W) {
    const int n = (int)(d - i < VF::W ? d - i : VF::W);
    VF s = VF::load_partial(ys[0] + i, n);
    for (int64_t j = 1; j < k; ++j) s = s + VF::load_partial(ys[j] + i, n);
    if (shared) s = s + VF::load_partial(shared + i, n);
    s.store_partial(out + i, n);
  }
}

}  // namespace NM_ISA
}  // namespace nm
