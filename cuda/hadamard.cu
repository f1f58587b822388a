// CUDA hadamard_transform / hadamard_quantize (kernels.h); the math is
// cuda/hadamard_math.cuh.
#include <math.h>

#include "hadamard_math.cuh"
#include "kernels.h"
#include "launch_util.cuh"
#include "pdl.cuh"

namespace nm::cuda {

namespace {

constexpr int kThreads = 256;

// Block per row (grid-strided); the row in dynamic shared memory.
template <bool Quant>
__global__ void __launch_bounds__(kThreads)
    hadamard_kernel(const float* x, int64_t x_stride, int64_t rows, int64_t n, int m, int64_t p, bool tr,
                    float scale, float qmul, float* out, int8_t* qout, int64_t out_stride) {
  extern __shared__ float y[];
  const int64_t cols = m == 1 ? n : p;
  pdl_trigger();  // a programmatic GEMV may follow (cuda/pdl.cuh)
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[r * x_stride + i];
    __syncthreads();
    for (int64_t h = 1; h < p; h *= 2) {
      for (int64_t q = threadIdx.x; q < n / 2; q += blockDim.x) had_butterfly_pair(y, p, h, q);
      __syncthreads();
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) had_mix(y, m, p, j, tr, scale);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      if (Quant) qout[r * out_stride + i] = had_quantize(y[i], qmul);
      else out[r * out_stride + i] = y[i];
    }
    __syncthreads();  // y is reused by the next row
  }
}

unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16); }

}  // namespace

cudaError_t hadamard_transform_cuda(const HadamardArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  int m = 0;
  int64_t p = 0;
  had_decompose(a.n, &m, &p);
  const float scale = (float)(1.0 / sqrt((double)a.n));
  hadamard_kernel<false><<<row_blocks(a.rows), kThreads, (size_t)a.n * sizeof(float), stream>>>(
      a.x, a.x_stride, a.rows, a.n, m, p, a.transpose, scale, 1.0f, a.out, nullptr, a.out_stride);
  return cudaGetLastError();
}

cudaError_t hadamard_quantize_cuda(const HadamardQuantArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  int m = 0;
  int64_t p = 0;
  had_decompose(a.n, &m, &p);
  const float fold = (float)((double)a.inv_scale / sqrt((double)a.n));
  // The factor goes into the mix, or into the quantization when there is none.
  hadamard_kernel<true><<<row_blocks(a.rows), kThreads, (size_t)a.n * sizeof(float), stream>>>(
      a.x, a.x_stride, a.rows, a.n, m, p, false, m == 1 ? 1.0f : fold, m == 1 ? fold : 1.0f, nullptr, a.out,
      a.out_stride);
  return cudaGetLastError();
}

}  // namespace nm::cuda
