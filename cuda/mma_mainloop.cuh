// The main loop of the pipelined tensor-core GEMMs (device code, sm_80 and
// newer): bf16 (linear's bf16 weights with bf16 inputs, cuda/linear_gemm.cu),
// f16 (linear's f16 weights, the inputs split in two f16 terms) and int8
// (qlinear's W8A8 / W4A8, cuda/qlinear_gemm.cu, and linear's Q8_0 / Q4_0
// weights with Q8Block inputs).
// Staged inputs A [M, a_ld] and weights W [N, w_ld] (elements of 2 or 1 bytes;
// 16-byte rows, zeros past K) go through the 3-stage cp.async pipeline of
// cuda/mma_tile_math.cuh; each warp keeps the sums of its 64 x 32 outputs
// (acc[i][j][q]: m16 tile i, n8 tile j, register q; float for bf16, exact
// int32 for int8) and hands them to the epilogue after each 32-byte k step
// (ep.after_step(b, acc), b the step's index along K) and after each 64-byte
// k tile (ep.after_tile(kt, KT, acc)), where a block-scaled or group-scaled
// format folds them into its float sums and restarts them.
#pragma once
#include "launch_util.cuh"
#include "mma_ptx.cuh"
#include "mma_tile_math.cuh"

namespace nm::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// The epilogue of a format with nothing to fold (bf16, W8A8).
struct MmaNoFold {
  template <class Acc>
  __device__ void after_step(int64_t, Acc (&)[4][4][4]) {}
  template <class Acc>
  __device__ void after_tile(int64_t, int64_t, Acc (&)[4][4][4]) {}
};

enum class MmaKind { BF16, F16, S8 };

template <MmaKind KIND, class Acc, class Epilogue>
__device__ __forceinline__ void mma_mainloop(const void* A, int64_t a_ld, const void* W, int64_t w_ld, int64_t M,
                                             int64_t N, int64_t K, int64_t m0, int64_t n0, uint16_t* smem,
                                             Epilogue& ep, Acc (&acc)[4][4][4]) {
  constexpr int EB = KIND == MmaKind::S8 ? 1 : 2;  // element bytes
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, wm = warp / 4, wn = warp % 4;
  constexpr int tile_k = kMmaTileKBytes / EB;  // elements of a k tile
  const int64_t KT = (K + tile_k - 1) / tile_k;
  auto load = [&](int stage, int64_t kt) {
    char* st = reinterpret_cast<char*>(smem) + stage * kMmaStageBytes;
#pragma unroll
    for (int i = 0; i < kMmaChunks / kMmaThreads; ++i) {
      const MmaChunk ch = mma_chunk(tid + i * kMmaThreads, m0, n0, kt * tile_k, M, N, K, a_ld, w_ld, EB);
      cp_async16(st + ch.smem, reinterpret_cast<const char*>(ch.is_b ? W : A) + ch.src, ch.bytes);
    }
  };
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0;
#pragma unroll
  for (int s = 0; s < kMmaStages - 1; ++s) {
    if (s < KT) load(s, s);
    cp_async_commit();
  }
  for (int64_t kt = 0; kt < KT; ++kt) {
    cp_async_wait<kMmaStages - 2>();  // tile kt has landed (for this thread's copies) ...
    __syncthreads();                  // ... and everyone's; the stage about to be refilled is no longer read
    const int64_t pf = kt + kMmaStages - 1;
    if (pf < KT) load((int)(pf % kMmaStages), pf);
    cp_async_commit();
    const uint16_t* st = smem + (int)(kt % kMmaStages) * (kMmaStageBytes / 2);
#pragma unroll
    for (int kk = 0; kk < kMmaTileKBytes / 2; kk += 16) {  // 16-bit units: 32-byte k steps
      uint32_t af[4][4], bfr[2][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) ldmatrix_x4(af[i], st + mma_a_offset(wm, i, kk, lane));
#pragma unroll
      for (int jp = 0; jp < 2; ++jp) ldmatrix_x4(bfr[jp], st + mma_b_offset(wn, jp, kk, lane));
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const uint32_t b0 = bfr[j / 2][(j % 2) * 2], b1 = bfr[j / 2][(j % 2) * 2 + 1];
          if constexpr (KIND == MmaKind::S8) mma_s8_16832(acc[i][j], af[i], b0, b1);
          else if constexpr (KIND == MmaKind::F16) mma_f16_16816(acc[i][j], af[i], b0, b1);
          else mma_bf16_16816(acc[i][j], af[i], b0, b1);
        }
      ep.after_step(kt * (kMmaTileKBytes / 32) + kk / 16, acc);
    }
    ep.after_tile(kt, KT, acc);
  }
  cp_async_wait<0>();
}
#endif

// The launches of a GEMM kernel on these tiles over the block tiles of an
// M x N product: kernel(args..., block_base) with 128 x 128 tiles, 256
// threads and the pipeline's dynamic shared memory (opted in first).
template <class... P, class... A>
cudaError_t launch_mma_tiles(void (*kernel)(P...), int64_t M, int64_t N, cudaStream_t stream, A... args) {
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kMmaSmemBytes);
  if (e != cudaSuccess) return e;
  return for_grid_rows((N + kMmaTileN - 1) / kMmaTileN, (M + kMmaTileM - 1) / kMmaTileM, [&](dim3 grid, int64_t base) {
    kernel<<<grid, kMmaThreads, kMmaSmemBytes, stream>>>(args..., base);
    return cudaGetLastError();
  });
}

}  // namespace nm::cuda
