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
    sh[threadIdx.x] = rms_norm_partial(a, r, threadIdx.x, kNormThreads);
    const float scale = norm_scale(block_tree_sum(sh), a.dim, a.eps);
    rms_norm_store(a, r, threadIdx.x, kNormThreads, scale);
  }
}

// A few rows (rms_norm_threads: dim <= kNormRowThreads * kNormBatch): block
// per row, thread t's elements t, t + 1024, ... and their weights loaded
// once into registers, then rms_norm_partial's chain, the tree, and
// rms_norm_store's products from the registers (the same values and
// operations: residual_out holds what was loaded).
__global__ void __launch_bounds__(kNormRowThreads) rms_norm_row_kernel(const RmsNormArgs a) {
  __shared__ float sh[kNormRowThreads];
  const int t = threadIdx.x;
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const float* x = a.x + r * a.x_stride;
    const float* res = a.residual_in ? a.residual_in + r * a.residual_in_stride : nullptr;
    float* res_out = a.residual_out ? a.residual_out + r * a.residual_out_stride : nullptr;
    float v[kNormBatch], w[kNormBatch];
#pragma unroll
    for (int u = 0; u < kNormBatch; ++u) {
      const int64_t i = t + (int64_t)u * kNormRowThreads;
      if (i < a.dim) {
        v[u] = x[i];
        if (res) v[u] = v[u] + res[i];
        w[u] = load_float(a.weight, a.weight_dtype, i);
      }
    }
    float acc = 0.0f;
#pragma unroll
    for (int u = 0; u < kNormBatch; ++u) {
      const int64_t i = t + (int64_t)u * kNormRowThreads;
      if (i >= a.dim) break;
      if (res_out) res_out[i] = v[u];
      acc = fmaf(v[u], v[u], acc);
    }
    sh[t] = acc;
    const float scale = norm_scale(block_tree_sum(sh), a.dim, a.eps);
    float* out = a.out + r * a.out_stride;
#pragma unroll
    for (int u = 0; u < kNormBatch; ++u) {
      const int64_t i = t + (int64_t)u * kNormRowThreads;
      if (i >= a.dim) break;
      out[i] = v[u] * scale * w[u];
    }
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
