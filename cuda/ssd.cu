// CUDA ssd_chunk_scan (kernels.h): the Mamba-2 prefill; the math is
// cuda/ssd_math.cuh.
#include "kernels.h"
#include "launch_util.cuh"
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

}  // namespace

size_t ssd_chunk_scan_cuda_workspace_bytes(const SsdChunkScanArgs& a, int64_t chunk_len) {
  if (check_args(a) != Check::kValid || chunk_len < 0) return 0;
  return (size_t)ssd_workspace_floats(a, ssd_chunks(a, ssd_chunk_len(a, chunk_len))) * sizeof(float);
}

cudaError_t ssd_chunk_scan_cuda(const SsdChunkScanArgs& a, cudaStream_t stream, void* workspace, int64_t chunk_len) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  if (chunk_len < 0) return cudaErrorInvalidValue;
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
