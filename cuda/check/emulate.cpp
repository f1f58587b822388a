#include "emulate.h"

#include "conv1d_math.cuh"
#include "kernels_validate.h"
#include "norm_math.cuh"
#include "selective_scan_math.cuh"

namespace nm::cuda::emulate {

namespace {

cudaError_t status(Check c) {
  return c == Check::kInvalid ? cudaErrorInvalidValue : c == Check::kUnsupported ? cudaErrorNotSupported : cudaSuccess;
}

}  // namespace

cudaError_t rms_norm(const RmsNormArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  float sh[kNormThreads];
  for (int64_t r = 0; r < a.rows; ++r) {  // block r
    for (int t = 0; t < kNormThreads; ++t) sh[t] = rms_norm_partial(a, r, t);
    const float scale = norm_scale(tree_sum_host(sh, kNormThreads), a.dim, a.eps);
    for (int t = 0; t < kNormThreads; ++t) rms_norm_store(a, r, t, scale);
  }
  return cudaSuccess;
}

cudaError_t gated_rms_norm(const GatedRmsNormArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  float sh[kNormThreads];
  const int64_t groups = a.dim / a.group_size;
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {  // block (r, g)
      for (int t = 0; t < kNormThreads; ++t) sh[t] = gated_rms_norm_partial(a, r, g, t);
      const float scale = norm_scale(tree_sum_host(sh, kNormThreads), a.group_size, a.eps);
      for (int t = 0; t < kNormThreads; ++t) gated_rms_norm_store(a, r, g, t, scale);
    }
  return cudaSuccess;
}

cudaError_t causal_conv1d(const CausalConv1dArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  // The two kernels write disjoint buffers from inputs neither writes: any order.
  for (int64_t t = 0; t < a.tokens; ++t)
    for (int64_t ch = 0; ch < a.channels; ++ch) conv_prefill_point(a, t, ch);
  if (a.final_state)
    for (int64_t s = 0; s < a.nseq; ++s)
      for (int64_t ch = 0; ch < a.channels; ++ch)
        for (int64_t j = 0; j < a.width - 1; ++j) conv_final_state_point(a, s, ch, j);
  return cudaSuccess;
}

cudaError_t causal_conv1d_update(const CausalConv1dUpdateArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  for (int64_t r = 0; r < a.batch; ++r)
    for (int64_t ch = 0; ch < a.channels; ++ch) conv_update_point(a, r, ch);
  return cudaSuccess;
}

cudaError_t selective_scan(const SelectiveScanArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t d = 0; d < a.dim; ++d) {
      if (a.dstate == 16) selective_scan_channel<16>(a, b, d);
      else selective_scan_channel<(int)kSelectiveScanMaxDstate>(a, b, d);
    }
  return cudaSuccess;
}

cudaError_t selective_state_update(const SelectiveStateUpdateArgs& a) {
  const Check c = check_args(a);
  if (c != Check::kValid) return status(c);
  // Rows are independent: each row's lanes, then its tree, then lane 0.
  const int tpr = update_threads_per_row(a.dstate);
  float sh[32];
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t r = 0; r < a.nheads * a.headdim; ++r) {
      for (int l = 0; l < tpr; ++l) sh[l] = selective_state_update_partial(a, b, r, l, tpr);
      selective_state_update_finish(a, b, r, tree_sum_host(sh, tpr));
    }
  return cudaSuccess;
}

}  // namespace nm::cuda::emulate
