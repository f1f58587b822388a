// CUDA rms_norm / gated_rms_norm (kernels.h); the math is cuda/norm_math.cuh.
#include "kernels.h"
#include "launch_util.cuh"
#include "norm_math.cuh"

namespace nm::cuda {

namespace {

// Block per row; grid-strided over rows.
__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(const RmsNormArgs a) {
  __shared__ float sh[kNormThreads];
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    sh[threadIdx.x] = rms_norm_partial(a, r, threadIdx.x);
    const float scale = norm_scale(block_tree_sum(sh), a.dim, a.eps);
    rms_norm_store(a, r, threadIdx.x, scale);
  }
}

// Block per (row, group); grid-strided over row * groups + group.
__global__ void __launch_bounds__(kNormThreads) gated_rms_norm_kernel(const GatedRmsNormArgs a) {
  __shared__ float sh[kNormThreads];
  const int64_t groups = a.dim / a.group_size;
  for (int64_t i = blockIdx.x; i < a.rows * groups; i += gridDim.x) {
    const int64_t r = i / groups, g = i % groups;
    sh[threadIdx.x] = gated_rms_norm_partial(a, r, g, threadIdx.x);
    const float scale = norm_scale(block_tree_sum(sh), a.group_size, a.eps);
    gated_rms_norm_store(a, r, g, threadIdx.x, scale);
  }
}

}  // namespace

cudaError_t rms_norm_cuda(const RmsNormArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  rms_norm_kernel<<<grid_for(a.rows * kNormThreads, kNormThreads), kNormThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t gated_rms_norm_cuda(const GatedRmsNormArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int64_t blocks = a.rows * (a.dim / a.group_size);
  gated_rms_norm_kernel<<<grid_for(blocks * kNormThreads, kNormThreads), kNormThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace nm::cuda
