// The GEMMs of linear_cuda for M > 16 (cuda/linear_gemm.h): bf16 on the
// tensor cores (a first WMMA kernel, kept for W rows that are not 16-byte
// aligned, and the pipelined mma.sync one of linear_mma_math.cuh), f16
// weights with float inputs (split in two f16 terms) on the f16 tensor
// cores, Q8_0 / Q4_0 weights with Q8Block inputs on the int8 tensor cores
// (mma_mainloop.cuh), and every other format on the CUDA cores (SIMT).
//
// The WMMA kernel: bf16 x bf16 -> f32, block tile 128 (rows of x) x 128
// (rows of W) x 32 (k), 8 warps as 2 x 4, each a 64 x 32 tile of 4 x 2
// fragments of 16 x 16. The block loads x (float32, rounded to bf16 to
// nearest even as the CPU's ActRounding::BF16) and W (bf16, [N, K] with K
// contiguous: the col-major B operand of x W^T) into shared memory, zero past
// M, N and K, then runs the k-step's 2 x (4 x 2) MMAs. The epilogue goes
// through a per-warp 16 x 16 shared scratch to add the bias and mask the
// edges.
#include <stdint.h>

#include <mma.h>

#include "launch_util.cuh"
#include "linear_gemm.h"
#include "linear_math.cuh"
#include "linear_mma_math.cuh"
#include "f16split_stage.cuh"
#include "mma_mainloop.cuh"

namespace nm::cuda {

namespace {

constexpr int kTileM = 128, kTileN = 128, kTileK = 32, kLd = kTileK + 8;  // +8: fewer bank conflicts
constexpr int kGemmThreads = 256;

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
// bf16 bits of v rounded to nearest even (NaN stays NaN): round_to_bf16's.
__device__ __forceinline__ uint16_t bf16_bits(float v) { return (uint16_t)(float_to_bits(round_to_bf16(v)) >> 16); }
#endif

__global__ void __launch_bounds__(kGemmThreads) gemm_bf16_kernel(const LinearArgs a, int flags) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  __shared__ __align__(32) uint16_t sa[kTileM * kLd];
  __shared__ __align__(32) uint16_t sb[kTileN * kLd];
  __shared__ __align__(32) float scratch[kGemmThreads / 32][16 * 16];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4;  // the warp's 64 x 32 tile
  const int64_t m0 = (int64_t)blockIdx.y * kTileM, n0 = (int64_t)blockIdx.x * kTileN;
  const uint16_t* W = static_cast<const uint16_t*>(a.w);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = 0; k0 < a.K; k0 += kTileK) {
    // 128 x 32 of x and of W: 1024 runs of 4 k each, 4 per thread.
#pragma unroll
    for (int it = 0; it < 4; ++it) {
      const int i = tid + it * kGemmThreads, r = i / 8, kq = (i % 8) * 4;
      const int64_t m = m0 + r, n = n0 + r, k = k0 + kq;
      uint16_t xa[4] = {0, 0, 0, 0}, wb[4] = {0, 0, 0, 0};
      if (m < a.M) {
        const float* xr = x_row(a, m) + k;
        if ((flags & kGemvVecX) && k + 4 <= a.K) {
          const float4 v = *reinterpret_cast<const float4*>(xr);
          xa[0] = bf16_bits(v.x), xa[1] = bf16_bits(v.y), xa[2] = bf16_bits(v.z), xa[3] = bf16_bits(v.w);
        } else {
#pragma unroll
          for (int q = 0; q < 4; ++q)
            if (k + q < a.K) xa[q] = bf16_bits(xr[q]);
        }
      }
      if (n < a.N) {
        const uint16_t* wr = W + n * a.w_stride + k;
        if ((flags & kGemvVecW) && k + 4 <= a.K) {
          const uint2 v = __ldg(reinterpret_cast<const uint2*>(wr));
          wb[0] = (uint16_t)(v.x & 0xffffu), wb[1] = (uint16_t)(v.x >> 16);
          wb[2] = (uint16_t)(v.y & 0xffffu), wb[3] = (uint16_t)(v.y >> 16);
        } else {
#pragma unroll
          for (int q = 0; q < 4; ++q)
            if (k + q < a.K) wb[q] = wr[q];
        }
      }
#pragma unroll
      for (int q = 0; q < 4; ++q) sa[r * kLd + kq + q] = xa[q], sb[r * kLd + kq + q] = wb[q];
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        wmma::load_matrix_sync(fa[i], reinterpret_cast<const __nv_bfloat16*>(sa + (wm * 64 + i * 16) * kLd + kk), kLd);
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::load_matrix_sync(fb[j], reinterpret_cast<const __nv_bfloat16*>(sb + (wn * 32 + j * 16) * kLd + kk), kLd);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  // Epilogue: each fragment through the warp's scratch, 8 elements per lane.
  float* sc = scratch[warp];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(sc, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t m = m0 + wm * 64 + i * 16 + e / 16, n = n0 + wn * 32 + j * 16 + e % 16;
        if (m < a.M && n < a.N) gemv_store(a, m, n, sc[e]);
      }
      __syncwarp();
    }
#else
  (void)a, (void)flags, (void)kLd;
#endif
}

// ---------------------------------------------------------------- the pipelined bf16 GEMM (linear_mma_math.cuh)

// x rounded to bf16 into xb [M, a_ld], zeros past K (grid-strided).
__global__ void __launch_bounds__(256) round_bf16_rows_kernel(const LinearArgs a, uint16_t* xb, int64_t a_ld) {
  const int64_t total = a.M * a_ld;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = i / a_ld, k = i % a_ld;
    xb[i] = k < a.K ? mma_bf16_bits(x_row(a, m)[k]) : (uint16_t)0;
  }
}


__global__ void __launch_bounds__(kMmaThreads) gemm_bf16_mma_kernel(const LinearArgs a, const uint16_t* xb,
                                                                    int64_t a_ld, int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) uint16_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m0 = (block_base + blockIdx.y) * (int64_t)kMmaTileM, n0 = (int64_t)blockIdx.x * kMmaTileN;
  MmaNoFold ep;
  float acc[4][4][4];
  mma_mainloop<MmaKind::BF16>(xb, a_ld, a.w, a.w_stride, a.M, a.N, a.K, m0, n0, smem, ep, acc);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t m = mma_out_row(m0, warp, i, lane, q), n = mma_out_col(n0, warp, j, lane, q);
        if (m < a.M && n < a.N) gemv_store(a, m, n, acc[i][j][q]);
      }
#else
  (void)a, (void)xb, (void)a_ld, (void)block_base;
#endif
}

// ---------------------------------------------------------------- f16 weights, float inputs (f16 mma, split inputs)

__global__ void __launch_bounds__(kMmaThreads) gemm_f16_mma_kernel(const LinearArgs a, const uint16_t* xs,
                                                                   int64_t a_ld, const float* inv_s, int64_t M2,
                                                                   int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) uint16_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m0 = (block_base + blockIdx.y) * (int64_t)kMmaTileM, n0 = (int64_t)blockIdx.x * kMmaTileN;
  MmaNoFold ep;
  float acc[4][4][4];
  mma_mainloop<MmaKind::F16>(xs, a_ld, a.w, a.w_stride, M2, a.N, a.K, m0, n0, smem, ep, acc);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int q = 0; q < 2; ++q) {  // c0, c1: hi sums; c2, c3: the lo sums of the same outputs
      const int64_t m = f16split_x_row(mma_out_row(m0, warp, i, lane, q));
      if (m >= a.M) continue;
      const float is = inv_s[m];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = mma_out_col(n0, warp, j, lane, q);
        if (n < a.N) gemv_store(a, m, n, (acc[i][j][q] + acc[i][j][q + 2]) * is);
      }
    }
#else
  (void)a, (void)xs, (void)a_ld, (void)inv_s, (void)M2, (void)block_base;
#endif
}

// ---------------------------------------------------------------- Q8_0 / Q4_0 weights, Q8Block inputs (int8 mma)

// xq [M, K] and d_x [M, K / 32]: a thread per (row, block), grid-strided.
__global__ void __launch_bounds__(256) stage_q8block_rows_kernel(const LinearArgs a, int8_t* xq, float* dx) {
  const int64_t KB = a.K / kQ8Block, total = a.M * KB;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = i / KB, b = i % KB;
    __align__(16) int8_t q[kQ8Block];
    dx[i] = q8block_stage_x(a, m, b, q);
    int4* dst = reinterpret_cast<int4*>(xq + m * a.K + b * kQ8Block);
    dst[0] = *reinterpret_cast<const int4*>(q), dst[1] = *reinterpret_cast<const int4*>(q + 16);
  }
}

// w8 [N, K] and d_w [N, K / 32]: a thread per (row, block), grid-strided.
template <DType WT>
__global__ void __launch_bounds__(256) stage_ggml_weights_kernel(const LinearArgs a, int8_t* w8, float* dw) {
  const int64_t KB = a.K / kQ8Block, total = a.N * KB;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = i / KB, b = i % KB;
    __align__(16) int8_t q[kQ8Block];
    dw[i] = ggml_stage_w<WT>(a, n, b, q);
    int4* dst = reinterpret_cast<int4*>(w8 + n * a.K + b * kQ8Block);
    dst[0] = *reinterpret_cast<const int4*>(q), dst[1] = *reinterpret_cast<const int4*>(q + 16);
  }
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// Folds each k32 step's exact sums into the float sums with the blocks'
// scales (q8_block_step).
struct Q8BlockEpilogue {
  const float* dx;  // [M, KB]
  const float* dw;  // [N, KB]
  int64_t KB, M, N, m0, n0;
  float f[4][4][4];
  __device__ void after_step(int64_t b, int32_t (&acc)[4][4][4]) {
    if (b >= KB) return;  // past K (a half tile): the sums are 0
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float sx[4][2], sw[4][2];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = mma_out_row(m0, warp, i, lane, 2 * h);
        sx[i][h] = m < M ? __ldg(dx + m * KB + b) : 0.0f;
      }
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t n = mma_out_col(n0, warp, j, lane, c);
        sw[j][c] = n < N ? __ldg(dw + n * KB + b) : 0.0f;
      }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          f[i][j][q] = q8_block_step(f[i][j][q], acc[i][j][q], sx[i][q / 2], sw[j][q % 2]);
          acc[i][j][q] = 0;
        }
  }
  __device__ void after_tile(int64_t, int64_t, int32_t (&)[4][4][4]) {}
};
#endif

__global__ void __launch_bounds__(kMmaThreads) gemm_q8_mma_kernel(const LinearArgs a, const int8_t* xq, const float* dx,
                                                                  const int8_t* w8, const float* dw,
                                                                  int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) uint16_t smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m0 = (block_base + blockIdx.y) * (int64_t)kMmaTileM, n0 = (int64_t)blockIdx.x * kMmaTileN;
  Q8BlockEpilogue ep{dx, dw, a.K / kQ8Block, a.M, a.N, m0, n0, {}};
  int32_t acc[4][4][4];
  mma_mainloop<MmaKind::S8>(xq, a.K, w8, a.K, a.M, a.N, a.K, m0, n0, smem, ep, acc);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t m = mma_out_row(m0, warp, i, lane, q), n = mma_out_col(n0, warp, j, lane, q);
        if (m < a.M && n < a.N) gemv_store(a, m, n, ep.f[i][j][q]);
      }
#else
  (void)a, (void)xq, (void)dx, (void)w8, (void)dw, (void)block_base;
#endif
}

// The SIMT GEMM: block tile 64 x 64 outputs, 256 threads of 4 x 4 each
// (rows ty + 16 i, columns tx + 16 j), k tiles of 32 staged in shared memory:
// threads 0..63 load (and round) a row of x, threads 64..127 a row of W
// (dequantized), through the GEMV's per-chunk loaders.
constexpr int kSimtTile = 64, kSimtK = 32, kSimtLd = kSimtK + 1;

template <DType WT>
__global__ void __launch_bounds__(kGemmThreads) gemm_simt_kernel(const LinearArgs a, int flags) {
  __shared__ float xs[kSimtTile][kSimtLd];
  __shared__ float ws[kSimtTile][kSimtLd];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (int64_t)blockIdx.y * kSimtTile, n0 = (int64_t)blockIdx.x * kSimtTile;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < a.K; k0 += kSimtK) {
    const int len = a.K - k0 < kSimtK ? (int)(a.K - k0) : kSimtK;
    float v[kSimtK];
    if (tid < kSimtTile) {
      const int64_t m = m0 + tid;
      if (m < a.M) gemv_load_x<kSimtK>(a, m, k0, len, flags, v);
      else
#pragma unroll
        for (int q = 0; q < kSimtK; ++q) v[q] = 0.0f;
#pragma unroll
      for (int q = 0; q < kSimtK; ++q) xs[tid][q] = v[q];
    } else if (tid < 2 * kSimtTile) {
      const int r = tid - kSimtTile;
      const int64_t n = n0 + r;
      if (n < a.N) gemv_load_w<WT, kSimtK>(a, n, k0, len, flags, v);
      else
#pragma unroll
        for (int q = 0; q < kSimtK; ++q) v[q] = 0.0f;
#pragma unroll
      for (int q = 0; q < kSimtK; ++q) ws[r][q] = v[q];
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kSimtK; ++kk) {
      float xv[4], wv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) xv[i] = xs[ty + 16 * i][kk];
#pragma unroll
      for (int j = 0; j < 4; ++j) wv[j] = ws[tx + 16 * j][kk];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(xv[i], wv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < a.M && n < a.N) gemv_store(a, m, n, acc[i][j]);
    }
}

}  // namespace

cudaError_t linear_gemm_simt(const LinearArgs& a, cudaStream_t stream) {
  int flags = 0;
  const int64_t es = a.w_dtype == DType::F32 ? 4 : 2;
  if (((uintptr_t)a.w & 15u) == 0 && (a.w_stride * es) % 16 == 0) flags |= kGemvVecW;
  if (((uintptr_t)a.x & 15u) == 0 && a.x_stride % 4 == 0) flags |= kGemvVecX;
  if (((uintptr_t)a.w & 1u) == 0) flags |= kGemvAlign2W;
  const int64_t gx = (a.N + kSimtTile - 1) / kSimtTile, gy = (a.M + kSimtTile - 1) / kSimtTile;
  if (gx > 0x7fffffff || gy > 65535) return cudaErrorInvalidValue;
  const dim3 grid((unsigned)gx, (unsigned)gy);
  switch (a.w_dtype) {
    case DType::F32: gemm_simt_kernel<DType::F32><<<grid, kGemmThreads, 0, stream>>>(a, flags); break;
    case DType::F16: gemm_simt_kernel<DType::F16><<<grid, kGemmThreads, 0, stream>>>(a, flags); break;
    case DType::BF16: gemm_simt_kernel<DType::BF16><<<grid, kGemmThreads, 0, stream>>>(a, flags); break;
    case DType::Q8_0: gemm_simt_kernel<DType::Q8_0><<<grid, kGemmThreads, 0, stream>>>(a, flags); break;
    case DType::Q4_0: gemm_simt_kernel<DType::Q4_0><<<grid, kGemmThreads, 0, stream>>>(a, flags); break;
    default: return cudaErrorNotSupported;
  }
  return cudaGetLastError();
}

cudaError_t linear_gemm_bf16_mma(const LinearArgs& a, cudaStream_t stream) {
  if (!mma_usable(a)) return cudaErrorNotSupported;
  cudaError_t e = require_sm80();
  if (e != cudaSuccess) return e;
  const int64_t a_ld = mma_a_ld(a.K);
  uint16_t* xb = nullptr;
  e = cudaMallocAsync(reinterpret_cast<void**>(&xb), (size_t)(a.M * a_ld) * 2, stream);
  if (e != cudaSuccess) return e;
  round_bf16_rows_kernel<<<grid_for(a.M * a_ld, 256), 256, 0, stream>>>(a, xb, a_ld);
  e = cudaGetLastError();
  if (e == cudaSuccess) e = launch_mma_tiles(gemm_bf16_mma_kernel, a.M, a.N, stream, a, (const uint16_t*)xb, a_ld);
  const cudaError_t f = cudaFreeAsync(xb, stream);
  return e != cudaSuccess ? e : f;
}

cudaError_t linear_gemm_f16_mma(const LinearArgs& a, cudaStream_t stream) {
  if (a.w_dtype != DType::F16 || a.x_rounding != ActRounding::None || !mma_usable(a)) return cudaErrorNotSupported;
  cudaError_t e = require_sm80();
  if (e != cudaSuccess) return e;
  const int64_t M2 = f16split_rows(a.M), a_ld = mma_ld(a.K, 2);
  const size_t xb = (size_t)(M2 * a_ld) * 2;
  char* scratch = nullptr;
  e = cudaMallocAsync(reinterpret_cast<void**>(&scratch), xb + (size_t)a.M * 4, stream);
  if (e != cudaSuccess) return e;
  const uint16_t* xs = reinterpret_cast<uint16_t*>(scratch);
  float* inv_s = reinterpret_cast<float*>(scratch + xb);
  stage_f16split_rows(a, const_cast<uint16_t*>(xs), a_ld, inv_s, stream);
  e = cudaGetLastError();
  if (e == cudaSuccess)
    e = launch_mma_tiles(gemm_f16_mma_kernel, M2, a.N, stream, a, xs, a_ld, (const float*)inv_s, M2);
  const cudaError_t f = cudaFreeAsync(scratch, stream);
  return e != cudaSuccess ? e : f;
}

cudaError_t linear_gemm_q8_mma(const LinearArgs& a, cudaStream_t stream) {
  if (!((a.w_dtype == DType::Q8_0 || a.w_dtype == DType::Q4_0) && a.x_rounding == ActRounding::Q8Block) ||
      a.K % kQ8Block != 0)
    return cudaErrorNotSupported;
  cudaError_t e = require_sm80();
  if (e != cudaSuccess) return e;
  // One scratch: xq [M, K], w8 [N, K], d_x [M, K / 32], d_w [N, K / 32]
  // (K % 32 == 0: every part stays 16-byte aligned).
  const int64_t KB = a.K / kQ8Block;
  const size_t xb = (size_t)(a.M * a.K), wb = (size_t)(a.N * a.K), dxb = (size_t)(a.M * KB * 4),
               dwb = (size_t)(a.N * KB * 4);
  char* scratch = nullptr;
  e = cudaMallocAsync(reinterpret_cast<void**>(&scratch), xb + wb + dxb + dwb + 16, stream);
  if (e != cudaSuccess) return e;
  int8_t* xq = reinterpret_cast<int8_t*>(scratch);
  int8_t* w8 = reinterpret_cast<int8_t*>(scratch + xb);
  float* dx = reinterpret_cast<float*>(scratch + xb + wb);
  float* dw = reinterpret_cast<float*>(scratch + xb + wb + dxb);
  stage_q8block_rows_kernel<<<grid_for(a.M * KB, 256), 256, 0, stream>>>(a, xq, dx);
  if (a.w_dtype == DType::Q8_0)
    stage_ggml_weights_kernel<DType::Q8_0><<<grid_for(a.N * KB, 256), 256, 0, stream>>>(a, w8, dw);
  else
    stage_ggml_weights_kernel<DType::Q4_0><<<grid_for(a.N * KB, 256), 256, 0, stream>>>(a, w8, dw);
  e = cudaGetLastError();
  if (e == cudaSuccess)
    e = launch_mma_tiles(gemm_q8_mma_kernel, a.M, a.N, stream, a, (const int8_t*)xq, (const float*)dx,
                         (const int8_t*)w8, (const float*)dw);
  const cudaError_t f = cudaFreeAsync(scratch, stream);
  return e != cudaSuccess ? e : f;
}

cudaError_t linear_gemm_bf16(const LinearArgs& a, cudaStream_t stream) {
  int dev = 0, major = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e != cudaSuccess) return e;
  if (major < 8) return cudaErrorNotSupported;
  int flags = 0;
  if (((uintptr_t)a.w & 7u) == 0 && a.w_stride % 4 == 0) flags |= kGemvVecW;
  if (((uintptr_t)a.x & 15u) == 0 && a.x_stride % 4 == 0) flags |= kGemvVecX;
  const int64_t gx = (a.N + kTileN - 1) / kTileN, gy = (a.M + kTileM - 1) / kTileM;
  if (gx > 0x7fffffff || gy > 65535) return cudaErrorInvalidValue;
  gemm_bf16_kernel<<<dim3((unsigned)gx, (unsigned)gy), kGemmThreads, 0, stream>>>(a, flags);
  return cudaGetLastError();
}

}  // namespace nm::cuda
