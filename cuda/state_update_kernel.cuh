// The CUDA selective_state_update kernel and its launch, for any operand
// reader (cuda/selective_scan_math.cuh): selective_scan.cu runs it on float
// operands, ssm_q8.cu on int8 ones. Arguments are checked by the callers.
#pragma once
#include "launch_util.cuh"
#include "pdl.cuh"
#include "selective_scan_math.cuh"

namespace nm::cuda {

namespace state_update_detail {

// Block of kUpdateThreads threads = kUpdateThreads / tpr consecutive rows of
// the flattened (batch, row) index, tpr lanes each (selective_scan_math.cuh);
// grid-strided over row blocks. A row's lanes are in one warp: their partial
// sums meet in a butterfly (offsets tpr/2 .. 1), which gives lane 0 the
// fixed tree sum tree_sum_host repeats.
template <class Ops>
__global__ void __launch_bounds__(kUpdateThreads) selective_state_update_kernel(const SelectiveStateUpdateArgs a,
                                                                                  const Ops o, int tpr) {
  const int64_t R = a.nheads * a.headdim, total = a.batch * R, rpb = kUpdateThreads / tpr;
  const int t = threadIdx.x, lane = t % tpr;
  pdl_trigger();  // a programmatic GEMV may follow (cuda/pdl.cuh)
  for (int64_t blk = blockIdx.x; blk * rpb < total; blk += gridDim.x) {
    const int64_t row = blk * rpb + t / tpr;
    float v = row < total ? selective_state_update_partial(a, o, row / R, row % R, lane, tpr) : 0.0f;
    for (int s = tpr / 2; s > 0; s >>= 1) v = v + __shfl_xor_sync(0xffffffffu, v, s);
    if (lane == 0 && row < total) selective_state_update_finish(a, o, row / R, row % R, v);
  }
}

}  // namespace state_update_detail

template <class Ops>
cudaError_t launch_selective_state_update(const SelectiveStateUpdateArgs& a, const Ops& o, cudaStream_t stream) {
  const int tpr = update_threads_per_row(a.dstate);
  state_update_detail::selective_state_update_kernel<<<grid_for(a.batch * a.nheads * a.headdim * tpr, kUpdateThreads),
                                                       kUpdateThreads, 0, stream>>>(a, o, tpr);
  return cudaGetLastError();
}

}  // namespace nm::cuda
