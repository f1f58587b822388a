// CUDA qlinear (decode GEMV of the I8 / I4 formats, kernels.h); the math is
// cuda/qlinear_math.cuh.
#include <stdint.h>

#include "kernels.h"
#include "launch_util.cuh"
#include "qlinear_gemm.h"
#include "qlinear_math.cuh"
#include "qlinear_row_math.cuh"
#include "pdl.cuh"

namespace nm::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;

// Float inputs of the int8 schemes: the block quantizes the M x K inputs
// once into shared memory (qx_value per element, as the lanes would; rows
// kXqPad-aligned), and its warps read them as xq. Returns the view to read
// and the rows holding a NaN (bit m). Every thread of the block calls it.
//
// Staged or not is a template parameter, not a run-time flag: where one
// kernel body let xq be either the parameter's pointer or the shared
// buffer, nvcc (CUDA 13, sm_90) read it with global loads in both cases,
// and the staged launch faulted (cudaErrorInvalidAddressSpace) on an H200.
constexpr int64_t kXqPad = 16;

template <bool kStaged>
__device__ QLinearArgs stage_xq(const QLinearArgs& a, float inv, int8_t* sx, uint32_t* snan, uint32_t& nan) {
  if constexpr (!kStaged) {  // int8 inputs given, or too many to stage
    (void)inv, (void)sx, (void)snan;
    nan = 0;
    return a;
  }
  const int64_t Kp = (a.K + kXqPad - 1) / kXqPad * kXqPad, total = a.M * Kp;
  if (threadIdx.x == 0) *snan = 0;
  __syncthreads();
  uint32_t mine = 0;
  // Four consecutive elements per thread and round (Kp is a multiple of 16:
  // they never straddle rows), kStageRounds rounds' loads issued before any
  // is used, so that a block waits for one load latency, not one per element.
  constexpr int kStageRounds = 4;
  const int64_t stride = (int64_t)blockDim.x * 4;
  for (int64_t base = (int64_t)threadIdx.x * 4; base < total; base += stride * kStageRounds) {
    float v[kStageRounds][4];
#pragma unroll
    for (int u = 0; u < kStageRounds; ++u) {
      const int64_t i = base + u * stride, m = i / Kp, k = i % Kp;
#pragma unroll
      for (int e = 0; e < 4; ++e) v[u][e] = 0.0f;
      if (i >= total) continue;
      const float* xr = x_row(a, m) + k;
      if (k + 4 <= a.K && ((uintptr_t)xr & 15u) == 0) {
        const float4 f = *reinterpret_cast<const float4*>(xr);
        v[u][0] = f.x, v[u][1] = f.y, v[u][2] = f.z, v[u][3] = f.w;
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (k + e < a.K) v[u][e] = xr[e];
      }
    }
#pragma unroll
    for (int u = 0; u < kStageRounds; ++u) {
      const int64_t i = base + u * stride, m = i / Kp, k = i % Kp;
      if (i >= total) continue;
      uint32_t word = 0;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        bool isnan = false;
        const int32_t q = k + e < a.K ? quantize_x(v[u][e], inv, isnan) : 0;
        if (isnan) mine |= 1u << m;
        word |= (uint32_t)(q & 0xff) << (8 * e);
      }
      *reinterpret_cast<uint32_t*>(sx + i) = word;  // i % 4 == 0, sx 16-byte aligned
    }
  }
  if (mine) atomicOr(snan, mine);
  __syncthreads();
  nan = *snan;
  QLinearArgs v = a;
  v.xq = sx, v.xq_stride = Kp;
  return v;
}

// Shared memory of stage_xq: the rows and the NaN mask.
size_t xq_smem_bytes(const QLinearArgs& a) {
  return a.xq ? 0 : (size_t)(a.M * ((a.K + kXqPad - 1) / kXqPad * kXqPad)) + 16;
}

// The quantized GEMVs' start (cuda/pdl.cuh): let the next kernel be
// scheduled; under a programmatic launch, the first weight row of each of the
// block's warps into L2, then wait for the predecessor.
__device__ __forceinline__ void qgemv_begin(const QLinearArgs& a, int flags) {
  pdl_trigger();
  const int64_t n = (int64_t)blockIdx.x * kQGemvWarps + threadIdx.x / kWarpSize;
  if ((flags & kQGemvPdl) && n < a.N) {
    const int64_t bytes = a.w_dtype == DType::I4 ? (a.K + 1) / 2 : a.K;
    prefetch_l2_span(static_cast<const uint8_t*>(a.w) + n * a.w_stride, bytes, threadIdx.x % kWarpSize, kWarpSize);
  }
  pdl_wait();
}

template <int MB, bool kStaged>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize) w8a8_kernel(const QLinearArgs args, float inv, int flags) {
  extern __shared__ __align__(16) int8_t smem[];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  qgemv_begin(args, flags);
  uint32_t staged_nan;
  const QLinearArgs a = stage_xq<kStaged>(args, inv, smem + 16, reinterpret_cast<uint32_t*>(smem), staged_nan);
  for (int64_t n = (int64_t)blockIdx.x * kQGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kQGemvWarps) {
    int32_t acc[MB];
    uint32_t nan;
    w8a8_lane_partial<MB>(a, n, lane, inv, flags, acc, nan);
    nan |= staged_nan;
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

// Rounds of 32 groups: lane l sums group 32 r + l and leaves the sums and
// the group's scale in shared memory; then lane m runs input row m's chain
// over the round's groups in order (the rows' chains in parallel). Float
// inputs too many to stage, quantized where they are read.
template <int MB>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize) w4a8_kernel(const QLinearArgs a, float inv, int flags) {
  __shared__ int32_t s_isum[kQGemvWarps][kWarpSize][MB];
  __shared__ float s_scale[kQGemvWarps][kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  qgemv_begin(a, flags);
  const uint32_t staged_nan = 0;
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  const bool chain = lane < MB && lane < a.M;
  for (int64_t n = (int64_t)blockIdx.x * kQGemvWarps + warp; n < a.N; n += (int64_t)gridDim.x * kQGemvWarps) {
    float f = 0.0f;  // row `lane`'s chain
    uint32_t nan = staged_nan;
    for (int64_t g0 = 0; g0 < G; g0 += kWarpSize) {
      int32_t isum[MB];
#pragma unroll
      for (int m = 0; m < MB; ++m) isum[m] = 0;
      const int64_t g = g0 + lane;
      float sc = 0.0f;
      if (g < G) {
        w4a8_group_sums<MB>(a, n, g, inv, flags, isum, nan);
        sc = a.w_scales[n * G + g];
      }
#pragma unroll
      for (int m = 0; m < MB; ++m) s_isum[warp][lane][m] = isum[m];
      s_scale[warp][lane] = sc;
      __syncwarp();
      const int count = G - g0 < kWarpSize ? (int)(G - g0) : kWarpSize;
      if (chain)
        for (int j = 0; j < count; ++j) f = w4a8_step(f, s_isum[warp][j][lane], s_scale[warp][j]);
      __syncwarp();  // the next round overwrites the sums
    }
#pragma unroll
    for (int off = kWarpSize / 2; off > 0; off >>= 1) nan |= __shfl_xor_sync(kFull, nan, off);
    if (chain) w4a8_store(a, lane, n, f, (nan >> lane) & 1u);
  }
}

// The coalesced kernels' one-step-ahead loads: the weight words of the step
// after step g0 of row n (the row's next step, or the first of row n +
// stride, the warp's next row) into wn.
__device__ __forceinline__ void load_next_quarter(const QLinearArgs& a, const uint8_t* row, int64_t g0, int64_t G,
                                                  int64_t n, int64_t stride, int lane, int flags, uint32_t (&wn)[4]) {
  if (g0 + kW4A8StepGroups < G) w4a8_quarter_load(a, row, g0 + kW4A8StepGroups, lane, flags, wn);
  else if (n + stride < a.N) w4a8_quarter_load(a, row + stride * a.w_stride, 0, lane, flags, wn);
}

// W4A8 with int8 inputs in memory (given, or staged by the block), with
// coalesced weight reads: per step the warp reads kW4A8StepGroups groups (512
// contiguous bytes); lane l takes 16 bytes, the half-chunk l % 2 of chunk
// (l % 4) / 2 of group g0 + l / 4 (a chunk's byte j holds elements j and j
// + 32), so consecutive lanes read consecutive weight bytes and nearby
// inputs. The four lanes of a group add their exact int32 partial sums
// (shuffles: integer sums, any order is exact); then, as w4a8_kernel, lane m
// runs input row m's chain over the groups in order.
template <int MB, bool kStaged>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize)
    w4a8_coalesced_kernel(const QLinearArgs args, float inv, int flags) {
  extern __shared__ __align__(16) int8_t smem[];
  __shared__ int32_t s_isum[kQGemvWarps][kW4A8StepGroups][MB];
  __shared__ float s_scale[kQGemvWarps][kW4A8StepGroups];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize, q = lane % 4;
  qgemv_begin(args, flags);
  uint32_t staged_nan;
  const QLinearArgs a = stage_xq<kStaged>(args, inv, smem + 16, reinterpret_cast<uint32_t*>(smem), staged_nan);
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  const bool chain = lane < MB && lane < a.M;
  const int64_t n0 = (int64_t)blockIdx.x * kQGemvWarps + warp, stride = (int64_t)gridDim.x * kQGemvWarps;
  const uint8_t* w0 = static_cast<const uint8_t*>(a.w);
  // The next step's weight words, loaded one step ahead (across rows too),
  // so that a step's loads are in flight during the sums and the group
  // chain of the step before.
  uint32_t wn[4];
  if (n0 < a.N) w4a8_quarter_load(a, w0 + n0 * a.w_stride, 0, lane, flags, wn);
  for (int64_t n = n0; n < a.N; n += stride) {
    const uint8_t* row = w0 + n * a.w_stride;
    float f = 0.0f;  // row `lane`'s chain
    uint32_t nan = staged_nan;
    for (int64_t g0 = 0; g0 < G; g0 += kW4A8StepGroups) {
      const int64_t g = g0 + lane / 4;
      // The group's scale, loaded before the sums so that its latency overlaps them.
      const float sc = q == 0 && g < G ? a.w_scales[n * G + g] : 0.0f;
      const uint32_t w[4] = {wn[0], wn[1], wn[2], wn[3]};
      load_next_quarter(a, row, g0, G, n, stride, lane, flags, wn);
      int32_t isum[MB];
      w4a8_quarter_sums<MB>(a, w, g0, lane, inv, isum, nan);
#pragma unroll
      for (int m = 0; m < MB; ++m) {
        isum[m] += __shfl_xor_sync(kFull, isum[m], 1);
        isum[m] += __shfl_xor_sync(kFull, isum[m], 2);
      }
      if (q == 0 && g < G) {
#pragma unroll
        for (int m = 0; m < MB; ++m) s_isum[warp][lane / 4][m] = isum[m];
        s_scale[warp][lane / 4] = sc;
      }
      __syncwarp();
      const int count = G - g0 < kW4A8StepGroups ? (int)(G - g0) : kW4A8StepGroups;
      if (chain) {
#pragma unroll
        for (int j = 0; j < kW4A8StepGroups; ++j)
          if (j < count) f = w4a8_step(f, s_isum[warp][j][lane], s_scale[warp][j]);
      }
      __syncwarp();  // the next step overwrites the sums
    }
#pragma unroll
    for (int off = kWarpSize / 2; off > 0; off >>= 1) nan |= __shfl_xor_sync(kFull, nan, off);
    if (chain) w4a8_store(a, lane, n, f, (nan >> lane) & 1u);
  }
}

// W8A8 / W4A8 for up to MB input rows (qlinear_row_math.cuh): the block's R
// weight rows as R x S warp-steps, each warp's weight words loaded before
// the block stages its inputs (their latencies overlap), the steps' (I8) or
// groups' (I4) exact sums in shared memory, then one thread per (weight row,
// input row) adds the steps or runs the group chain. kFloatIn: float inputs
// quantized while staged (a NaN makes its input row's outputs NaN); else the
// given int8 rows are copied.
template <DType WT, int MB, bool kFloatIn>
__global__ void __launch_bounds__(kQRowWarps * kWarpSize) qrows_kernel(const QLinearArgs a, float inv, int flags) {
  constexpr bool kI4 = WT == DType::I4;
  extern __shared__ __align__(16) int8_t smem[];
  const QRowLayout L = qrow_layout(a.K, MB, WT);
  // In int: a block that runs stages at most 48 KiB.
  const int G = (int)L.G, S = (int)L.S, R = (int)L.R, Kpad = (int)L.Kpad, st = (int)L.stride;
  int8_t* xs = smem;
  int32_t* xsum = reinterpret_cast<int32_t*>(smem + L.xsum_off);
  int32_t* sums = reinterpret_cast<int32_t*>(smem + L.sum_off);
  float* sscale = reinterpret_cast<float*>(smem + L.scale_off);
  uint32_t* snan = reinterpret_cast<uint32_t*>(smem + L.nan_off);
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int64_t n0 = (int64_t)blockIdx.x * R;
  const uint8_t* w0 = static_cast<const uint8_t*>(a.w);
  pdl_trigger();

  uint32_t w[kQRowItems][4];
#pragma unroll
  for (int u = 0; u < kQRowItems; ++u) {
    int r, s;
    qrow_item(S, warp + u * kQRowWarps, r, s);
    if (r < R && n0 + r < a.N) {
      qrow_load(a, w0 + (n0 + r) * a.w_stride, s, lane, flags, w[u]);
    } else {
      w[u][0] = w[u][1] = w[u][2] = w[u][3] = 0;
    }
  }
  // I4: the block's scales (R x G <= kQRowSteps * 8 = the block's threads).
  const int sr = kI4 ? tid / G : 0, sg = kI4 ? tid % G : 0;
  const float sc = kI4 && sr < R && n0 + sr < a.N ? a.w_scales[(n0 + sr) * G + sg] : 0.0f;
  pdl_wait();  // under a programmatic launch: only weights were read so far (cuda/pdl.cuh)

  // The inputs, row by row: 4 elements per thread and round (a warp covers
  // 128 elements: for I4 one group, whose lanes' sums reduce to X_g),
  // kRounds rounds' loads issued together.
  constexpr int kRounds = 4, kPerRound = kQRowWarps * kWarpSize * 4;
  uint32_t nan = 0;
  for (int m = 0; m < MB && m < a.M; ++m) {
    for (int base0 = 0; base0 < Kpad; base0 += kRounds * kPerRound) {
      int32_t v[kRounds][4];
#pragma unroll
      for (int u = 0; u < kRounds; ++u) {
        const int k = base0 + u * kPerRound + 4 * tid;
        v[u][0] = v[u][1] = v[u][2] = v[u][3] = 0;
        if (k >= Kpad) continue;
        if (kFloatIn) {
          const float* xr = x_row(a, m) + k;
          if (k + 4 <= a.K && ((uintptr_t)xr & 15u) == 0) {
            const float4 f = *reinterpret_cast<const float4*>(xr);
            bool b0 = false, b1 = false, b2 = false, b3 = false;
            v[u][0] = quantize_x(f.x, inv, b0), v[u][1] = quantize_x(f.y, inv, b1);
            v[u][2] = quantize_x(f.z, inv, b2), v[u][3] = quantize_x(f.w, inv, b3);
            if (b0 || b1 || b2 || b3) nan |= 1u << m;
            continue;
          }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) v[u][i] = qx_value(a, m, k + i, inv, nan);
      }
#pragma unroll
      for (int u = 0; u < kRounds; ++u) {
        const int k = base0 + u * kPerRound + 4 * tid;
        if (k >= Kpad) break;  // warp-uniform: Kpad is a multiple of a warp's 128
        *reinterpret_cast<uint32_t*>(xs + m * Kpad + k) = (uint32_t)(v[u][0] & 0xff) | (uint32_t)(v[u][1] & 0xff) << 8 |
                                                          (uint32_t)(v[u][2] & 0xff) << 16 | (uint32_t)(v[u][3] & 0xff) << 24;
        if constexpr (kI4) {
          int32_t t = v[u][0] + v[u][1] + v[u][2] + v[u][3];
#pragma unroll
          for (int off = kWarpSize / 2; off > 0; off >>= 1) t += __shfl_xor_sync(kFull, t, off);
          if (lane == 0) xsum[m * G + k / kI4Group] = t;
        }
      }
    }
  }
#pragma unroll
  for (int off = kWarpSize / 2; off > 0; off >>= 1) nan |= __shfl_xor_sync(kFull, nan, off);
  if (lane == 0) snan[warp] = nan;
  if (kI4 && sr < R) sscale[sr * st + sg] = sc;
  __syncthreads();

#pragma unroll
  for (int u = 0; u < kQRowItems; ++u) {
    int r, s;
    qrow_item(S, warp + u * kQRowWarps, r, s);
    if (r >= R || n0 + r >= a.N) break;  // warp-uniform; later items are further on
    int32_t t[MB];
    if constexpr (kI4) {
      qrow_i4_lane_sums<MB>(L, w[u], xs, a.M, s, lane, t);
      const int g = s * kW4A8StepGroups + lane / 4;
#pragma unroll
      for (int m = 0; m < MB; ++m) {
        if (m >= a.M) break;
        t[m] += __shfl_xor_sync(kFull, t[m], 1);
        t[m] += __shfl_xor_sync(kFull, t[m], 2);
        if (lane % 4 == 0 && g < G) sums[(r * MB + m) * st + g] = qrow_i4_group_sum(t[m], xsum[m * G + g]);
      }
    } else {
      qrow_i8_lane_sums<MB>(L, w[u], xs, a.M, s, lane, t);
#pragma unroll
      for (int m = 0; m < MB; ++m) {
        if (m >= a.M) break;
#pragma unroll
        for (int off = kWarpSize / 2; off > 0; off >>= 1) t[m] += __shfl_xor_sync(kFull, t[m], off);
        if (lane == 0) sums[(r * MB + m) * st + s] = t[m];
      }
    }
  }
  __syncthreads();

  const int r = tid / MB, m = tid % MB;
  if (r < R && m < a.M && n0 + r < a.N) {
    uint32_t any = 0;
#pragma unroll
    for (int i = 0; i < kQRowWarps; ++i) any |= snan[i];
    const int32_t* row = sums + (r * MB + m) * st;
    if constexpr (kI4) {
      float f = 0.0f;
      for (int g = 0; g < G; ++g) f = w4a8_step(f, row[g], sscale[r * st + g]);
      w4a8_store(a, m, n0 + r, f, (any >> m) & 1u);
    } else {
      int32_t sum = 0;
      for (int s = 0; s < S; ++s) sum += row[s];
      w8a8_store(a, m, n0 + r, sum, (any >> m) & 1u);
    }
  }
}

// W4A16: the coalesced lanes of the W4A8 kernel, each step's weight words
// loaded one step ahead (across rows too), float partial sums per lane.
template <int MB>
__global__ void __launch_bounds__(kQGemvWarps * kWarpSize) w4a16_kernel(const QLinearArgs a, int flags) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  qgemv_begin(a, flags);
  const int64_t G = (a.K + kI4Group - 1) / kI4Group;
  const int64_t n0 = (int64_t)blockIdx.x * kQGemvWarps + warp, stride = (int64_t)gridDim.x * kQGemvWarps;
  const uint8_t* w0 = static_cast<const uint8_t*>(a.w);
  uint32_t wn[4];
  if (n0 < a.N) w4a8_quarter_load(a, w0 + n0 * a.w_stride, 0, lane, flags, wn);
  for (int64_t n = n0; n < a.N; n += stride) {
    const uint8_t* row = w0 + n * a.w_stride;
    float acc[MB];
#pragma unroll
    for (int m = 0; m < MB; ++m) acc[m] = 0.0f;
    for (int64_t g0 = 0; g0 < G; g0 += kW4A8StepGroups) {
      const uint32_t w[4] = {wn[0], wn[1], wn[2], wn[3]};
      load_next_quarter(a, row, g0, G, n, stride, lane, flags, wn);
      w4a16_quarter_partial<MB>(a, w, n, g0, lane, acc);
    }
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

// Blocks for the int8 schemes with staged inputs: each block quantizes the
// inputs once, so at most a few blocks per multiprocessor, looping over rows.
unsigned staged_blocks(const QLinearArgs& a, unsigned blocks) { return a.xq ? blocks : blocks_per_sm_cap(blocks, 8); }

// The W8A8 / W4A8 kernel for up to 8 input rows where its block fits
// (qrow_layout); false where it does not apply.
template <DType WT, int MB>
void launch_qrows(const QLinearArgs& a, float inv, int flags, const QRowLayout& L, cudaStream_t s) {
  const unsigned grid = (unsigned)((a.N + L.R - 1) / L.R);
  const int threads = kQRowWarps * kWarpSize;
  if (a.xq) launch_gemv(qrows_kernel<WT, MB, false>, grid, threads, (size_t)L.bytes, s, a, inv, flags);
  else launch_gemv(qrows_kernel<WT, MB, true>, grid, threads, (size_t)L.bytes, s, a, inv, flags);
}

template <DType WT>
void launch_qrows(const QLinearArgs& a, float inv, int flags, int MB, const QRowLayout& L, cudaStream_t s) {
  if (MB == 1) launch_qrows<WT, 1>(a, inv, flags, L, s);
  else if (MB == 2) launch_qrows<WT, 2>(a, inv, flags, L, s);
  else if (MB == 4) launch_qrows<WT, 4>(a, inv, flags, L, s);
  else launch_qrows<WT, 8>(a, inv, flags, L, s);
}

bool launch_qrow(const QLinearArgs& a, float inv, int flags, cudaStream_t s, cudaError_t& err) {
  QRowLayout L;
  if (!qrow_applies(a, L)) return false;
  const int MB = qrow_mb(a.M);
  if (a.w_dtype == DType::I8) launch_qrows<DType::I8>(a, inv, flags, MB, L, s);
  else launch_qrows<DType::I4>(a, inv, flags, MB, L, s);
  err = cudaGetLastError();
  return true;
}

template <int MB>
cudaError_t launch(const QLinearArgs& a, float inv, int flags, cudaStream_t s) {
  const int threads = kQGemvWarps * kWarpSize;
  const unsigned blocks = grid_for(a.N * kWarpSize, threads);
  if (a.w_dtype == DType::I8 || a.x_scale > 0.0f) {
    // Float inputs too large to stage (over the default 48 KiB) are
    // quantized where they are read instead.
    const size_t smem = xq_smem_bytes(a);
    const bool stage = !a.xq && smem <= 48 * 1024;
    const size_t bytes = stage ? smem : 0;
    const unsigned grid = stage ? staged_blocks(a, blocks) : blocks;
    if (a.w_dtype == DType::I8) {
      if (stage) launch_gemv(w8a8_kernel<MB, true>, grid, threads, bytes, s, a, inv, flags);
      else launch_gemv(w8a8_kernel<MB, false>, grid, threads, 0, s, a, inv, flags);
    } else if (stage) {
      launch_gemv(w4a8_coalesced_kernel<MB, true>, grid, threads, bytes, s, a, inv, flags);
    } else if (a.xq) {
      launch_gemv(w4a8_coalesced_kernel<MB, false>, grid, threads, 0, s, a, inv, flags);
    } else {
      launch_gemv(w4a8_kernel<MB>, grid, threads, 0, s, a, inv, flags);
    }
  } else {
    launch_gemv(w4a16_kernel<MB>, blocks, threads, 0, s, a, flags);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t qlinear_cuda(const QLinearArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  QLinearArgs b = a;
  if (!(b.x_scale > 0.0f)) b.xq = nullptr;  // W4A16 reads x
  const float inv = b.x_scale > 0.0f ? 1.0f / b.x_scale : 0.0f;
  const int flags = ((((uintptr_t)b.w & 15u) == 0 && b.w_stride % 16 == 0) ? kQGemvVecW : 0) |
                    (pdl_enabled() ? kQGemvPdl : 0);
  if (b.M > kGemvMaxRows) return qlinear_gemm(b, inv, stream);
  cudaError_t err = cudaSuccess;
  if (launch_qrow(b, inv, flags, stream, err)) return err;
  if (b.M <= 1) return launch<1>(b, inv, flags, stream);
  if (b.M <= 4) return launch<4>(b, inv, flags, stream);
  return launch<16>(b, inv, flags, stream);
}

}  // namespace nm::cuda
