// CUDA selective_scan / selective_state_update (kernels.h); the math is
// cuda/selective_scan_math.cuh.
#include "kernels.h"
#include "launch_util.cuh"
#include "selective_scan_math.cuh"

namespace nm::cuda {

namespace {

// Thread per (batch, channel), channels fastest: each token's u / delta / z /
// out reads are coalesced and B / C are broadcast within a group. Small
// blocks: at batch 1 there are only `dim` threads to spread over the SMs.
constexpr int kScanThreads = 64;

template <int NMAX>
__global__ void __launch_bounds__(kScanThreads) selective_scan_kernel(const SelectiveScanArgs a) {
  const int64_t n = a.batch * a.dim;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    selective_scan_channel<NMAX>(a, i / a.dim, i % a.dim);
}

// Block of kUpdateThreads threads = kUpdateThreads / tpr consecutive rows of
// the flattened (batch, row) index, tpr lanes each (selective_scan_math.cuh);
// grid-strided over row blocks.
__global__ void __launch_bounds__(kUpdateThreads) selective_state_update_kernel(const SelectiveStateUpdateArgs a,
                                                                                  int tpr) {
  __shared__ float sh[kUpdateThreads];
  const int64_t R = a.nheads * a.headdim, total = a.batch * R, rpb = kUpdateThreads / tpr;
  const int t = threadIdx.x, lane = t % tpr;
  for (int64_t blk = blockIdx.x; blk * rpb < total; blk += gridDim.x) {
    const int64_t row = blk * rpb + t / tpr;
    sh[t] = row < total ? selective_state_update_partial(a, row / R, row % R, lane, tpr) : 0.0f;
    __syncthreads();
    for (int s = tpr / 2; s > 0; s >>= 1) {
      if (lane < s) sh[t] = sh[t] + sh[t + s];
      __syncthreads();
    }
    if (lane == 0 && row < total) selective_state_update_finish(a, row / R, row % R, sh[t]);
    __syncthreads();  // sh is reused by the next row block
  }
}

}  // namespace

cudaError_t selective_scan_cuda(const SelectiveScanArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const unsigned blocks = grid_for(a.batch * a.dim, kScanThreads);
  if (a.dstate == 16) selective_scan_kernel<16><<<blocks, kScanThreads, 0, stream>>>(a);
  else selective_scan_kernel<(int)kSelectiveScanMaxDstate><<<blocks, kScanThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t selective_state_update_cuda(const SelectiveStateUpdateArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int tpr = update_threads_per_row(a.dstate);
  selective_state_update_kernel<<<grid_for(a.batch * a.nheads * a.headdim * tpr, kUpdateThreads), kUpdateThreads, 0,
                                  stream>>>(a, tpr);
  return cudaGetLastError();
}

}  // namespace nm::cuda
