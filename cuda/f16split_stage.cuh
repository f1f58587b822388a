// The device staging of float inputs split in two f16 terms
// (cuda/f16split_math.cuh), for the f16 tensor-core GEMMs of linear (f16
// weights) and qlinear (W4A16). Device code.
#pragma once
#include <cuda_runtime.h>

#include "f16split_math.cuh"

namespace nm::cuda {

// The staged rows A [M2, a_ld] and 1 / s per row of x: a block per group of
// 8 rows (grid-strided); each row's scale from its largest finite magnitude.
template <class Args>
__global__ void __launch_bounds__(256) stage_f16split_rows_kernel(const Args a, uint16_t* xs, int64_t a_ld, float* inv_s) {
  __shared__ float amax_sh[8][32];
  __shared__ float scale_sh[8];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;  // warp r: row 8 g + r
  const int64_t groups = (a.M + 7) / 8;
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t m = g * 8 + warp;
    float amax = 0.0f;
    if (m < a.M) {
      const float* xr = x_row(a, m);
      for (int64_t k = lane; k < a.K; k += 32) {
        const float v = fabsf(xr[k]);
        if (v > amax && v - v == 0.0f) amax = v;
      }
    }
    amax_sh[warp][lane] = amax;
    __syncwarp();
    if (lane == 0) {
      float mx = 0.0f;
      for (int l = 0; l < 32; ++l) mx = fmaxf(mx, amax_sh[warp][l]);
      const float sc = f16split_scale(mx);
      scale_sh[warp] = sc;
      if (m < a.M) inv_s[m] = 1.0f / sc;
    }
    __syncthreads();
    // 16 staged rows: R = 16 g + r, r < 8 hi terms of row 8 g + r, r >= 8 lo terms.
    for (int64_t e = threadIdx.x; e < 16 * a_ld; e += blockDim.x) {
      const int r = (int)(e / a_ld);
      const int64_t k = e % a_ld, R = g * 16 + r, mr = f16split_x_row(R);
      uint16_t v = 0;
      if (mr < a.M && k < a.K) v = f16split_term(x_row(a, mr)[k] * scale_sh[r % 8], f16split_is_lo(R));
      xs[R * a_ld + k] = v;
    }
    __syncthreads();
  }
}

// Launches it over the row groups of a.
template <class Args>
inline void stage_f16split_rows(const Args& a, uint16_t* xs, int64_t a_ld, float* inv_s, cudaStream_t stream) {
  const int64_t groups = f16split_rows(a.M) / 16;
  stage_f16split_rows_kernel<Args><<<(unsigned)(groups < 65535 * 16 ? groups : 65535 * 16), 256, 0, stream>>>(a, xs, a_ld, inv_s);
}

}  // namespace nm::cuda
