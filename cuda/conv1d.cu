// CUDA causal_conv1d / causal_conv1d_update (kernels.h); the math is
// cuda/conv1d_math.cuh.
#include "conv1d_math.cuh"
#include "kernels.h"
#include "launch_util.cuh"

namespace nm::cuda {

namespace {

constexpr int kThreads = 256;

// Thread per (token block, channel), channels fastest (coalesced rows of x /
// out).
__global__ void __launch_bounds__(kThreads) conv_prefill_kernel(const CausalConv1dArgs a, int64_t blocks) {
  const int64_t n = blocks * a.channels;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    conv_prefill_block(a, i / a.channels, i % a.channels);
}

// Thread per (sequence, channel, tap), taps fastest.
__global__ void __launch_bounds__(kThreads) conv_final_state_kernel(const CausalConv1dArgs a) {
  const int64_t taps = a.width - 1, n = a.nseq * a.channels * taps;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    conv_final_state_point(a, i / (a.channels * taps), (i / taps) % a.channels, i % taps);
}

// Thread per (row, channel), channels fastest.
__global__ void __launch_bounds__(kThreads) conv_update_kernel(const CausalConv1dUpdateArgs a) {
  const int64_t n = a.batch * a.channels;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    conv_update_point(a, i / a.channels, i % a.channels);
}

}  // namespace

cudaError_t causal_conv1d_cuda(const CausalConv1dArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  if (a.tokens > 0) {
    const int64_t blocks = (a.tokens + kConvTokensPerThread - 1) / kConvTokensPerThread;
    conv_prefill_kernel<<<grid_for(blocks * a.channels, kThreads), kThreads, 0, stream>>>(a, blocks);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  // The final state reads only x and the initial state, never out: the two
  // kernels are independent.
  if (a.final_state && a.width > 1)
    conv_final_state_kernel<<<grid_for(a.nseq * a.channels * (a.width - 1), kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t causal_conv1d_update_cuda(const CausalConv1dUpdateArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  conv_update_kernel<<<grid_for(a.batch * a.channels, kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace nm::cuda
