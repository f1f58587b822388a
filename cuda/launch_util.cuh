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
