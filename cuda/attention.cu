// CUDA kv_cache_append / paged_attention / rope (kernels.h); the math is
// cuda/attention_math.cuh.
#include "attention_math.cuh"
#include "kernels.h"
#include "launch_util.cuh"

namespace nm::cuda {

namespace {

constexpr int kThreads = 256, kAttnWarps = 4;

__global__ void __launch_bounds__(kThreads) kv_append_kernel(const KvCacheAppendArgs a) {
  const int64_t hd = a.cache.n_kv_heads * a.cache.head_dim, n = a.tokens * hd;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i % hd;
    kv_append_point(a, i / hd, r / a.cache.head_dim, r % a.cache.head_dim);
  }
}

// Warp per (token, head), heads fastest.
__global__ void __launch_bounds__(kAttnWarps * kAttnLanes) attention_kernel(const PagedAttentionArgs a) {
  const int lane = threadIdx.x % kAttnLanes, warp = threadIdx.x / kAttnLanes;
  const int64_t n = a.tokens * a.n_heads;
  for (int64_t i = (int64_t)blockIdx.x * kAttnWarps + warp; i < n; i += (int64_t)gridDim.x * kAttnWarps) {
    const int64_t t = i / a.n_heads, h = i % a.n_heads;
    AttnLane w;
    attn_lane_begin(a, t, h, lane, w);
    for (int64_t pos = 0; pos < w.npos; ++pos) {
      float s = attn_lane_score(a, w, pos, lane);
      for (int off = kAttnLanes / 2; off > 0; off >>= 1) s = s + __shfl_xor_sync(0xffffffffu, s, off);
      attn_lane_update(a, w, pos, lane, s);
    }
    attn_lane_finish(a, w, t, h, lane);
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

cudaError_t paged_attention_cuda(const PagedAttentionArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  attention_kernel<<<grid_for(a.tokens * a.n_heads * kAttnLanes, kAttnWarps * kAttnLanes), kAttnWarps * kAttnLanes, 0,
                     stream>>>(a);
  return cudaGetLastError();
}

cudaError_t rope_cuda(const RopeArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  rope_kernel<<<grid_for(a.tokens * a.n_heads * (a.rotary_dim / 2), kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace nm::cuda
