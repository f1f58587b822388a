// CUDA linear (decode GEMV, kernels.h); the math is cuda/linear_math.cuh.
#include <stdint.h>

#include "kernels.h"
#include "launch_util.cuh"
#include "linear_gemm.h"
#include "gemv_kernel.cuh"
#include "linear_math.cuh"
#include "gemv_q8_math.cuh"

namespace nm::cuda {

namespace {

// Q8_0 / Q4_0 weights with K a multiple of 256 and 16-byte aligned rows (so
// every run of up to 32 blocks that the warp reads at once is a whole number
// of 16-byte vectors): per round the warp copies the 32 consecutive blocks
// of its lanes into shared memory with 16-byte loads, then lane l unpacks
// block l from there (word loads and a funnel shift for the 2-byte offset)
// and accumulates it as gemv_lane_partial does: the same chunks per lane in
// the same order, so the same sums.
template <DType WT, int MB>
__global__ void __launch_bounds__(kGemvWarps * kWarpSize) gemv_block_kernel(const LinearArgs a, int flags) {
  constexpr int BB = WT == DType::Q8_0 ? 34 : 18, QW = WT == DType::Q8_0 ? 8 : 4, SPAN = kWarpSize * BB;
  __shared__ __align__(16) uint32_t sbuf[kGemvWarps][SPAN / 4 + 4];  // + a word past the span for the shift
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  uint32_t* sw = sbuf[warp];
  const int64_t chunks = a.K / 32;
  gemv_begin<WT>(a, (int64_t)blockIdx.x * kGemvWarps, kGemvWarps, flags);
  for (int64_t n = (int64_t)blockIdx.x * kGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kGemvWarps) {
    const uint8_t* row = static_cast<const uint8_t*>(a.w) + n * (a.w_stride / 32) * BB;
    float acc[MB];
#pragma unroll
    for (int m = 0; m < MB; ++m) acc[m] = 0.0f;
    for (int64_t c0 = 0; c0 < chunks; c0 += kWarpSize) {
      const int nb = chunks - c0 < kWarpSize ? (int)(chunks - c0) : kWarpSize;
      const uint4* src = reinterpret_cast<const uint4*>(row + c0 * BB);
      uint4* dst = reinterpret_cast<uint4*>(sw);
      for (int i = lane; i < nb * BB / 16; i += kWarpSize) dst[i] = __ldg(src + i);
      __syncwarp();
      if (lane < nb) {
        const int base = lane * BB, qb = base + 2;
        const uint16_t dbits = reinterpret_cast<const uint16_t*>(sw)[base / 2];
        const int w0 = qb / 4, sh = (qb % 4) * 8;
        uint32_t q[QW];
#pragma unroll
        for (int i = 0; i < QW; ++i) q[i] = __funnelshift_r(sw[w0 + i], sw[w0 + i + 1], sh);
        float w[32];
        block_dequant<WT>(dbits, q, w);
        const int64_t k0 = (c0 + lane) * 32;
#pragma unroll
        for (int m = 0; m < MB; ++m) {
          if (m >= a.M) break;
          float x[32];
          gemv_load_x<32>(a, m, k0, 32, flags, x);
#pragma unroll
          for (int j = 0; j < 32; ++j) acc[m] = fmaf(x[j], w[j], acc[m]);
        }
      }
      __syncwarp();  // the next round overwrites the span
    }
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

// Q8_0 / Q4_0 with Q8Block inputs on integer dot products (gemv_q8_math.cuh):
// the block stages the quantized inputs once, then a warp per output row.
template <DType WT, int MB>
__global__ void __launch_bounds__(kGemvWarps * kWarpSize) gemv_q8_kernel(const LinearArgs a, int flags) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int64_t nb = a.K / kQ8Block;
  uint32_t* sx = reinterpret_cast<uint32_t*>(smem);
  float* sd = reinterpret_cast<float*>(smem + gemv_q8_x_bytes(a));
  gemv_begin<WT>(a, (int64_t)blockIdx.x * kGemvWarps, kGemvWarps, flags);
  for (int64_t i = threadIdx.x; i < a.M * nb; i += blockDim.x) gemv_q8_stage(a, i / nb, i % nb, sx, sd);
  __syncthreads();
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int64_t n = (int64_t)blockIdx.x * kGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kGemvWarps) {
    float f[MB];
    gemv_q8_lane_partial<WT, MB>(a, n, lane, flags, sx, sd, f);
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int off = kWarpSize / 2; off > 0; off >>= 1) f[m] = f[m] + __shfl_xor_sync(0xffffffffu, f[m], off);
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < MB; ++m)
        if (m < a.M) gemv_store(a, m, n, f[m]);
    }
  }
}

template <DType WT>
void launch_q8(const LinearArgs& a, int flags, cudaStream_t s) {
  // Each block stages the inputs: at most a few blocks per multiprocessor,
  // looping over rows.
  const unsigned blocks = blocks_per_sm_cap(grid_for(a.N * kWarpSize, kGemvWarps * kWarpSize), 8);
  const int threads = kGemvWarps * kWarpSize;
  const size_t bytes = (size_t)gemv_q8_smem_bytes(a);
  if (a.M <= 1) launch_gemv(gemv_q8_kernel<WT, 1>, blocks, threads, bytes, s, a, flags);
  else if (a.M <= 4) launch_gemv(gemv_q8_kernel<WT, 4>, blocks, threads, bytes, s, a, flags);
  else launch_gemv(gemv_q8_kernel<WT, 16>, blocks, threads, bytes, s, a, flags);
}

template <DType WT, int C, int S, int U>
void launch_rows(const LinearArgs& a, int flags, cudaStream_t s) {
  const unsigned blocks = grid_for(a.N * S * kWarpSize, kGemvWarps * kWarpSize);
  const int threads = kGemvWarps * kWarpSize;
  if (a.M <= 1) launch_gemv(gemv_kernel<WT, C, 1, S, U>, blocks, threads, 0, s, a, flags);
  else if (a.M <= 4) launch_gemv(gemv_kernel<WT, C, 4, S, U>, blocks, threads, 0, s, a, flags);
  else launch_gemv(gemv_kernel<WT, C, 16, S, U>, blocks, threads, 0, s, a, flags);
}

// Warps per row from gemv_row_warps; one input row issues two chunks' loads
// together below 4 warps per row (in_proj K 2048 x N 8192: 14.6 -> 13.5 us
// on an H200).
template <DType WT, int C>
void launch_rows(const LinearArgs& a, int flags, cudaStream_t s) {
  if constexpr (C == 8) {  // split only plain chunks (gemv_row_warps): no split kernels for the others
    const int S = gemv_row_warps(a, C);
    if (S == 4) return launch_rows<WT, C, 4, 1>(a, flags, s);
    if (S == 2) return launch_rows<WT, C, 2, 2>(a, flags, s);
  }
  launch_rows<WT, C, 1, 2>(a, flags, s);
}

template <DType WT>
void launch_plain(const LinearArgs& a, int flags, cudaStream_t s) {
  if (gemv_chunk(WT, a.x_rounding) == 32) launch_rows<WT, 32>(a, flags, s);
  else launch_rows<WT, 8>(a, flags, s);
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

template <DType WT>
void launch_block_rows(const LinearArgs& a, int flags, cudaStream_t s) {
  const unsigned blocks = grid_for(a.N * kWarpSize, kGemvWarps * kWarpSize);
  const int threads = kGemvWarps * kWarpSize;
  if (a.M <= 1) launch_gemv(gemv_block_kernel<WT, 1>, blocks, threads, 0, s, a, flags);
  else if (a.M <= 4) launch_gemv(gemv_block_kernel<WT, 4>, blocks, threads, 0, s, a, flags);
  else launch_gemv(gemv_block_kernel<WT, 16>, blocks, threads, 0, s, a, flags);
}

void launch_blocks(const LinearArgs& a, int flags, cudaStream_t s) {
  if (a.w_dtype == DType::Q8_0) launch_block_rows<DType::Q8_0>(a, flags, s);
  else launch_block_rows<DType::Q4_0>(a, flags, s);
}

}  // namespace

cudaError_t linear_cuda(const LinearArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  if (a.M > kGemvMaxRows) {
    // Tensor cores where the products are exact (bf16; f16 with the inputs
    // split in two f16 terms; int8 with block scales), else the CUDA cores.
    if (a.w_dtype == DType::BF16 && a.x_rounding == ActRounding::BF16) {
      cudaError_t e = linear_gemm_bf16_mma(a, stream);
      if (e != cudaErrorNotSupported) return e;
      e = linear_gemm_bf16(a, stream);           // W not 16-byte aligned: WMMA
      if (e != cudaErrorNotSupported) return e;  // below compute capability 8.0: the SIMT GEMM
    }
    if (a.w_dtype == DType::F16 && a.x_rounding == ActRounding::None) {
      const cudaError_t e = linear_gemm_f16_mma(a, stream);
      if (e != cudaErrorNotSupported) return e;  // unaligned W or below compute capability 8.0: the SIMT GEMM
    }
    if ((a.w_dtype == DType::Q8_0 || a.w_dtype == DType::Q4_0) && a.x_rounding == ActRounding::Q8Block) {
      const cudaError_t e = linear_gemm_q8_mma(a, stream);
      if (e != cudaErrorNotSupported) return e;  // below compute capability 8.0: the SIMT GEMM
    }
    return linear_gemm_simt(a, stream);
  }
  const int flags = gemv_flags(a) | (pdl_enabled() ? kGemvPdl : 0);
  if (gemv_q8_usable(a)) {
    if (a.w_dtype == DType::Q8_0) launch_q8<DType::Q8_0>(a, flags, stream);
    else launch_q8<DType::Q4_0>(a, flags, stream);
    return cudaGetLastError();
  }
  switch (a.w_dtype) {
    case DType::F32: launch_plain<DType::F32>(a, flags, stream); break;
    case DType::F16: launch_plain<DType::F16>(a, flags, stream); break;
    case DType::BF16: launch_plain<DType::BF16>(a, flags, stream); break;
    case DType::Q8_0:
    case DType::Q4_0:
      // Whole 16-byte vectors per span: K a multiple of 256, the weight and
      // every row start 16-byte aligned.
      if (a.K % 256 == 0 && aligned16(a.w) && a.w_stride / 32 * (a.w_dtype == DType::Q8_0 ? 34 : 18) % 16 == 0)
        launch_blocks(a, flags, stream);
      else if (a.w_dtype == DType::Q8_0) launch_rows<DType::Q8_0, 32>(a, flags, stream);
      else launch_rows<DType::Q4_0, 32>(a, flags, stream);
      break;
    default: return cudaErrorNotSupported;  // check_args let no other format through
  }
  return cudaGetLastError();
}

}  // namespace nm::cuda
