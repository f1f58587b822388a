// CUDA embedding gather and elementwise kernels (kernels.h); the math is
// cuda/elementwise_math.cuh.
#include "elementwise_math.cuh"
#include "kernels.h"
#include "launch_util.cuh"

namespace nm::cuda {

namespace {

// Grid-strided over the n · dim outputs. A token outside [0, rows) (the
// caller checks them) writes zeros instead of reading past the table.
__global__ void __launch_bounds__(kElementwiseThreads) embedding_kernel(const EmbeddingArgs a, int64_t row_bytes) {
  const int64_t total = a.n * a.dim;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / a.dim, k = i % a.dim;
    const int32_t row = a.tokens[t];
    a.out[i] = row >= 0 && row < a.rows ? embedding_value(a, row_bytes, row, k) : 0.0f;
  }
}

__global__ void __launch_bounds__(kElementwiseThreads) scale_kernel(float* x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = x[i] * s;
}

__global__ void __launch_bounds__(kElementwiseThreads) add_kernel(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void __launch_bounds__(kElementwiseThreads) swiglu_kernel(const float* gu, int64_t gu_stride, int64_t up_off,
                                                                     float* h, int64_t h_stride, int64_t rows, int64_t I) {
  const int64_t total = rows * I;
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < total; j += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = j / I, i = j % I;
    h[r * h_stride + i] = swiglu_value(gu + r * gu_stride, up_off, i);
  }
}

unsigned blocks_for(int64_t n) { return grid_for(n, kElementwiseThreads); }

}  // namespace

cudaError_t embedding_cuda(const EmbeddingArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  embedding_kernel<<<blocks_for(a.n * a.dim), kElementwiseThreads, 0, stream>>>(a, dtype_row_bytes(a.dtype, a.dim));
  return cudaGetLastError();
}

cudaError_t scale_cuda(float* x, int64_t n, float s, cudaStream_t stream) {
  if (n < 0 || (n > 0 && !x)) return cudaErrorInvalidValue;
  if (n == 0 || s == 1.0f) return cudaSuccess;
  scale_kernel<<<blocks_for(n), kElementwiseThreads, 0, stream>>>(x, n, s);
  return cudaGetLastError();
}

cudaError_t add_cuda(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (!a || !b || !out))) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  add_kernel<<<blocks_for(n), kElementwiseThreads, 0, stream>>>(a, b, out, n);
  return cudaGetLastError();
}

cudaError_t swiglu_rows_cuda(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride,
                             int64_t rows, int64_t I, cudaStream_t stream) {
  if (rows < 0 || I < 0) return cudaErrorInvalidValue;
  if (rows == 0 || I == 0) return cudaSuccess;
  if (!gu || !h || gu_stride < 0 || h_stride < I || up_off < I) return cudaErrorInvalidValue;
  swiglu_kernel<<<blocks_for(rows * I), kElementwiseThreads, 0, stream>>>(gu, gu_stride, up_off, h, h_stride, rows, I);
  return cudaGetLastError();
}

}  // namespace nm::cuda
