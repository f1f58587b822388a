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
constexpr int kUpdateThreads = 128;

template <int NMAX>
__global__ void __launch_bounds__(kScanThreads) selective_scan_kernel(const SelectiveScanArgs a) {
  const int64_t n = a.batch * a.dim;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    selective_scan_channel<NMAX>(a, i / a.dim, i % a.dim);
}

// Thread per (batch, row), rows fastest.
__global__ void __launch_bounds__(kUpdateThreads) selective_state_update_kernel(const SelectiveStateUpdateArgs a) {
  const int64_t rows = a.nheads * a.headdim, n = a.batch * rows;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    selective_state_update_row(a, i / rows, i % rows);
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
  selective_state_update_kernel<<<grid_for(a.batch * a.nheads * a.headdim, kUpdateThreads), kUpdateThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace nm::cuda
