// CUDA mixture-of-experts router and fused dispatch (kernels.h); the
// per-thread math and the workspace layout are cuda/moe_math.cuh.
#include <stdint.h>

#include "kernels.h"
#include "launch_util.cuh"
#include "mma_ptx.cuh"
#include "moe_math.cuh"

namespace nm::cuda {

namespace {

__global__ void __launch_bounds__(kMoeRouteThreads) moe_route_kernel(const MoeRouteArgs a) {
  const int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (t < a.T) moe_route_token(a, t);
}

// One block: counts (a warp per expert, 32 pairs per ballot), the padded
// offsets, the row blocks' experts, then the stable scatter (each warp
// walks the pairs in order, a pair's rank in its expert being the matches
// before it). Dynamic shared memory: 2E + 1 ints.
__global__ void __launch_bounds__(kMoeAlignThreads) moe_align_kernel(const int32_t* ids, int64_t P, int64_t E,
                                                                     MoeLayout L) {
  extern __shared__ int32_t sh[];
  int32_t* count = sh;
  int32_t* off = sh + E;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warps = blockDim.x / 32;
  for (int64_t e = warp; e < E; e += warps) {
    int32_t c = 0;
    for (int64_t b = 0; b < P; b += 32) {
      const int64_t i = b + lane;
      c += __popc(__ballot_sync(0xffffffffu, i < P && ids[i] == e));
    }
    if (lane == 0) count[e] = c;
  }
  // Pairs whose id is out of range keep pos -1 (their token's outputs: NaN).
  for (int64_t i = tid; i < P; i += blockDim.x)
    if (ids[i] < 0 || ids[i] >= E) L.pos[i] = -1;
  __syncthreads();
  if (tid == 0) {
    off[0] = 0;
    for (int64_t e = 0; e < E; ++e)
      off[e + 1] = off[e] + (int32_t)((count[e] + kMoeRows - 1) / kMoeRows * kMoeRows);
  }
  __syncthreads();
  for (int64_t e = tid; e <= E; e += blockDim.x) L.offsets[e] = off[e];
  for (int64_t e = warp; e < E; e += warps) {
    for (int64_t b = off[e] / kMoeRows + lane; b < off[e + 1] / kMoeRows; b += 32) L.block_expert[b] = (int32_t)e;
    int32_t at = off[e];
    for (int64_t b = 0; b < P; b += 32) {
      const int64_t i = b + lane;
      const bool match = i < P && ids[i] == e;
      const uint32_t bal = __ballot_sync(0xffffffffu, match);
      if (match) {
        const int32_t p = at + __popc(bal & ((1u << lane) - 1u));
        L.sorted[p] = (int32_t)i;
        L.pos[i] = p;
      }
      at += __popc(bal);
    }
    for (int64_t p = at + lane; p < off[e + 1]; p += 32) L.sorted[p] = -1;
  }
}

// Flags of the GEMV loaders for a matrix at w with rows `row_stride`
// elements apart (checked per block: expert pointers live on the device).
__device__ __forceinline__ int weight_flags(const void* w, DType t, int64_t row_stride) {
  const int64_t es = t == DType::F32 ? 4 : 2;
  int f = 0;
  if (((uintptr_t)w & 15u) == 0 && (row_stride * es) % 16 == 0 && (t == DType::F32 || t == DType::F16 || t == DType::BF16))
    f |= kGemvVecW;
  if (((uintptr_t)w & 1u) == 0) f |= kGemvAlign2W;
  return f;
}

__device__ __forceinline__ int input_flags(const float* x, int64_t xs) {
  return ((uintptr_t)x & 15u) == 0 && xs % 4 == 0 ? kGemvVecX : 0;
}

// GEMM 1 on row block `block_base + blockIdx.y`, columns 64·blockIdx.x ..:
// threads 0..15 load the rows' x (their tokens', rounded), 16..79 the gate
// rows, 80..143 the up rows (dequantised); then thread (ty, tx) accumulates
// row ty, columns tx + 16j of gate and up, and writes h.
template <DType WT>
__global__ void __launch_bounds__(kMoeGemmThreads) moe_gate_up_kernel(const MoeArgs a, const MoeLayout L,
                                                                      int64_t block_base) {
  __shared__ float xs[kMoeRows][kMoeTileK + 1];
  __shared__ float gs[kMoeTileN][kMoeTileK + 1];
  __shared__ float us[kMoeTileN][kMoeTileK + 1];
  const int64_t blk = block_base + blockIdx.y;
  if (blk >= L.offsets[a.E] / kMoeRows) return;
  const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows, n0 = (int64_t)blockIdx.x * kMoeTileN;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const LinearArgs xa = moe_input(a.x, a.x_stride, a.T, a.d, a.gate.x_rounding);
  const LinearArgs ga = moe_weight(a.gate, e, a.I, a.d), ua = moe_weight(a.up, e, a.I, a.d);
  const int xf = input_flags(a.x, a.x_stride);
  const int gf = weight_flags(ga.w, WT, a.gate.row_stride), uf = weight_flags(ua.w, WT, a.up.row_stride);
  const int32_t pair = tid < kMoeRows ? L.sorted[p0 + tid] : -1;
  float ag[4] = {0, 0, 0, 0}, au[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < a.d; k0 += kMoeTileK) {
    const int len = a.d - k0 < kMoeTileK ? (int)(a.d - k0) : kMoeTileK;
    float v[kMoeTileK];
    if (tid < kMoeRows) {
      if (pair >= 0) gemv_load_x<kMoeTileK>(xa, pair / a.k, k0, len, xf, v);
      else
#pragma unroll
        for (int q = 0; q < kMoeTileK; ++q) v[q] = 0.0f;
#pragma unroll
      for (int q = 0; q < kMoeTileK; ++q) xs[tid][q] = v[q];
    } else if (tid < kMoeRows + 2 * kMoeTileN) {
      const bool up = tid >= kMoeRows + kMoeTileN;
      const int r = tid - kMoeRows - (up ? kMoeTileN : 0);
      const int64_t n = n0 + r;
      if (n < a.I) gemv_load_w<WT, kMoeTileK>(up ? ua : ga, n, k0, len, up ? uf : gf, v);
      else
#pragma unroll
        for (int q = 0; q < kMoeTileK; ++q) v[q] = 0.0f;
      float(*dst)[kMoeTileK + 1] = up ? us : gs;
#pragma unroll
      for (int q = 0; q < kMoeTileK; ++q) dst[r][q] = v[q];
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kMoeTileK; ++kk) {
      const float xv = xs[ty][kk];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        ag[j] = fmaf(xv, gs[tx + 16 * j][kk], ag[j]);
        au[j] = fmaf(xv, us[tx + 16 * j][kk], au[j]);
      }
    }
    __syncthreads();
  }
  if (L.sorted[p0 + ty] < 0) return;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t n = n0 + tx + 16 * j;
    if (n < a.I) L.h[(p0 + ty) * a.I + n] = silu(ag[j]) * au[j];
  }
}

// GEMM 2: the same tiles over h (rows in place) and the down matrix; each
// row times its pair's routed weight.
template <DType WT>
__global__ void __launch_bounds__(kMoeGemmThreads) moe_down_kernel(const MoeArgs a, const MoeLayout L,
                                                                   int64_t block_base) {
  __shared__ float xs[kMoeRows][kMoeTileK + 1];
  __shared__ float ws[kMoeTileN][kMoeTileK + 1];
  const int64_t blk = block_base + blockIdx.y;
  if (blk >= L.offsets[a.E] / kMoeRows) return;
  const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows, n0 = (int64_t)blockIdx.x * kMoeTileN;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const LinearArgs xa = moe_input(L.h, a.I, L.rows, a.I, a.down.x_rounding);
  const LinearArgs da = moe_weight(a.down, e, a.d, a.I);
  const int xf = input_flags(L.h, a.I), wf = weight_flags(da.w, WT, a.down.row_stride);
  const bool real = tid < kMoeRows && L.sorted[p0 + tid] >= 0;
  float acc[4] = {0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < a.I; k0 += kMoeTileK) {
    const int len = a.I - k0 < kMoeTileK ? (int)(a.I - k0) : kMoeTileK;
    float v[kMoeTileK];
    if (tid < kMoeRows) {
      if (real) gemv_load_x<kMoeTileK>(xa, p0 + tid, k0, len, xf, v);
      else
#pragma unroll
        for (int q = 0; q < kMoeTileK; ++q) v[q] = 0.0f;
#pragma unroll
      for (int q = 0; q < kMoeTileK; ++q) xs[tid][q] = v[q];
    } else if (tid < kMoeRows + kMoeTileN) {
      const int r = tid - kMoeRows;
      const int64_t n = n0 + r;
      if (n < a.d) gemv_load_w<WT, kMoeTileK>(da, n, k0, len, wf, v);
      else
#pragma unroll
        for (int q = 0; q < kMoeTileK; ++q) v[q] = 0.0f;
#pragma unroll
      for (int q = 0; q < kMoeTileK; ++q) ws[r][q] = v[q];
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kMoeTileK; ++kk) {
      const float xv = xs[ty][kk];
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[j] = fmaf(xv, ws[tx + 16 * j][kk], acc[j]);
    }
    __syncthreads();
  }
  const int32_t pair = L.sorted[p0 + ty];
  if (pair < 0) return;
  const float w = a.weights[pair];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t n = n0 + tx + 16 * j;
    if (n < a.d) L.y[(p0 + ty) * a.d + n] = acc[j] * w;
  }
}

// I8 / I4 experts (moe_math.cuh): the float tiles' blocks. Threads 0..15
// stage the rows' inputs as the (first) product takes them, 16..79 its
// weight rows as integers; with GU also 80..143 up's weight rows and
// 144..159 the inputs as up takes them (its own input scale). Thread (ty,
// tx) keeps row ty, columns tx + 16j: I8 sums in acc, I4 per group in part,
// folded into acc at each group's end (moe_q_fold), as moe_qdot does.
template <bool GU, bool I4>
__global__ void __launch_bounds__(kMoeGemmThreads) moe_q_kernel(const MoeArgs a, const MoeLayout L,
                                                                int64_t block_base) {
  constexpr int kM = GU ? 2 : 1;  // products: gate and up, or down
  __shared__ float xs[kM][kMoeRows][kMoeTileK + 1];
  __shared__ float ws[kM][kMoeTileN][kMoeTileK + 1];
  const int64_t blk = block_base + blockIdx.y;
  if (blk >= L.offsets[a.E] / kMoeRows) return;
  const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows, n0 = (int64_t)blockIdx.x * kMoeTileN;
  const int64_t N = GU ? a.I : a.d, K = GU ? a.d : a.I;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  QLinearArgs q[kM];
  q[0] = GU ? moe_qweight(a.gate, e, a.I, a.d) : moe_qweight(a.down, e, a.d, a.I);
  if constexpr (GU) q[kM - 1] = moe_qweight(a.up, e, a.I, a.d);
  // The staging roles: input rows of product xm (row xr), or weight row wr of product wm.
  const int x_first = kMoeRows + kM * kMoeTileN;
  const bool stages_x = tid < kMoeRows || (GU && tid >= x_first && tid < x_first + kMoeRows);
  const int xm = tid < kMoeRows ? 0 : kM - 1, xr = tid < kMoeRows ? tid : tid - x_first;
  const bool stages_w = tid >= kMoeRows && tid < x_first;
  const int wm = (tid - kMoeRows) / kMoeTileN, wr = (tid - kMoeRows) % kMoeTileN;
  // (copies chosen once: indexing q by a thread's role would put it in local memory)
  const QLinearArgs qx = xm == 0 ? q[0] : q[kM - 1], qw = wm == 0 ? q[0] : q[kM - 1];
  const float* xrow = nullptr;
  if (stages_x) {
    const int32_t pair = L.sorted[p0 + xr];
    if (pair >= 0) xrow = GU ? a.x + (pair / a.k) * a.x_stride : L.h + (p0 + xr) * a.I;
  }
  float acc[kM][4], part[kM][4];
#pragma unroll
  for (int m = 0; m < kM; ++m)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[m][j] = part[m][j] = 0.0f;
  for (int64_t k0 = 0; k0 < K; k0 += kMoeTileK) {
    const int len = K - k0 < kMoeTileK ? (int)(K - k0) : kMoeTileK;
    float v[kMoeTileK];
    if (stages_x) {
      if (xrow) moe_q_load_x(qx, xrow, k0, len, v);
      else
#pragma unroll
        for (int j = 0; j < kMoeTileK; ++j) v[j] = 0.0f;
#pragma unroll
      for (int j = 0; j < kMoeTileK; ++j) xs[xm][xr][j] = v[j];
    } else if (stages_w) {
      const int64_t n = n0 + wr;
      if (n < N) moe_q_load_w(qw, n, k0, len, v);
      else
#pragma unroll
        for (int j = 0; j < kMoeTileK; ++j) v[j] = 0.0f;
#pragma unroll
      for (int j = 0; j < kMoeTileK; ++j) ws[wm][wr][j] = v[j];
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < kMoeTileK; ++kk) {
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        const float xv = xs[m][ty][kk];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if constexpr (I4) part[m][j] = fmaf(xv, ws[m][tx + 16 * j][kk], part[m][j]);
          else acc[m][j] = fmaf(xv, ws[m][tx + 16 * j][kk], acc[m][j]);
        }
      }
    }
    __syncthreads();
    if constexpr (I4) {
#pragma unroll
      for (int m = 0; m < kM; ++m)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (n0 + tx + 16 * j < N) moe_q_fold(q[m], n0 + tx + 16 * j, k0 + len, part[m][j], acc[m][j]);
    }
  }
  const int32_t pair = L.sorted[p0 + ty];
  if (pair < 0) return;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t n = n0 + tx + 16 * j;
    if (n >= N) continue;
    if constexpr (GU) L.h[(p0 + ty) * a.I + n] = silu(moe_q_out(q[0], n, acc[0][j])) * moe_q_out(q[kM - 1], n, acc[kM - 1][j]);
    else L.y[(p0 + ty) * a.d + n] = moe_q_out(q[0], n, acc[0][j]) * a.weights[pair];
  }
}

__global__ void __launch_bounds__(kMoeCombineThreads) moe_combine_kernel(const MoeArgs a, const MoeLayout L) {
  const int64_t total = a.T * a.d;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = i / a.d, c = i % a.d;
    a.out[t * a.out_stride + c] = moe_combine_value(a, L, t, c);
  }
}

// ---------------------------------------------------------------- bf16 experts on the tensor cores (moe_math.cuh)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// 32 zeros (padding rows, columns past N).
__device__ __forceinline__ void zero32(float (&v)[kMoeMmaTileK]) {
#pragma unroll
  for (int q = 0; q < kMoeMmaTileK; ++q) v[q] = 0.0f;
}
#endif

// bf16 experts on the tensor cores: GU, gate and up with h = silu(g) · u;
// else down with the routed weight. Threads 0..15 also stage the rows'
// inputs (the tokens' x, or rows of h; rounded to bf16, zeros on padding
// rows), thread t a weight row (gate rows for t < 128, up rows above; down:
// t < 128); warp w computes columns 16 w .. 16 w + 15.
template <bool GU>
__global__ void __launch_bounds__(kMoeMmaThreads) moe_bf16_mma_kernel(const MoeArgs a, const MoeLayout L,
                                                                      int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  __shared__ __align__(16) uint16_t xs[kMoeRows * kMoeMmaLd];
  __shared__ __align__(16) uint16_t ws[2][kMoeMmaTileN * kMoeMmaLd];
  const int64_t blk = block_base + blockIdx.y;
  if (blk >= L.offsets[a.E] / kMoeRows) return;
  const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows, n0 = (int64_t)blockIdx.x * kMoeMmaTileN;
  const int64_t N = GU ? a.I : a.d, K = GU ? a.d : a.I;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const LinearArgs xa = GU ? moe_input(a.x, a.x_stride, a.T, a.d, a.gate.x_rounding)
                           : moe_input(L.h, a.I, L.rows, a.I, a.down.x_rounding);
  const LinearArgs wa[2] = {GU ? moe_weight(a.gate, e, a.I, a.d) : moe_weight(a.down, e, a.d, a.I),
                            GU ? moe_weight(a.up, e, a.I, a.d) : LinearArgs{}};
  const int xf = GU ? input_flags(a.x, a.x_stride) : input_flags(L.h, a.I);
  const int m = GU ? tid / kMoeMmaTileN : 0, r = tid % kMoeMmaTileN;
  const int wf = weight_flags(wa[m].w, DType::BF16, GU ? (m ? a.up.row_stride : a.gate.row_stride) : a.down.row_stride);
  const bool loads_w = GU || tid < kMoeMmaTileN;
  const int32_t pair = tid < kMoeRows ? L.sorted[p0 + tid] : -1;
  float acc[2][2][4] = {};  // [gate / up or down][n8 tile][q]
  for (int64_t k0 = 0; k0 < K; k0 += kMoeMmaTileK) {
    const int len = K - k0 < kMoeMmaTileK ? (int)(K - k0) : kMoeMmaTileK;
    float v[kMoeMmaTileK];
    if (tid < kMoeRows) {
      if (pair >= 0) gemv_load_x<kMoeMmaTileK>(xa, GU ? pair / a.k : p0 + tid, k0, len, xf, v);
      else zero32(v);
      moe_mma_bits(v, xs + tid * kMoeMmaLd);
    }
    if (loads_w) {
      if (n0 + r < N) gemv_load_w<DType::BF16, kMoeMmaTileK>(wa[m], n0 + r, k0, len, wf, v);
      else zero32(v);
      moe_mma_bits(v, ws[m] + r * kMoeMmaLd);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kMoeMmaTileK; kk += 16) {
      uint32_t af[4];
      ldmatrix_x4(af, xs + moe_mma_a_offset(kk, lane));
#pragma unroll
      for (int mm = 0; mm < (GU ? 2 : 1); ++mm) {
        uint32_t bw[4];
        ldmatrix_x4(bw, ws[mm] + moe_mma_b_offset(warp, kk, lane));
#pragma unroll
        for (int j = 0; j < 2; ++j) mma_bf16_16816(acc[mm][j], af, bw[2 * j], bw[2 * j + 1]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q)
      moe_mma_store(a, L, GU, p0 + mma_c_row(lane, q), n0 + warp * 16 + j * 8 + mma_c_col(lane, q), acc[0][j][q],
                    acc[1][j][q]);
#else
  (void)a, (void)L, (void)block_base;
#endif
}

// Q8_0 / Q4_0 experts with Q8Block inputs on the int8 tensor cores
// (moe_math.cuh): GU, gate and up with h = silu(g) · u; else down with the
// routed weight. Threads 0..15 also stage the rows' inputs (two blocks of
// 32 per k tile, with their scales), thread t a weight row (gate rows for
// t < 128, up rows above; down: t < 128).
template <DType WT, bool GU>
__global__ void __launch_bounds__(kMoeMmaThreads) moe_q8_mma_kernel(const MoeArgs a, const MoeLayout L,
                                                                    int64_t block_base) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kRowBytes = kMoeMmaLd * 2;  // 80: 64 int8 and padding
  __shared__ __align__(16) int8_t xs[kMoeRows * kRowBytes];
  __shared__ __align__(16) int8_t ws[2][kMoeMmaTileN * kRowBytes];
  __shared__ float dxs[kMoeRows][2], dws[2][kMoeMmaTileN][2];
  const int64_t blk = block_base + blockIdx.y;
  if (blk >= L.offsets[a.E] / kMoeRows) return;
  const int64_t e = L.block_expert[blk], p0 = blk * kMoeRows, n0 = (int64_t)blockIdx.x * kMoeMmaTileN;
  const int64_t N = GU ? a.I : a.d, K = GU ? a.d : a.I, KB = K / kQ8Block;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const LinearArgs xa = GU ? moe_input(a.x, a.x_stride, a.T, a.d, a.gate.x_rounding)
                           : moe_input(L.h, a.I, L.rows, a.I, a.down.x_rounding);
  const LinearArgs wa[2] = {GU ? moe_weight(a.gate, e, a.I, a.d) : moe_weight(a.down, e, a.d, a.I),
                            GU ? moe_weight(a.up, e, a.I, a.d) : LinearArgs{}};
  const int32_t pair = tid < kMoeRows ? L.sorted[p0 + tid] : -1;
  const int m = GU ? tid / kMoeMmaTileN : 0, r = tid % kMoeMmaTileN;
  const bool loads_w = GU || tid < kMoeMmaTileN;
  int32_t acc[2][2][4] = {};  // [gate / up or down][n8 tile][q]
  float f[2][2][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kMoeQ8TileK) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t b = k0 / kQ8Block + h;
      __align__(16) int8_t q[kQ8Block];
      if (tid < kMoeRows) {
        float d = 0.0f;
        if (pair >= 0 && b < KB) d = q8block_stage_x(xa, GU ? pair / a.k : p0 + tid, b, q);
        else
#pragma unroll
          for (int j = 0; j < kQ8Block; ++j) q[j] = 0;
        int4* dst = reinterpret_cast<int4*>(xs + tid * kRowBytes + h * kQ8Block);
        dst[0] = *reinterpret_cast<const int4*>(q), dst[1] = *reinterpret_cast<const int4*>(q + 16);
        dxs[tid][h] = d;
      }
      if (loads_w) {
        float d = 0.0f;
        if (n0 + r < N && b < KB) d = ggml_stage_w<WT>(wa[m], n0 + r, b, q);
        else
#pragma unroll
          for (int j = 0; j < kQ8Block; ++j) q[j] = 0;
        int4* dst = reinterpret_cast<int4*>(ws[m] + r * kRowBytes + h * kQ8Block);
        dst[0] = *reinterpret_cast<const int4*>(q), dst[1] = *reinterpret_cast<const int4*>(q + 16);
        dws[m][r][h] = d;
      }
    }
    __syncthreads();
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (k0 / kQ8Block + h >= KB) break;
      const int kk = 16 * h;  // 16-bit units: the k step's 32 bytes
      uint32_t af[4];
      ldmatrix_x4(af, reinterpret_cast<const uint16_t*>(xs) + moe_mma_a_offset(kk, lane));
#pragma unroll
      for (int mm = 0; mm < (GU ? 2 : 1); ++mm) {
        uint32_t bw[4];
        ldmatrix_x4(bw, reinterpret_cast<const uint16_t*>(ws[mm]) + moe_mma_b_offset(warp, kk, lane));
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          mma_s8_16832(acc[mm][j], af, bw[2 * j], bw[2 * j + 1]);
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const float dx = dxs[mma_c_row(lane, q)][h], dw = dws[mm][warp * 16 + j * 8 + mma_c_col(lane, q)][h];
            f[mm][j][q] = q8_block_step(f[mm][j][q], acc[mm][j][q], dx, dw);
            acc[mm][j][q] = 0;
          }
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q)
      moe_mma_store(a, L, GU, p0 + mma_c_row(lane, q), n0 + warp * 16 + j * 8 + mma_c_col(lane, q), f[0][j][q],
                    f[1][j][q]);
#else
  (void)a, (void)L, (void)block_base;
#endif
}

// The tensor-core GEMMs over every row block, `n_cols` outputs each.
cudaError_t moe_mma(void (*kernel)(const MoeArgs, const MoeLayout, int64_t), const MoeArgs& a, const MoeLayout& L,
                    int64_t n_cols, cudaStream_t stream) {
  return for_grid_rows((n_cols + kMoeMmaTileN - 1) / kMoeMmaTileN, L.blocks, [&](dim3 grid, int64_t base) {
    kernel<<<grid, kMoeMmaThreads, 0, stream>>>(a, L, base);
    return cudaGetLastError();
  });
}

// Launches kernel<WT> for every row block (for_grid_rows: grid.y at most
// 65535 per launch).
template <template <DType> class Launch>
cudaError_t for_format(DType t, const MoeArgs& a, const MoeLayout& L, int64_t n_cols, cudaStream_t stream) {
  return for_grid_rows((n_cols + kMoeTileN - 1) / kMoeTileN, L.blocks, [&](dim3 grid, int64_t base) {
    switch (t) {
      case DType::F32: Launch<DType::F32>::run(grid, a, L, base, stream); break;
      case DType::F16: Launch<DType::F16>::run(grid, a, L, base, stream); break;
      case DType::BF16: Launch<DType::BF16>::run(grid, a, L, base, stream); break;
      case DType::Q8_0: Launch<DType::Q8_0>::run(grid, a, L, base, stream); break;
      case DType::Q4_0: Launch<DType::Q4_0>::run(grid, a, L, base, stream); break;
      default: return cudaErrorNotSupported;
    }
    return cudaGetLastError();
  });
}

// The I8 / I4 experts' kernel over every row block, `n_cols` outputs each.
template <bool GU>
cudaError_t moe_q(const MoeArgs& a, const MoeLayout& L, int64_t n_cols, cudaStream_t stream) {
  const bool i4 = (GU ? a.gate.dtype : a.down.dtype) == DType::I4;
  return for_grid_rows((n_cols + kMoeTileN - 1) / kMoeTileN, L.blocks, [&](dim3 grid, int64_t base) {
    if (i4) moe_q_kernel<GU, true><<<grid, kMoeGemmThreads, 0, stream>>>(a, L, base);
    else moe_q_kernel<GU, false><<<grid, kMoeGemmThreads, 0, stream>>>(a, L, base);
    return cudaGetLastError();
  });
}

template <DType WT>
struct GateUp {
  static void run(dim3 g, const MoeArgs& a, const MoeLayout& L, int64_t base, cudaStream_t s) {
    moe_gate_up_kernel<WT><<<g, kMoeGemmThreads, 0, s>>>(a, L, base);
  }
};
template <DType WT>
struct Down {
  static void run(dim3 g, const MoeArgs& a, const MoeLayout& L, int64_t base, cudaStream_t s) {
    moe_down_kernel<WT><<<g, kMoeGemmThreads, 0, s>>>(a, L, base);
  }
};

}  // namespace

cudaError_t moe_route_cuda(const MoeRouteArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int64_t blocks = (a.T + kMoeRouteThreads - 1) / kMoeRouteThreads;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  moe_route_kernel<<<(unsigned)blocks, kMoeRouteThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

size_t moe_cuda_workspace_bytes(const MoeArgs& a) { return moe_layout(a.T, a.k, a.E, a.d, a.I, nullptr, nullptr); }

cudaError_t moe_cuda(const MoeArgs& a, cudaStream_t stream, void* workspace) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int64_t P = a.T * a.k;
  if (P > 0x7fffffff - a.E * kMoeRows) return cudaErrorInvalidValue;  // int32 rows
  const size_t shared = (size_t)(2 * a.E + 1) * sizeof(int32_t);
  if (shared > 48 * 1024) return cudaErrorNotSupported;
  void* own = nullptr;
  if (!workspace) {
    const cudaError_t e = cudaMallocAsync(&own, moe_cuda_workspace_bytes(a), stream);
    if (e != cudaSuccess) return e;
    workspace = own;
  }
  MoeLayout L;
  moe_layout(a.T, a.k, a.E, a.d, a.I, workspace, &L);
  moe_align_kernel<<<1, kMoeAlignThreads, shared, stream>>>(a.ids, P, a.E, L);
  cudaError_t e = cudaGetLastError();
  // On sm_80+ the tensor cores: bf16 experts with bf16 inputs, Q8_0 / Q4_0
  // ones with Q8Block inputs; every other format (I8 / I4 included) on the
  // CUDA cores.
  const bool mma = require_sm80() == cudaSuccess;
  const bool q4 = a.gate.dtype == DType::Q4_0;
  if (e == cudaSuccess) {
    if (mma && moe_mma_format(a.gate) && moe_mma_format(a.up))
      e = moe_mma(moe_bf16_mma_kernel<true>, a, L, a.I, stream);
    else if (mma && moe_mma_q8_format(a.gate) && a.up.dtype == a.gate.dtype && moe_mma_q8_format(a.up))
      e = moe_mma(q4 ? moe_q8_mma_kernel<DType::Q4_0, true> : moe_q8_mma_kernel<DType::Q8_0, true>, a, L, a.I, stream);
    else if (moe_quamba(a.gate.dtype))
      e = moe_q<true>(a, L, a.I, stream);
    else
      e = for_format<GateUp>(a.gate.dtype, a, L, a.I, stream);
  }
  if (e == cudaSuccess) {
    if (mma && moe_mma_format(a.down))
      e = moe_mma(moe_bf16_mma_kernel<false>, a, L, a.d, stream);
    else if (mma && moe_mma_q8_format(a.down))
      e = moe_mma(a.down.dtype == DType::Q4_0 ? moe_q8_mma_kernel<DType::Q4_0, false>
                                              : moe_q8_mma_kernel<DType::Q8_0, false>,
                  a, L, a.d, stream);
    else if (moe_quamba(a.down.dtype))
      e = moe_q<false>(a, L, a.d, stream);
    else
      e = for_format<Down>(a.down.dtype, a, L, a.d, stream);
  }
  if (e == cudaSuccess) {
    moe_combine_kernel<<<grid_for(a.T * a.d, kMoeCombineThreads), kMoeCombineThreads, 0, stream>>>(a, L);
    e = cudaGetLastError();
  }
  if (own) {
    const cudaError_t f = cudaFreeAsync(own, stream);
    if (e == cudaSuccess) e = f;
  }
  return e;
}

}  // namespace nm::cuda
