// CUDA qlinear (decode GEMV of the I8 / I4 formats, kernels.h); the math is
// cuda/qlinear_math.cuh.
#include <stdint.h>

#include "kernels.h"
#include "launch_util.cuh"
#include "qlinear_math.cuh"

namespace nm::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;

template <int MB>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize) w8a8_kernel(const QLinearArgs a, float inv, int flags) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int64_t n = (int64_t)blockIdx.x * kQGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kQGemvWarps) {
    int32_t acc[MB];
    uint32_t nan;
    w8a8_lane_partial<MB>(a, n, lane, inv, flags, acc, nan);
#pragma unroll
    for (int off = kWarpSize / 2; off > 0; off >>= 1) {
#pragma unroll
      for (int m = 0; m < MB; ++m) acc[m] += __shfl_xor_sync(kFull, acc[m], off);
      nan |= __shfl_xor_sync(kFull, nan, off);
    }
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
        if (m < a.M) w8a8_store(a, m, n, acc[m], (nan >> m) & 1u);
    }
  }
}

// Rounds of 32 groups: lane l sums group 32 r + l, then every lane runs the
// chain over the round's groups in order (the sums and scales broadcast).
template <int MB>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize) w4a8_kernel(const QLinearArgs a, float inv, int flags) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  for (int64_t n = (int64_t)blockIdx.x * kQGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kQGemvWarps) {
    float f[MB];
    uint32_t nan = 0;
#pragma unroll
    for (int m = 0; m < MB; ++m) f[m] = 0.0f;
    for (int64_t g0 = 0; g0 < G; g0 += kWarpSize) {
      int32_t isum[MB];
#pragma unroll
      for (int m = 0; m < MB; ++m) isum[m] = 0;
      const int64_t g = g0 + lane;
      float s = 0.0f;
      if (g < G) {
        w4a8_group_sums<MB>(a, n, g, inv, flags, isum, nan);
        s = a.w_scales[n * G + g];
      }
      const int count = G - g0 < kWarpSize ? (int)(G - g0) : kWarpSize;
      for (int j = 0; j < count; ++j) {
        const float sj = __shfl_sync(kFull, s, j);
#pragma unroll
        for (int m = 0; m < MB; ++m) f[m] = w4a8_step(f[m], __shfl_sync(kFull, isum[m], j), sj);
      }
    }
#pragma unroll
    for (int off = kWarpSize / 2; off > 0; off >>= 1) nan |= __shfl_xor_sync(kFull, nan, off);
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
        if (m < a.M) w4a8_store(a, m, n, f[m], (nan >> m) & 1u);
    }
  }
}

template <int MB>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize) w4a16_kernel(const QLinearArgs a, int flags) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int64_t n = (int64_t)blockIdx.x * kQGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kQGemvWarps) {
    float acc[MB];
    w4a16_lane_partial<MB>(a, n, lane, flags, acc);
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int off = kWarpSize / 2; off > 0; off >>= 1) acc[m] = acc[m] + __shfl_xor_sync(kFull, acc[m], off);
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
        if (m < a.M) w4a16_store(a, m, n, acc[m]);
    }
  }
}

template <int MB>
void launch(const QLinearArgs& a, float inv, int flags, cudaStream_t s) {
  const int threads = kQGemvWarps * kWarpSize;
  const unsigned blocks = grid_for(a.N * kWarpSize, threads);
  if (a.w_dtype == DType::I8) w8a8_kernel<MB><<<blocks, threads, 0, s>>>(a, inv, flags);
  else if (a.x_scale > 0.0f) w4a8_kernel<MB><<<blocks, threads, 0, s>>>(a, inv, flags);
  else w4a16_kernel<MB><<<blocks, threads, 0, s>>>(a, flags);
}

}  // namespace

cudaError_t qlinear_cuda(const QLinearArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  QLinearArgs b = a;
  if (!(b.x_scale > 0.0f)) b.xq = nullptr;  // W4A16 reads x
  const float inv = b.x_scale > 0.0f ? 1.0f / b.x_scale : 0.0f;
  const int flags = (((uintptr_t)b.w & 15u) == 0 && b.w_stride % 16 == 0) ? kQGemvVecW : 0;
  if (b.M <= 1) launch<1>(b, inv, flags, stream);
  else if (b.M <= 4) launch<4>(b, inv, flags, stream);
  else launch<16>(b, inv, flags, stream);
  return cudaGetLastError();
}

}  // namespace nm::cuda
