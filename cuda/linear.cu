// CUDA linear (decode GEMV, kernels.h); the math is cuda/linear_math.cuh.
#include <stdint.h>

#include "kernels.h"
#include "launch_util.cuh"
#include "linear_math.cuh"

namespace nm::cuda {

namespace {

// Warp per output row n; the 32 lane partials summed by a butterfly that
// gives every lane tree_sum_host's result (linear_math.cuh).
template <DType WT, int C, int MB>
__global__ void __launch_bounds__(kGemvWarps * kWarpSize) gemv_kernel(const LinearArgs a, int flags) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int64_t n = (int64_t)blockIdx.x * kGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kGemvWarps) {
    float acc[MB];
    gemv_lane_partial<WT, C, MB>(a, n, lane, flags, acc);
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int off = kWarpSize / 2; off > 0; off >>= 1) acc[m] = acc[m] + __shfl_xor_sync(0xffffffffu, acc[m], off);
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
        if (m < a.M) gemv_store(a, m, n, acc[m]);
    }
  }
}

template <DType WT, int C>
void launch_rows(const LinearArgs& a, int flags, cudaStream_t s) {
  const unsigned blocks = grid_for(a.N * kWarpSize, kGemvWarps * kWarpSize);
  const int threads = kGemvWarps * kWarpSize;
  if (a.M <= 1) gemv_kernel<WT, C, 1><<<blocks, threads, 0, s>>>(a, flags);
  else if (a.M <= 4) gemv_kernel<WT, C, 4><<<blocks, threads, 0, s>>>(a, flags);
  else gemv_kernel<WT, C, 16><<<blocks, threads, 0, s>>>(a, flags);
}

template <DType WT>
void launch_plain(const LinearArgs& a, int flags, cudaStream_t s) {
  if (gemv_chunk(WT, a.x_rounding) == 32) launch_rows<WT, 32>(a, flags, s);
  else launch_rows<WT, 8>(a, flags, s);
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

}  // namespace

cudaError_t linear_cuda(const LinearArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  int flags = 0;
  const int64_t es = a.w_dtype == DType::F32 ? 4 : 2;
  if (aligned16(a.w) && (a.w_stride * es) % 16 == 0) flags |= kGemvVecW;
  if (aligned16(a.x) && a.x_stride % 4 == 0) flags |= kGemvVecX;
  if (((uintptr_t)a.w & 1u) == 0) flags |= kGemvAlign2W;
  switch (a.w_dtype) {
    case DType::F32: launch_plain<DType::F32>(a, flags, stream); break;
    case DType::F16: launch_plain<DType::F16>(a, flags, stream); break;
    case DType::BF16: launch_plain<DType::BF16>(a, flags, stream); break;
    case DType::Q8_0: launch_rows<DType::Q8_0, 32>(a, flags, stream); break;
    case DType::Q4_0: launch_rows<DType::Q4_0, 32>(a, flags, stream); break;
    default: return cudaErrorNotSupported;  // check_args let no other format through
  }
  return cudaGetLastError();
}

}  // namespace nm::cuda
