// CUDA kv_cache_append / paged_attention / rope (kernels.h); the math is
// cuda/attention_math.cuh.
#include "attention_math.cuh"
#include "attention_tiles_math.cuh"
#include "kernels.h"
#include "launch_util.cuh"

namespace nm::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) kv_append_kernel(const KvCacheAppendArgs a) {
  const int64_t hd = a.cache.n_kv_heads * a.cache.head_dim, n = a.tokens * hd;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i % hd;
    kv_append_point(a, i / hd, r / a.cache.head_dim, r % a.cache.head_dim);
  }
}

// Block per (token, head), heads fastest: kAttnSplitWarps warps over
// contiguous key ranges, merged in shared memory (attention_math.cuh).
__global__ void __launch_bounds__(kAttnSplitWarps * kAttnLanes) attention_kernel(const PagedAttentionArgs a) {
  __shared__ AttnSplitSmem sm;
  const int lane = threadIdx.x % kAttnLanes, warp = threadIdx.x / kAttnLanes;
  const int64_t n = a.tokens * a.n_heads;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t t = i / a.n_heads, h = i % a.n_heads;
    AttnLane w;
    attn_lane_begin(a, t, h, lane, w);
    int64_t p0, p1;
    attn_split_range(w.npos, warp, p0, p1);
    for (int64_t pos = p0; pos < p1; ++pos) {
      float s = attn_lane_score(a, w, pos, lane);
      for (int off = kAttnLanes / 2; off > 0; off >>= 1) s = s + __shfl_xor_sync(0xffffffffu, s, off);
      attn_lane_update(a, w, pos, lane, s);
    }
    attn_split_stage(w, warp, lane, sm);
    __syncthreads();
    if (warp == 0) attn_split_finish(a, sm, t, h, lane);
    __syncthreads();
  }
}

// Tiles (attention_tiles_math.cuh): block = (kAttnTileQ query tokens,
// head); the sequences among its tokens one after another.
__global__ void __launch_bounds__(kAttnTileWarps * 32) attention_tiles_kernel(const PagedAttentionArgs a) {
  extern __shared__ __align__(16) float smem[];
  const int64_t hd = a.cache.head_dim;
  const AttnTileSmem sm = attn_tile_smem(smem, hd);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, nth = kAttnTileWarps * 32;
  const int64_t h = blockIdx.y, hk = h / (a.n_heads / a.cache.n_kv_heads);
  const int64_t t0 = (int64_t)blockIdx.x * kAttnTileQ, t1 = t0 + kAttnTileQ < a.tokens ? t0 + kAttnTileQ : a.tokens;
  const int64_t s0 = sequence_of(a.cu_seqlens_q, a.nseq, t0), s1 = sequence_of(a.cu_seqlens_q, a.nseq, t1 - 1);
  const int64_t dp = attn_tile_dp(hd);
  for (int64_t s = s0; s <= s1; ++s) {
    const AttnTileSeq q = attn_tile_seq(a, s, t0, t1);
    if (q.hi <= q.lo) continue;  // an empty sequence (the same for the whole block)
    __syncthreads();              // the previous sequence's reads of the query rows are done
    for (int64_t i = tid; i < kAttnTileQ * dp; i += nth) attn_tile_load_q(a, h, t0, q, i, sm.q);
    AttnTileLane w;
    attn_tile_lane_init(w);
    for (int64_t k0 = 0; k0 < q.kend; k0 += kAttnTileK) {
      __syncthreads();  // the previous tile's K / V reads are done (and the query rows are in)
      for (int64_t i = tid; i < kAttnTileK * dp; i += nth) attn_tile_load_kv(a, s, hk, k0, q.kend, i, sm);
      __syncthreads();
      float* p = sm.p + warp * kAttnWarpQ * kAttnTileK;
#pragma unroll
      for (int qi = 0; qi < kAttnWarpQ; ++qi) {
        const float sc = attn_tile_lane_score(a, sm, q, t0, k0, warp, qi, lane);
        float mx = sc;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float m_new = attn_tile_new_max(w, qi, mx), corr = attn_tile_corr(w, qi, m_new);
        const float pk = attn_tile_p(sc, m_new);
        p[qi * kAttnTileK + lane] = pk;
        float ps = pk;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) ps = ps + __shfl_xor_sync(0xffffffffu, ps, off);
        attn_tile_rescale(w, qi, m_new, corr, ps);
      }
      __syncwarp();
      const int nk = q.kend - k0 < kAttnTileK ? (int)(q.kend - k0) : kAttnTileK;
      attn_tile_lane_pv(a, sm, warp, lane, nk, w);
      __syncwarp();  // p is rewritten by the next tile
    }
    attn_tile_lane_store(a, q, t0, h, warp, lane, w);
  }
}

__global__ void __launch_bounds__(kThreads) rope_kernel(const RopeArgs a) {
  const int64_t half = a.rotary_dim / 2, per_t = a.n_heads * half, n = a.tokens * per_t;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i % per_t;
    rope_point(a, i / per_t, r / half, r % half);
  }
}

}  // namespace

cudaError_t kv_cache_append_cuda(const KvCacheAppendArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  kv_append_kernel<<<grid_for(a.tokens * a.cache.n_kv_heads * a.cache.head_dim, kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t paged_attention_cuda(const PagedAttentionArgs& a, cudaStream_t stream, int method) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int m = attention_method(a, method);
  if (m == 0) return cudaErrorInvalidValue;
  if (a.tokens == 0) return cudaSuccess;
  if (m == 2) {
    const int64_t blocks = (a.tokens + kAttnTileQ - 1) / kAttnTileQ;
    if (blocks > 0x7fffffff || a.n_heads > 65535) return cudaErrorInvalidValue;
    const size_t bytes = (size_t)attn_tile_smem_floats(a.cache.head_dim) * sizeof(float);
    // Above the default 48 KB per block (head_dim 128: 53.8 KB).
    cudaError_t e = cudaFuncSetAttribute(attention_tiles_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return e;
    attention_tiles_kernel<<<dim3((unsigned)blocks, (unsigned)a.n_heads), kAttnTileWarps * 32, bytes, stream>>>(a);
    return cudaGetLastError();
  }
  attention_kernel<<<grid_for(a.tokens * a.n_heads * kAttnSplitWarps * kAttnLanes, kAttnSplitWarps * kAttnLanes),
                     kAttnSplitWarps * kAttnLanes, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t rope_cuda(const RopeArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  rope_kernel<<<grid_for(a.tokens * a.n_heads * (a.rotary_dim / 2), kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace nm::cuda
