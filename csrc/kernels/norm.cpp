#include "kernels/norm.h"

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void rms_norm_rows(const RmsNormArgs& a, int64_t r0, int64_t r1))
NM_DECLARE_ISA_FN(void gated_rms_norm_rows(const GatedRmsNormArgs& a, int64_t r0, int64_t r1))

void rms_norm(const RmsNormArgs& a) {
  // ~4 flops per element; below ~16k elements a thread wake-up costs more.
  int64_t grain = a.dim > 0 ? (16384 + a.dim - 1) / a.dim : 1;
  cpu::parallel_for(a.rows, grain, [&](int64_t r0, int64_t r1) { NM_ISA_CALL(rms_norm_rows, a, r0, r1); });
}

void gated_rms_norm(const GatedRmsNormArgs& a) {
  int64_t grain = a.dim > 0 ? (8192 + a.dim - 1) / a.dim : 1;
  cpu::parallel_for(a.rows, grain, [&](int64_t r0, int64_t r1) { NM_ISA_CALL(gated_rms_norm_rows, a, r0, r1); });
}

}  // namespace nm
