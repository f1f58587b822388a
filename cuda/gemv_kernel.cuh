// The decode GEMV kernel of float and GGUF weights (gemv_kernel) and its
// launch flags, shared by cuda/linear.cu and the GPU check's bench of its
// variants (cuda/check/gemv_variants.cu). The math is linear_math.cuh.
#pragma once
#include <stdint.h>

#include "kernels/linear.h"
#include "linear_math.cuh"
#include "pdl.cuh"

namespace nm::cuda {

// Bytes of weight row n's start and of a row of K elements.
template <DType WT>
__device__ __forceinline__ const uint8_t* gemv_row_bytes(const LinearArgs& a, int64_t n, int64_t& bytes) {
  constexpr int64_t num = WT == DType::F32 ? 4 : WT == DType::Q8_0 ? 34 : WT == DType::Q4_0 ? 18 : 2;
  constexpr int64_t den = WT == DType::Q8_0 || WT == DType::Q4_0 ? 32 : 1;
  bytes = (a.K + den - 1) / den * num;
  return static_cast<const uint8_t*>(a.w) + n * a.w_stride / den * num;
}

// The GEMV kernels' start (cuda/pdl.cuh): let the next kernel be scheduled;
// under a programmatic launch, the block's rows [n0, n0 + rows) into L2,
// then wait for the predecessor.
template <DType WT>
__device__ __forceinline__ void gemv_begin(const LinearArgs& a, int64_t n0, int64_t rows, int flags) {
  pdl_trigger();
  if (flags & kGemvPdl) {
    for (int64_t r = 0; r < rows && n0 + r < a.N; ++r) {
      int64_t bytes = 0;
      const uint8_t* p = gemv_row_bytes<WT>(a, n0 + r, bytes);
      prefetch_l2_span(p, bytes, threadIdx.x, blockDim.x);
    }
  }
  pdl_wait();
}

// S warps per output row n (S = 1, 2 or 4; kGemvWarps / S rows per block,
// grid-strided over the row groups); warp w of a row takes chunks
// w * 32 + l, stepping 32 S, issuing U chunks' loads together. Each warp's
// 32 lane partials are summed by a butterfly that gives every lane
// tree_sum_host's result (linear_math.cuh); with S > 1 thread m of the row's
// first warp then sums the warps' results for input row m (gemv_warps_sum).
template <DType WT, int C, int MB, int S, int U>
__global__ void __launch_bounds__(kGemvWarps * kWarpSize) gemv_kernel(const LinearArgs a, int flags) {
  constexpr int R = kGemvWarps / S;  // rows per block
  constexpr int UU = MB == 1 && C == 8 ? U : 1;  // more inputs rows: the registers go to the accumulators
  __shared__ float part[S > 1 ? kGemvWarps : 1][MB];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize, w = warp % S;
  gemv_begin<WT>(a, (int64_t)blockIdx.x * R, R, flags);
  for (int64_t r0 = (int64_t)blockIdx.x * R; r0 < a.N; r0 += (int64_t)gridDim.x * R) {
    const int64_t n = r0 + warp / S;
    float acc[MB];
    if (n < a.N) {
      gemv_lane_partial<WT, C, MB, UU>(a, n, (int64_t)w * kWarpSize + lane, (int64_t)S * kWarpSize, flags, acc);
    } else {
#pragma unroll
      for (int m = 0; m < MB; ++m) acc[m] = 0.0f;
    }
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int off = kWarpSize / 2; off > 0; off >>= 1) acc[m] = acc[m] + __shfl_xor_sync(0xffffffffu, acc[m], off);
    if constexpr (S == 1) {
      if (lane == 0 && n < a.N) {
#pragma unroll
        for (int m = 0; m < MB; ++m)
          if (m < a.M) gemv_store(a, m, n, acc[m]);
      }
    } else {
      if (lane == 0) {
#pragma unroll
        for (int m = 0; m < MB; ++m) part[warp][m] = acc[m];
      }
      __syncthreads();
      if (w == 0 && lane < MB && lane < a.M && n < a.N) {
        float p[S];
#pragma unroll
        for (int i = 0; i < S; ++i) p[i] = part[warp + i][lane];
        gemv_store(a, lane, n, gemv_warps_sum(p, S));
      }
      __syncthreads();  // the next rows overwrite part
    }
  }
}

// The launch flags of the decode GEMV: 16-byte loads of W and x where
// aligned, 2-byte loads of W.
inline int gemv_flags(const LinearArgs& a) {
  int flags = 0;
  const int64_t es = a.w_dtype == DType::F32 ? 4 : 2;
  if (((uintptr_t)a.w & 15u) == 0 && (a.w_stride * es) % 16 == 0) flags |= kGemvVecW;
  if (((uintptr_t)a.x & 15u) == 0 && a.x_stride % 4 == 0) flags |= kGemvVecX;
  if (((uintptr_t)a.w & 1u) == 0) flags |= kGemvAlign2W;
  return flags;
}


}  // namespace nm::cuda
