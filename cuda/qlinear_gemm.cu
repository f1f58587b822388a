// The quantized GEMM (cuda/qlinear_gemm.h): block tile 64 x 64 outputs, 256
// threads of 4 x 4 (rows ty + 16 i, columns tx + 16 j), k tiles of 128 (one
// W4A8 group) staged in shared memory as int8 words (inputs quantized on the
// way in, with a NaN flag per row) or, for W4A16, k tiles of 64 as floats
// (weights dequantized with their group scale).
#include <stdint.h>

#include "launch_util.cuh"
#include "qlinear_gemm.h"
#include "qlinear_math.cuh"

namespace nm::cuda {

namespace {

constexpr int kT = 64, kThreads = 256, kKI = 128, kWordsI = kKI / 4 + 1, kKF = 64, kLdF = kKF + 1;

// W8A8 (I4 = false) and W4A8 (I4 = true).
template <bool I4>
__global__ void __launch_bounds__(kThreads) qgemm_int8_kernel(const QLinearArgs a, float inv) {
  __shared__ uint32_t xs[kT][kWordsI];
  __shared__ uint32_t ws[kT][kWordsI];
  __shared__ int nan_row[kT];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (int64_t)blockIdx.y * kT, n0 = (int64_t)blockIdx.x * kT;
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  if (tid < kT) nan_row[tid] = 0;
  int32_t isum[4][4];
  float f[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) isum[i][j] = 0, f[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < a.K; k0 += kKI) {
    __syncthreads();  // the previous tile is consumed (and nan_row initialised)
    // 64 rows x 32 words of x and of W: 2048 words each, 8 per thread.
    for (int e = tid; e < kT * (kKI / 4); e += kThreads) {
      const int r = e / (kKI / 4), wd = e % (kKI / 4);
      const int64_t m = m0 + r, n = n0 + r, k = k0 + 4 * wd;
      uint32_t xw = 0, ww = 0;
      bool isnan = false;
      if (m < a.M) {
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          int32_t v = 0;
          if (k + q < a.K) v = a.xq ? (int32_t)a.xq[m * a.xq_stride + k + q] : quantize_x(x_row(a, m)[k + q], inv, isnan);
          xw |= (uint32_t)(v & 0xff) << (8 * q);
        }
      }
      if (n < a.N) {
#pragma unroll
        for (int q = 0; q < 4; ++q) ww |= (uint32_t)(qweight_value(a, n, k + q) & 0xff) << (8 * q);
      }
      xs[r][wd] = xw, ws[r][wd] = ww;
      if (isnan) nan_row[r] = 1;
    }
    __syncthreads();
#pragma unroll 8
    for (int wd = 0; wd < kKI / 4; ++wd) {
      uint32_t xv[4], wv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) xv[i] = xs[ty + 16 * i][wd];
#pragma unroll
      for (int j = 0; j < 4; ++j) wv[j] = ws[tx + 16 * j][wd];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) isum[i][j] = dot4(wv[j], xv[i], isum[i][j]);
    }
    if (I4) {  // the tile is group k0 / 128: one step of each output's chain
      const int64_t g = k0 / kI4Group;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = n0 + tx + 16 * j;
        const float sc = n < a.N ? a.w_scales[n * G + g] : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) f[i][j] = w4a8_step(f[i][j], isum[i][j], sc), isum[i][j] = 0;
      }
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m >= a.M || n >= a.N) continue;
      const bool nan = nan_row[ty + 16 * i] != 0;
      if (I4) w4a8_store(a, m, n, f[i][j], nan);
      else w8a8_store(a, m, n, isum[i][j], nan);
    }
}

// W4A16: float inputs, weights s_w[n, g] * (nibble - 8).
__global__ void __launch_bounds__(kThreads) qgemm_w4a16_kernel(const QLinearArgs a) {
  __shared__ float xs[kT][kLdF];
  __shared__ float ws[kT][kLdF];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (int64_t)blockIdx.y * kT, n0 = (int64_t)blockIdx.x * kT;
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < a.K; k0 += kKF) {
    for (int e = tid; e < kT * kKF; e += kThreads) {
      const int r = e / kKF, q = e % kKF;
      const int64_t m = m0 + r, n = n0 + r, k = k0 + q;
      xs[r][q] = m < a.M && k < a.K ? x_row(a, m)[k] : 0.0f;
      ws[r][q] = n < a.N && k < a.K ? a.w_scales[n * G + k / kI4Group] * nibble_minus_8((uint32_t)(qweight_value(a, n, k) + 8)) : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int q = 0; q < kKF; ++q) {
      float xv[4], wv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) xv[i] = xs[ty + 16 * i][q];
#pragma unroll
      for (int j = 0; j < 4; ++j) wv[j] = ws[tx + 16 * j][q];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(wv[j], xv[i], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < a.M && n < a.N) w4a16_store(a, m, n, acc[i][j]);
    }
}

}  // namespace

cudaError_t qlinear_gemm(const QLinearArgs& a, float inv, cudaStream_t stream) {
  const int64_t gx = (a.N + kT - 1) / kT, gy = (a.M + kT - 1) / kT;
  if (gx > 0x7fffffff || gy > 65535) return cudaErrorInvalidValue;
  const dim3 grid((unsigned)gx, (unsigned)gy);
  if (a.w_dtype == DType::I8) qgemm_int8_kernel<false><<<grid, kThreads, 0, stream>>>(a, inv);
  else if (a.x_scale > 0.0f) qgemm_int8_kernel<true><<<grid, kThreads, 0, stream>>>(a, inv);
  else qgemm_w4a16_kernel<<<grid, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace nm::cuda
