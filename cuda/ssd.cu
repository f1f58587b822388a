// CUDA ssd_chunk_scan (kernels.h): the Mamba-2 prefill, in chunked matrix
// form on the tensor cores (cuda/ssd_chunks_math.cuh; sm_80 and newer) or as
// a recurrence over chunks of tokens (cuda/ssd_math.cuh).
#include "kernels.h"
#include "launch_util.cuh"
#include "mma_ptx.cuh"
#include "ssd_chunks_math.cuh"
#include "ssd_math.cuh"

namespace nm::cuda {

namespace {

constexpr int kSsdThreads = 128;

// Phases 1 and 3: thread per (chunk, channel, part), parts fastest (a
// channel's parts are consecutive lanes of one warp: parts divide 32 and the
// grid stride).
__global__ void __launch_bounds__(kSsdThreads)
    ssd_summary_kernel(const SsdChunkScanArgs a, int64_t len, const SsdWorkspace ws, int parts) {
  const int64_t dim = a.nheads * a.headdim, n = (ws.chunks - 1) * dim * parts;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t kc = i / parts;
    ssd_chunk_summary(a, len, ws, kc / dim, kc % dim, (int)(i % parts));
  }
}

__global__ void __launch_bounds__(kSsdThreads) ssd_carry_kernel(const SsdChunkScanArgs a, const SsdWorkspace ws) {
  const int64_t dim = a.nheads * a.headdim, n = dim * a.dstate;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    ssd_carry(a, ws, i % dim, i / dim);
}

__global__ void __launch_bounds__(kSsdThreads)
    ssd_out_kernel(const SsdChunkScanArgs a, int64_t len, const SsdWorkspace ws, int parts) {
  const int64_t dim = a.nheads * a.headdim, n = ws.chunks * dim * parts;
  const unsigned lane = threadIdx.x % 32u;
  const unsigned group = (parts >= 32 ? 0xffffffffu : ((1u << parts) - 1u)) << (lane & ~(unsigned)(parts - 1));
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t kc = i / parts, k = kc / dim, c = kc % dim;
    const int part = (int)(i % parts);
    SsdLane l;
    int64_t s, t0, t1;
    ssd_out_begin(a, len, ws, k, c, part, l, s, t0, t1);
    for (int64_t t = t0; t < t1; ++t) {
      bool last;
      float y = ssd_out_token(a, t, l, s, last);
      for (int off = parts / 2; off > 0; off >>= 1) y = y + __shfl_xor_sync(group, y, off);
      if (part == 0) ssd_write_out(a, t, l, y);
      if (last) ssd_write_final(a, s, l);
    }
  }
}

__global__ void __launch_bounds__(kSsdThreads) ssd_empty_kernel(const SsdChunkScanArgs a) {
  const int64_t per_s = a.nheads * a.headdim * a.dstate, n = a.nseq * per_s;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i % per_s;
    ssd_empty_final(a, i / per_s, r / a.dstate, r % a.dstate);
  }
}

// ------------------------------------------------------------ chunks (tensor cores)

__global__ void ssd_chunk_table_kernel(const SsdChunkScanArgs a, int32_t* table) {
  if (blockIdx.x == 0 && threadIdx.x == 0) ssd_chunk_table(a, table);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// d += a b in three tf32 terms, the small ones first.
__device__ __forceinline__ void mma_tf32x3(float (&d)[4], const uint32_t (&ah)[4], const uint32_t (&al)[4],
                                           const uint32_t (&bh)[2], const uint32_t (&bl)[2]) {
  mma_tf32_1688(d, al, bh[0], bh[1]);
  mma_tf32_1688(d, ah, bl[0], bl[1]);
  mma_tf32_1688(d, ah, bh[0], bh[1]);
}

// acc[j] += A[m0 .. m0 + 16][k 0 .. 8 ksteps] B[..][8 j .. 8 j + 8], j < tiles.
template <int kMaxTiles>
__device__ __forceinline__ void warp_mma_tf32x3(float (&acc)[kMaxTiles][4], const SmemMat& A, const SmemMat& B, int m0,
                                                int ksteps, int tiles, int lane) {
  for (int ks = 0; ks < ksteps; ++ks) {
    uint32_t ah[4], al[4];
    tf32_frag_a(A, m0, ks * 8, lane, ah, al);
#pragma unroll
    for (int j = 0; j < kMaxTiles; ++j)
      if (j < tiles) {
        uint32_t bh[2], bl[2];
        tf32_frag_b(B, ks * 8, j * 8, lane, bh, bl);
        mma_tf32x3(acc[j], ah, al, bh, bl);
      }
  }
}

// The chunk's dt and cum in shared memory (all threads; ends synchronised).
__device__ __forceinline__ void ssd_chunk_prologue(const SsdChunkScanArgs& a, const SsdChunk& c, int64_t h, float* dt,
                                                   float* cum) {
  if (threadIdx.x < kSsdQ) ssd_chunk_dt(a, c, h, threadIdx.x, dt);
  __syncthreads();
  if (threadIdx.x == 0) ssd_chunk_cumsum(a, h, dt, cum);
  __syncthreads();
}
#endif

// Phase 1: block (chunk j, head h), the chunk's end state from zero into
// the workspace and its decay.
__global__ void __launch_bounds__(kSsdChunkThreads)
    ssd_chunk_state_kernel(const SsdChunkScanArgs a, const SsdChunkWs ws, const SsdChunkLayout L) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) float sm[];
  SsdChunk c;
  if (!ssd_chunk_at(a, ws.table, blockIdx.x, c)) return;
  const int64_t h = blockIdx.y, g = h / (a.nheads / a.ngroups);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  float *dt = sm + L.sdt, *cum = sm + L.scum;
  ssd_chunk_prologue(a, c, h, dt, cum);
  if (tid < kSsdQ) dt[tid] = ssd_chunk_weight(dt, cum, tid);  // dt becomes w
  for (int64_t i = tid; i < kSsdQ * L.np; i += kSsdChunkThreads)
    ssd_stage(sm + L.sb, L.ldb, L.np, a.B + g * a.dstate, a.B_stride, c, a.dstate, nullptr, i);
  __syncthreads();
  for (int64_t i = tid; i < kSsdQ * L.pp; i += kSsdChunkThreads)
    ssd_stage(sm + L.sw, L.ldw, L.pp, a.x + h * a.headdim, a.x_stride, c, a.headdim, dt, i);
  __syncthreads();
  const SmemMat Bt{sm + L.sb, 1, L.ldb};  // A[n][t] = B[t][n]
  const SmemMat WX{sm + L.sw, L.ldw, 1};  // B operand [t][p]
  const int ksteps = (int)((c.len + 7) / 8), ptiles = (int)(L.pp / 8);
  float* S = ws.h + ((int64_t)blockIdx.x * a.nheads + h) * a.headdim * a.dstate;
  for (int mt = warp; mt < L.np / 16; mt += kSsdChunkWarps) {
    float acc[kSsdChunkMaxPTiles][4] = {};
    warp_mma_tf32x3(acc, Bt, WX, mt * 16, ksteps, ptiles, lane);
#pragma unroll
    for (int j = 0; j < kSsdChunkMaxPTiles; ++j)
      if (j < ptiles)
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int64_t n = mt * 16 + tf32_c_row(lane, q), p = j * 8 + tf32_c_col(lane, q);
          if (n < a.dstate && p < a.headdim) S[p * a.dstate + n] = acc[j][q];
        }
  }
  if (tid == 0) ws.decay[(int64_t)blockIdx.x * a.nheads + h] = scan_exp2(cum[kSsdQ - 1]);
#else
  (void)a, (void)ws, (void)L;
#endif
}

__global__ void __launch_bounds__(kSsdThreads) ssd_chunk_pass_kernel(const SsdChunkScanArgs a, const SsdChunkWs ws) {
  const int64_t n = a.nseq * a.nheads * a.headdim * a.dstate;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    ssd_chunk_pass(a, ws, i);
}

// Phase 3: block (chunk j, head h), warp w the chunk's rows 16 w .. 16 w + 15.
__global__ void __launch_bounds__(kSsdChunkThreads)
    ssd_chunk_out_kernel(const SsdChunkScanArgs a, const SsdChunkWs ws, const SsdChunkLayout L) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(16) float sm[];
  SsdChunk c;
  if (!ssd_chunk_at(a, ws.table, blockIdx.x, c)) return;
  const int64_t h = blockIdx.y, g = h / (a.nheads / a.ngroups);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, m0 = warp * 16;
  float *dt = sm + L.dt, *cum = sm + L.cum;
  ssd_chunk_prologue(a, c, h, dt, cum);
  for (int64_t i = tid; i < kSsdQ * L.np; i += kSsdChunkThreads) {
    ssd_stage(sm + L.c, L.ldn, L.np, a.C + g * a.dstate, a.C_stride, c, a.dstate, nullptr, i);
    ssd_stage(sm + L.bh, L.ldn, L.np, a.B + g * a.dstate, a.B_stride, c, a.dstate, nullptr, i);
  }
  for (int64_t i = tid; i < kSsdQ * L.pp; i += kSsdChunkThreads)
    ssd_stage(sm + L.x, L.ldx, L.pp, a.x + h * a.headdim, a.x_stride, c, a.headdim, nullptr, i);
  __syncthreads();
  const bool active = m0 < c.len;
  const int stiles = 2 * warp + 2;  // 8-column tiles of scores at or left of the warp's diagonal
  const int ntiles = (int)(L.np / 8), ptiles = (int)(L.pp / 8);
  const SmemMat Cm{sm + L.c, L.ldn, 1};  // A [t][n]
  if (active) {
    const SmemMat Bm{sm + L.bh, 1, L.ldn};  // B operand [n][s] = B[s][n]
    float acc[kSsdQTiles][4] = {};
    warp_mma_tf32x3(acc, Cm, Bm, m0, ntiles, stiles, lane);
    float* G = sm + L.g;
#pragma unroll
    for (int j = 0; j < kSsdQTiles; ++j)
      if (j < stiles)
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int t = m0 + tf32_c_row(lane, q), s = j * 8 + tf32_c_col(lane, q);
          G[t * L.ldq + s] = ssd_chunk_score(acc[j][q], dt, cum, t, s);
        }
  }
  __syncthreads();  // B's room becomes H
  const bool carry = !c.first || a.initial_states;
  if (carry) {
    const float* hk = ws.h + ((int64_t)blockIdx.x * a.nheads + h) * a.headdim * a.dstate;
    for (int64_t i = tid; i < L.pp * L.np; i += kSsdChunkThreads) ssd_stage_h(a, L, sm + L.bh, hk, i);
  }
  __syncthreads();
  if (!active) return;
  float y[kSsdChunkMaxPTiles][4] = {};
  if (carry) {
    const SmemMat Hm{sm + L.bh, 1, L.ldn};  // B operand [n][p] = H[p][n]
    warp_mma_tf32x3(y, Cm, Hm, m0, ntiles, ptiles, lane);
    const float e0 = scan_exp2(cum[m0 + tf32_c_row(lane, 0)]), e1 = scan_exp2(cum[m0 + tf32_c_row(lane, 2)]);
#pragma unroll
    for (int j = 0; j < kSsdChunkMaxPTiles; ++j)
      y[j][0] *= e0, y[j][1] *= e0, y[j][2] *= e1, y[j][3] *= e1;
  }
  const SmemMat Gm{sm + L.g, L.ldq, 1}, Xm{sm + L.x, L.ldx, 1};
  warp_mma_tf32x3(y, Gm, Xm, m0, stiles, ptiles, lane);
#pragma unroll
  for (int j = 0; j < kSsdChunkMaxPTiles; ++j)
    if (j < ptiles)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int t = m0 + tf32_c_row(lane, q);
        const int64_t p = j * 8 + tf32_c_col(lane, q);
        if (t < c.len && p < a.headdim) ssd_chunk_write(a, c, h, t, p, y[j][q]);
      }
#else
  (void)a, (void)ws, (void)L;
#endif
}

// Whether the device's tensor cores take this shape (sm_80, shared memory).
bool ssd_chunks_on_device(const SsdChunkScanArgs& a) {
  if (require_sm80() != cudaSuccess) return false;
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
    return false;
  return ssd_chunks_apply(a, optin);
}

// 2 (chunks), 1 (recurrence), or 0 for a request the device or shape does
// not allow.
int ssd_method(const SsdChunkScanArgs& a, int requested) {
  if (requested == 1) return 1;
  const bool chunks = ssd_chunks_on_device(a);
  if (requested == 2) return chunks ? 2 : 0;
  if (requested != 0) return 0;
  return chunks ? 2 : 1;
}

cudaError_t ssd_chunks_launch(const SsdChunkScanArgs& a, cudaStream_t stream, void* workspace) {
  const SsdChunkLayout L = ssd_chunk_layout(a);
  const size_t bytes = (size_t)ssd_chunks_workspace_bytes(a);
  void* owned = nullptr;
  if (workspace == nullptr) {
    const cudaError_t e = cudaMallocAsync(&owned, bytes, stream);
    if (e != cudaSuccess) return e;
    workspace = owned;
  }
  const SsdChunkWs ws = ssd_chunk_ws(a, workspace);
  const dim3 grid((unsigned)ssd_chunks_max(a), (unsigned)a.nheads);
  const size_t state_smem = (size_t)L.state_floats * 4, out_smem = (size_t)L.out_floats * 4;
  ssd_chunk_table_kernel<<<1, 32, 0, stream>>>(a, ws.table);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && a.tokens > 0) {
    e = cudaFuncSetAttribute(ssd_chunk_state_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)state_smem);
    if (e == cudaSuccess) {
      ssd_chunk_state_kernel<<<grid, kSsdChunkThreads, state_smem, stream>>>(a, ws, L);
      e = cudaGetLastError();
    }
  }
  if (e == cudaSuccess) {
    ssd_chunk_pass_kernel<<<grid_for(a.nseq * a.nheads * a.headdim * a.dstate, kSsdThreads), kSsdThreads, 0, stream>>>(
        a, ws);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess && a.tokens > 0) {
    e = cudaFuncSetAttribute(ssd_chunk_out_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)out_smem);
    if (e == cudaSuccess) {
      ssd_chunk_out_kernel<<<grid, kSsdChunkThreads, out_smem, stream>>>(a, ws, L);
      e = cudaGetLastError();
    }
  }
  if (owned) {
    const cudaError_t f = cudaFreeAsync(owned, stream);
    if (e == cudaSuccess) e = f;
  }
  return e;
}

}  // namespace

size_t ssd_chunk_scan_cuda_workspace_bytes(const SsdChunkScanArgs& a, const SsdTuning& t) {
  if (check_args(a) != Check::kValid || t.chunk_len < 0) return 0;
  switch (ssd_method(a, t.method)) {
    case 2: return (size_t)ssd_chunks_workspace_bytes(a);
    case 1: return (size_t)ssd_workspace_floats(a, ssd_chunks(a, ssd_chunk_len(a, t.chunk_len))) * sizeof(float);
    default: return 0;
  }
}

cudaError_t ssd_chunk_scan_cuda(const SsdChunkScanArgs& a, cudaStream_t stream, void* workspace, const SsdTuning& t) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  if (t.chunk_len < 0) return cudaErrorInvalidValue;
  const int method = ssd_method(a, t.method);
  if (method == 0) return t.method == 2 ? cudaErrorNotSupported : cudaErrorInvalidValue;
  if (method == 2) return ssd_chunks_launch(a, stream, workspace);
  const int64_t chunk_len = t.chunk_len;
  const int parts = ssd_parts(a.dstate);
  const int64_t dim = a.nheads * a.headdim;
  ssd_empty_kernel<<<grid_for(a.nseq * dim * a.dstate, kSsdThreads), kSsdThreads, 0, stream>>>(a);
  if (a.tokens == 0) return cudaGetLastError();
  const int64_t len = ssd_chunk_len(a, chunk_len), chunks = ssd_chunks(a, len);
  const size_t bytes = (size_t)ssd_workspace_floats(a, chunks) * sizeof(float);
  void* owned = nullptr;
  if (bytes > 0 && workspace == nullptr) {
    const cudaError_t e = cudaMallocAsync(&owned, bytes, stream);
    if (e != cudaSuccess) return e;
    workspace = owned;
  }
  const SsdWorkspace ws = ssd_workspace(a, static_cast<float*>(workspace), chunks);
  if (chunks > 1) {
    ssd_summary_kernel<<<grid_for((chunks - 1) * dim * parts, kSsdThreads), kSsdThreads, 0, stream>>>(a, len, ws, parts);
    ssd_carry_kernel<<<grid_for(dim * a.dstate, kSsdThreads), kSsdThreads, 0, stream>>>(a, ws);
  }
  ssd_out_kernel<<<grid_for(chunks * dim * parts, kSsdThreads), kSsdThreads, 0, stream>>>(a, len, ws, parts);
  cudaError_t e = cudaGetLastError();
  if (owned) {
    const cudaError_t f = cudaFreeAsync(owned, stream);
    if (e == cudaSuccess) e = f;
  }
  return e;
}

}  // namespace nm::cuda
