// CUDA rms_norm / gated_rms_norm (kernels.h); the math is cuda/norm_math.cuh.
#include "kernels.h"
#include "launch_util.cuh"
#include "norm_math.cuh"
#include "pdl.cuh"

namespace nm::cuda {

namespace {

// Block per row; grid-strided over rows.
__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(const RmsNormArgs a) {
  __shared__ float sh[kNormThreads];
  pdl_trigger();  // a programmatic GEMV may follow (cuda/pdl.cuh)
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    sh[threadIdx.x] = rms_norm_partial(a, r, threadIdx.x, kNormThreads);
    const float scale = norm_scale(block_tree_sum(sh), a.dim, a.eps);
    rms_norm_store(a, r, threadIdx.x, kNormThreads, scale);
  }
}

// A few rows (rms_norm_threads: dim <= kNormRowThreads * kNormBatch): block
// per row, thread t's elements t, t + 1024, ... and their weights loaded
// once into registers, then step 1, the tree, and step 3 from the registers
// (norm_math.cuh's batch steps: the same values and operations).
__global__ void __launch_bounds__(kNormRowThreads) rms_norm_row_kernel(const RmsNormArgs a) {
  __shared__ float sh[kNormRowThreads];
  const int t = threadIdx.x;
  pdl_trigger();
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    float v[kNormBatch], w[kNormBatch];
    rms_norm_load_values(a, r, t, kNormRowThreads, v);
    rms_norm_load_weights(a, t, kNormRowThreads, w);
    sh[t] = rms_norm_accumulate(a, r, t, kNormRowThreads, v, 0.0f);
    const float scale = norm_scale(block_tree_sum(sh), a.dim, a.eps);
    rms_norm_write(a, r, t, kNormRowThreads, v, w, scale);
  }
}

// Block per (row, group); grid-strided over row * groups + group.
__global__ void __launch_bounds__(kNormThreads) gated_rms_norm_kernel(const GatedRmsNormArgs a) {
  __shared__ float sh[kNormThreads];
  const int64_t groups = a.dim / a.group_size;
  pdl_trigger();
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
  if (rms_norm_threads(a) == kNormRowThreads)
    rms_norm_row_kernel<<<(unsigned)(a.rows > 0 ? a.rows : 1), kNormRowThreads, 0, stream>>>(a);
  else
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
