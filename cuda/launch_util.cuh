// Launch helpers of the CUDA kernels (device side only).
#pragma once
#include <cuda_runtime.h>

#include "kernels_validate.h"

namespace nm::cuda {

// cudaSuccess / error for a Check that is not kValid.
inline cudaError_t check_status(Check c) {
  switch (c) {
    case Check::kInvalid: return cudaErrorInvalidValue;
    case Check::kUnsupported: return cudaErrorNotSupported;
    default: return cudaSuccess;
  }
}

// Blocks for `n` threads of grid-stride loops: enough to fill any current
// device (gridDim.x may go to 2^31 - 1, but loops keep the count modest).
inline unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  const int64_t cap = 65535LL * 16;
  return (unsigned)(b < 1 ? 1 : (b > cap ? cap : b));
}

// `blocks`, at most `per_sm` per multiprocessor of the current device (for
// kernels whose every block first stages the same inputs, then loops over
// rows); `blocks` when the device cannot be asked.
inline unsigned blocks_per_sm_cap(unsigned blocks, unsigned per_sm) {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      sms <= 0)
    return blocks;
  const unsigned cap = (unsigned)sms * per_sm;
  return blocks < cap ? blocks : cap;
}

// gridDim.y is at most 65535: calls launch(grid, base) for the row blocks
// [base, base + 65535) of `rows`, `cols` column blocks each, until an error.
constexpr int64_t kMaxGridRows = 65535;
template <class Launch>
cudaError_t for_grid_rows(int64_t cols, int64_t rows, Launch launch) {
  if (cols > 0x7fffffff) return cudaErrorInvalidValue;
  for (int64_t base = 0; base < rows; base += kMaxGridRows) {
    const dim3 grid((unsigned)cols, (unsigned)(rows - base < kMaxGridRows ? rows - base : kMaxGridRows));
    const cudaError_t e = launch(grid, base);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// cudaSuccess when the current device has compute capability 8.0 or newer
// (mma.sync for bf16 / f16 / int8, cp.async), cudaErrorNotSupported below.
inline cudaError_t require_sm80() {
  int dev = 0, major = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e != cudaSuccess) return e;
  return major >= 8 ? cudaSuccess : cudaErrorNotSupported;
}

// The sum of the block's kNormThreads-style partials in the fixed tree order
// (stride blockDim/2, /4, ..., 1); `sh` holds one partial per thread on entry.
// blockDim.x must be a power of two. Returns the sum to every thread.
__device__ __forceinline__ float block_tree_sum(float* sh) {
  const int t = threadIdx.x;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] = sh[t] + sh[t + s];
    __syncthreads();
  }
  const float v = sh[0];
  __syncthreads();  // sh may be reused
  return v;
}

}  // namespace nm::cuda
