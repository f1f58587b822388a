// The CUDA causal conv1d kernels and their launches, for any activation I/O
// (cuda/conv1d_math.cuh): conv1d.cu runs them on float activations,
// ssm_q8.cu on int8 ones. Arguments are checked by the callers.
#pragma once
#include "conv1d_math.cuh"
#include "launch_util.cuh"
#include "pdl.cuh"

namespace nm::cuda {

namespace conv1d_detail {

constexpr int kThreads = 256;

// Thread per (token block, channel), channels fastest (coalesced rows of x /
// out).
template <class Io>
__global__ void __launch_bounds__(kThreads) conv_prefill_kernel(const CausalConv1dArgs a, const Io io, int64_t blocks) {
  const int64_t n = blocks * a.channels;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    conv_prefill_block(a, io, i / a.channels, i % a.channels);
}

// Thread per (sequence, channel, tap), taps fastest.
template <class Io>
__global__ void __launch_bounds__(kThreads) conv_final_state_kernel(const CausalConv1dArgs a, const Io io) {
  const int64_t taps = a.width - 1, n = a.nseq * a.channels * taps;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    conv_final_state_point(a, io, i / (a.channels * taps), (i / taps) % a.channels, i % taps);
}

// Thread per (row, channel), channels fastest.
template <class Io>
__global__ void __launch_bounds__(kThreads) conv_update_kernel(const CausalConv1dUpdateArgs a, const Io io) {
  const int64_t n = a.batch * a.channels;
  pdl_trigger();  // a programmatic GEMV may follow (cuda/pdl.cuh)
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    conv_update_point(a, io, i / a.channels, i % a.channels);
}

}  // namespace conv1d_detail

template <class Io>
cudaError_t launch_causal_conv1d(const CausalConv1dArgs& a, const Io& io, cudaStream_t stream) {
  constexpr int kThreads = conv1d_detail::kThreads;
  if (a.tokens > 0) {
    const int64_t blocks = (a.tokens + kConvTokensPerThread - 1) / kConvTokensPerThread;
    conv1d_detail::conv_prefill_kernel<<<grid_for(blocks * a.channels, kThreads), kThreads, 0, stream>>>(a, io, blocks);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  // The final state reads only x and the initial state, never out: the two
  // kernels are independent.
  if (a.final_state && a.width > 1)
    conv1d_detail::conv_final_state_kernel<<<grid_for(a.nseq * a.channels * (a.width - 1), kThreads), kThreads, 0,
                                             stream>>>(a, io);
  return cudaGetLastError();
}

template <class Io>
cudaError_t launch_causal_conv1d_update(const CausalConv1dUpdateArgs& a, const Io& io, cudaStream_t stream) {
  constexpr int kThreads = conv1d_detail::kThreads;
  conv1d_detail::conv_update_kernel<<<grid_for(a.batch * a.channels, kThreads), kThreads, 0, stream>>>(a, io);
  return cudaGetLastError();
}

}  // namespace nm::cuda
