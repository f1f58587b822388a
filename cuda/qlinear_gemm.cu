// The quantized GEMMs (cuda/qlinear_gemm.h). On sm_80 and newer W8A8 and
// W4A8 run on the int8 tensor cores, W4A16 on the f16 ones
// (qlinear_mma_math.cuh). Otherwise the SIMT GEMM: block tile 64 x 64 outputs, 256 threads of 4 x 4 (rows ty + 16 i, columns tx + 16 j), k tiles of 128 (one
// W4A8 group) staged in shared memory as int8 words (inputs quantized on the
// way in, with a NaN flag per row) or, for W4A16, k tiles of 64 as floats
// (weights dequantized with their group scale).
#include <stdint.h>

#include "launch_util.cuh"
#include "f16split_stage.cuh"
#include "mma_mainloop.cuh"
#include "qlinear_gemm.h"
#include "qlinear_math.cuh"
#include "qlinear_mma_math.cuh"

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


// ---------------------------------------------------------------- int8 on the tensor cores (qlinear_mma_math.cuh)

// The staged int8 inputs [M, a_ld] and each row's NaN flag: a block per row
// (grid-strided).
__global__ void __launch_bounds__(256) stage_int8_rows_kernel(const QLinearArgs a, float inv, int8_t* xq,
                                                              int64_t a_ld, int* nan_rows) {
  for (int64_t m = blockIdx.x; m < a.M; m += gridDim.x) {
    bool nan = false;
    for (int64_t k = threadIdx.x; k < a_ld; k += blockDim.x) xq[m * a_ld + k] = qmma_stage_x(a, m, k, inv, nan);
    const int any = __syncthreads_or(nan ? 1 : 0);
    if (threadIdx.x == 0) nan_rows[m] = any;
  }
}

// The staged int8 weights [N, w_ld] (grid-strided).
__global__ void __launch_bounds__(256) stage_int8_weights_kernel(const QLinearArgs a, int8_t* w8, int64_t w_ld) {
  const int64_t total = a.N * w_ld;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
    w8[i] = qmma_stage_w(a, i / w_ld, i % w_ld);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// One step of each output's group chain, f = fmaf(float(sum), s_w[n, g], f)
// (w4a8_step), from the warp's sums of group g, which restart at 0.
template <class Acc>
__device__ __forceinline__ void fold_group(const QLinearArgs& a, int64_t n0, int64_t G, int64_t g,
                                           Acc (&acc)[4][4][4], float (&f)[4][4][4]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int64_t n = mma_out_col(n0, warp, j, lane, c);
      const float sc = n < a.N ? a.w_scales[n * G + g] : 0.0f;
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int q = 2 * h + c;
          f[i][j][q] = fmaf((float)acc[i][j][q], sc, f[i][j][q]), acc[i][j][q] = 0;
        }
    }
}

// W4A8's group chain after each group's k tiles (W8A8: nothing to fold).
template <bool I4>
struct QMmaEpilogue {
  const QLinearArgs& a;
  int64_t n0, G;
  float f[4][4][4];
  __device__ void after_step(int64_t, int32_t (&)[4][4][4]) {}
  __device__ void after_tile(int64_t kt, int64_t KT, int32_t (&acc)[4][4][4]) {
    if (I4 && qmma_group_ends(kt, KT)) fold_group(a, n0, G, kt / kQMmaTilesPerGroup, acc, f);
  }
};
#endif

template <bool I4>
__global__ void __launch_bounds__(kMmaThreads) qgemm_int8_mma_kernel(const QLinearArgs a, const int8_t* xq,
                                                                     int64_t a_ld, const int8_t* w8, int64_t w_ld,
                                                                     const int* nan_rows, int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) uint16_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m0 = (block_base + blockIdx.y) * (int64_t)kMmaTileM, n0 = (int64_t)blockIdx.x * kMmaTileN;
  QMmaEpilogue<I4> ep{a, n0, (a.K + kI4Group - 1) / kI4Group, {}};
  int32_t acc[4][4][4];
  mma_mainloop<MmaKind::S8>(xq, a_ld, w8, w_ld, a.M, a.N, a.K, m0, n0, smem, ep, acc);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t m = mma_out_row(m0, warp, i, lane, q);
      if (m >= a.M) continue;
      const bool nan = nan_rows[m] != 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = mma_out_col(n0, warp, j, lane, q);
        if (n >= a.N) continue;
        if (I4) w4a8_store(a, m, n, ep.f[i][j][q], nan);
        else w8a8_store(a, m, n, acc[i][j][q], nan);
      }
    }
#else
  (void)a, (void)xq, (void)a_ld, (void)w8, (void)w_ld, (void)nan_rows, (void)block_base;
#endif
}

// The widened W4A16 weights [N, w_ld] as f16 (grid-strided).
__global__ void __launch_bounds__(256) stage_w4a16_weights_kernel(const QLinearArgs a, uint16_t* w16, int64_t w_ld) {
  const int64_t total = a.N * w_ld;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
    w16[i] = qmma_stage_w_f16(a, i / w_ld, i % w_ld);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// W4A16's group chain on both partial sums (hi, lo) of each output.
struct W4A16MmaEpilogue {
  const QLinearArgs& a;
  int64_t n0, G;
  float f[4][4][4];
  __device__ void after_step(int64_t, float (&)[4][4][4]) {}
  __device__ void after_tile(int64_t kt, int64_t KT, float (&acc)[4][4][4]) {
    if (qmma_w4a16_group_ends(kt, KT)) fold_group(a, n0, G, kt / kQMmaF16TilesPerGroup, acc, f);
  }
};
#endif

__global__ void __launch_bounds__(kMmaThreads) qgemm_w4a16_mma_kernel(const QLinearArgs a, const uint16_t* xs,
                                                                      int64_t a_ld, const float* inv_s, int64_t M2,
                                                                      const uint16_t* w16, int64_t w_ld,
                                                                      int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) uint16_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m0 = (block_base + blockIdx.y) * (int64_t)kMmaTileM, n0 = (int64_t)blockIdx.x * kMmaTileN;
  W4A16MmaEpilogue ep{a, n0, (a.K + kI4Group - 1) / kI4Group, {}};
  float acc[4][4][4];
  mma_mainloop<MmaKind::F16>(xs, a_ld, w16, w_ld, M2, a.N, a.K, m0, n0, smem, ep, acc);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int q = 0; q < 2; ++q) {  // q: the hi sums, q + 2: the lo sums of the same outputs
      const int64_t m = f16split_x_row(mma_out_row(m0, warp, i, lane, q));
      if (m >= a.M) continue;
      const float is = inv_s[m];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = mma_out_col(n0, warp, j, lane, q);
        if (n < a.N) w4a16_store(a, m, n, (ep.f[i][j][q] + ep.f[i][j][q + 2]) * is);
      }
    }
#else
  (void)a, (void)xs, (void)a_ld, (void)inv_s, (void)M2, (void)w16, (void)w_ld, (void)block_base;
#endif
}

}  // namespace

cudaError_t qlinear_gemm_w4a16_mma(const QLinearArgs& a, cudaStream_t stream) {
  if (a.w_dtype != DType::I4 || a.x_scale > 0.0f) return cudaErrorNotSupported;  // W4A16 only
  cudaError_t e = require_sm80();
  if (e != cudaSuccess) return e;
  // One scratch: the staged inputs, 1 / s per row, the widened weights.
  const int64_t M2 = f16split_rows(a.M), a_ld = mma_ld(a.K, 2), w_ld = mma_ld(a.K, 2);
  const size_t xb = (size_t)(M2 * a_ld) * 2, sb = ((size_t)a.M * 4 + 15) / 16 * 16, wb = (size_t)(a.N * w_ld) * 2;
  char* scratch = nullptr;
  e = cudaMallocAsync(reinterpret_cast<void**>(&scratch), xb + sb + wb, stream);
  if (e != cudaSuccess) return e;
  uint16_t* xs = reinterpret_cast<uint16_t*>(scratch);
  float* inv_s = reinterpret_cast<float*>(scratch + xb);
  uint16_t* w16 = reinterpret_cast<uint16_t*>(scratch + xb + sb);
  stage_f16split_rows(a, xs, a_ld, inv_s, stream);
  stage_w4a16_weights_kernel<<<grid_for(a.N * w_ld, 256), 256, 0, stream>>>(a, w16, w_ld);
  e = cudaGetLastError();
  if (e == cudaSuccess)
    e = launch_mma_tiles(qgemm_w4a16_mma_kernel, M2, a.N, stream, a, (const uint16_t*)xs, a_ld, (const float*)inv_s,
                         M2, (const uint16_t*)w16, w_ld);
  const cudaError_t fr = cudaFreeAsync(scratch, stream);
  return e != cudaSuccess ? e : fr;
}

cudaError_t qlinear_gemm_int8_mma(const QLinearArgs& a, float inv, cudaStream_t stream) {
  if (!(a.w_dtype == DType::I8 || a.x_scale > 0.0f)) return cudaErrorNotSupported;  // W4A16: float inputs
  cudaError_t e = require_sm80();
  if (e != cudaSuccess) return e;
  // One scratch: the staged inputs, their NaN flags, then (unless W8A8 is
  // read in place) the staged weights.
  const int64_t a_ld = mma_ld(a.K, 1), w_ld = qmma_w_in_place(a) ? a.w_stride : mma_ld(a.K, 1);
  const size_t x_bytes = (size_t)(a.M * a_ld + 15) / 16 * 16, flag_bytes = (size_t)(a.M * 4 + 15) / 16 * 16;
  const size_t w_bytes = qmma_w_in_place(a) ? 0 : (size_t)(a.N * w_ld);
  char* scratch = nullptr;
  e = cudaMallocAsync(reinterpret_cast<void**>(&scratch), x_bytes + flag_bytes + w_bytes, stream);
  if (e != cudaSuccess) return e;
  int8_t* xq = reinterpret_cast<int8_t*>(scratch);
  int* nan_rows = reinterpret_cast<int*>(scratch + x_bytes);
  const int8_t* w8 = static_cast<const int8_t*>(a.w);
  stage_int8_rows_kernel<<<(unsigned)(a.M < 65535 * 16 ? a.M : 65535 * 16), 256, 0, stream>>>(a, inv, xq, a_ld, nan_rows);
  e = cudaGetLastError();
  if (e == cudaSuccess && w_bytes) {
    int8_t* ws = reinterpret_cast<int8_t*>(scratch + x_bytes + flag_bytes);
    stage_int8_weights_kernel<<<grid_for(a.N * w_ld, 256), 256, 0, stream>>>(a, ws, w_ld);
    e = cudaGetLastError();
    w8 = ws;
  }
  if (e == cudaSuccess) {
    const int8_t* x8 = xq;
    const int* nr = nan_rows;
    e = a.w_dtype == DType::I4
            ? launch_mma_tiles(qgemm_int8_mma_kernel<true>, a.M, a.N, stream, a, x8, a_ld, w8, w_ld, nr)
            : launch_mma_tiles(qgemm_int8_mma_kernel<false>, a.M, a.N, stream, a, x8, a_ld, w8, w_ld, nr);
  }
  const cudaError_t fr = cudaFreeAsync(scratch, stream);
  return e != cudaSuccess ? e : fr;
}

cudaError_t qlinear_gemm_simt(const QLinearArgs& a, float inv, cudaStream_t stream) {
  const int64_t gx = (a.N + kT - 1) / kT, gy = (a.M + kT - 1) / kT;
  if (gx > 0x7fffffff || gy > 65535) return cudaErrorInvalidValue;
  const dim3 grid((unsigned)gx, (unsigned)gy);
  if (a.w_dtype == DType::I8) qgemm_int8_kernel<false><<<grid, kThreads, 0, stream>>>(a, inv);
  else if (a.x_scale > 0.0f) qgemm_int8_kernel<true><<<grid, kThreads, 0, stream>>>(a, inv);
  else qgemm_w4a16_kernel<<<grid, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t qlinear_gemm(const QLinearArgs& a, float inv, cudaStream_t stream) {
  const bool int8_in = a.w_dtype == DType::I8 || a.x_scale > 0.0f;
  const cudaError_t e = int8_in ? qlinear_gemm_int8_mma(a, inv, stream) : qlinear_gemm_w4a16_mma(a, stream);
  return e == cudaErrorNotSupported ? qlinear_gemm_simt(a, inv, stream) : e;
}

}  // namespace nm::cuda
