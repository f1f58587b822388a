// CUDA selective_scan / selective_state_update (kernels.h); the math is
// cuda/selective_scan_math.cuh.
#include "kernels.h"
#include "launch_util.cuh"
#include "selective_scan_math.cuh"

namespace nm::cuda {

namespace {

// Phases 1 and 3 (selective_scan_math.cuh): thread per (batch, chunk,
// channel), channels fastest, so each token's u / delta / z / out accesses
// are coalesced and B / C are broadcast within a group.
constexpr int kScanThreads = 128;

template <int NMAX, int PARTS>
__global__ void __launch_bounds__(kScanThreads)
    scan_summary_kernel(const SelectiveScanArgs a, int64_t len, const ScanWorkspace ws) {
  const int64_t per_b = (ws.chunks - 1) * a.dim * PARTS, n = a.batch * per_b;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / per_b, r = i % per_b, cd = r / PARTS;
    scan_chunk_summary<NMAX, PARTS>(a, len, ws, b, cd / a.dim, cd % a.dim, (int)(r % PARTS));
  }
}

__global__ void __launch_bounds__(kScanThreads) scan_carry_kernel(const SelectiveScanArgs a, const ScanWorkspace ws) {
  const int64_t per_b = a.dstate * a.dim, n = a.batch * per_b;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / per_b, r = i % per_b;
    scan_carry(a, ws, b, r / a.dim, r % a.dim);
  }
}

// The parts of a channel are consecutive lanes (PARTS = 2: an even lane and
// the next; the grid stride and the thread count are even, so a pair always
// runs together) and add their partial sums with one shuffle.
template <int NMAX, int PARTS>
__global__ void __launch_bounds__(kScanThreads)
    scan_out_kernel(const SelectiveScanArgs a, int64_t len, const ScanWorkspace ws) {
  const int64_t per_b = ws.chunks * a.dim * PARTS, n = a.batch * per_b;
  const unsigned pair = 3u << (threadIdx.x & 30u);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / per_b, r = i % per_b, cd = r / PARTS, c = cd / a.dim;
    const int part = (int)(r % PARTS);
    ScanOut<NMAX, PARTS> o;
    scan_out_begin<NMAX, PARTS>(a, len, ws, b, c, cd % a.dim, part, o);
    for (int64_t l = o.l0; l < o.l1; ++l) {
      float ul, zl;
      float y = scan_out_token<NMAX, PARTS>(a, o, l, ul, zl);
      if (PARTS == 2) y = y + __shfl_xor_sync(pair, y, 1);
      if (part == 0) scan_out_write<NMAX, PARTS>(a, o, l, y, ul, zl);
    }
    scan_out_end<NMAX, PARTS>(a, ws, b, c, o);
  }
}

template <int NMAX, int PARTS>
cudaError_t launch_scan(const SelectiveScanArgs& a, int64_t len, const ScanWorkspace& ws, cudaStream_t stream) {
  if (ws.chunks > 1) {
    scan_summary_kernel<NMAX, PARTS>
        <<<grid_for(a.batch * (ws.chunks - 1) * a.dim * PARTS, kScanThreads), kScanThreads, 0, stream>>>(a, len, ws);
    scan_carry_kernel<<<grid_for(a.batch * a.dstate * a.dim, kScanThreads), kScanThreads, 0, stream>>>(a, ws);
  }
  scan_out_kernel<NMAX, PARTS>
      <<<grid_for(a.batch * ws.chunks * a.dim * PARTS, kScanThreads), kScanThreads, 0, stream>>>(a, len, ws);
  return cudaGetLastError();
}

// Block of kUpdateThreads threads = kUpdateThreads / tpr consecutive rows of
// the flattened (batch, row) index, tpr lanes each (selective_scan_math.cuh);
// grid-strided over row blocks. A row's lanes are in one warp: their partial
// sums meet in a butterfly (offsets tpr/2 .. 1), which gives lane 0 the
// fixed tree sum tree_sum_host repeats.
__global__ void __launch_bounds__(kUpdateThreads) selective_state_update_kernel(const SelectiveStateUpdateArgs a,
                                                                                  int tpr) {
  const int64_t R = a.nheads * a.headdim, total = a.batch * R, rpb = kUpdateThreads / tpr;
  const int t = threadIdx.x, lane = t % tpr;
  for (int64_t blk = blockIdx.x; blk * rpb < total; blk += gridDim.x) {
    const int64_t row = blk * rpb + t / tpr;
    float v = row < total ? selective_state_update_partial(a, row / R, row % R, lane, tpr) : 0.0f;
    for (int s = tpr / 2; s > 0; s >>= 1) v = v + __shfl_xor_sync(0xffffffffu, v, s);
    if (lane == 0 && row < total) selective_state_update_finish(a, row / R, row % R, v);
  }
}

}  // namespace

size_t selective_scan_cuda_workspace_bytes(const SelectiveScanArgs& a, const ScanTuning& t) {
  if (check_args(a) != Check::kValid || t.chunk_len < 0) return 0;
  return (size_t)scan_workspace_floats(a, scan_chunks(a, scan_chunk_len(a, t.chunk_len))) * sizeof(float);
}

cudaError_t selective_scan_cuda(const SelectiveScanArgs& a, cudaStream_t stream, void* workspace, const ScanTuning& t) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int parts = scan_parts(a, t.parts);
  if (t.chunk_len < 0 || parts == 0) return cudaErrorInvalidValue;
  const int64_t len = scan_chunk_len(a, t.chunk_len), chunks = scan_chunks(a, len);
  const size_t bytes = (size_t)scan_workspace_floats(a, chunks) * sizeof(float);
  void* owned = nullptr;
  if (bytes > 0 && workspace == nullptr) {
    const cudaError_t e = cudaMallocAsync(&owned, bytes, stream);
    if (e != cudaSuccess) return e;
    workspace = owned;
  }
  const ScanWorkspace ws = scan_workspace(a, static_cast<float*>(workspace), chunks);
  cudaError_t e;
  if (a.dstate == 16) e = parts == 2 ? launch_scan<16, 2>(a, len, ws, stream) : launch_scan<16, 1>(a, len, ws, stream);
  else e = launch_scan<(int)kSelectiveScanMaxDstate, 1>(a, len, ws, stream);
  if (owned) {
    const cudaError_t f = cudaFreeAsync(owned, stream);
    if (e == cudaSuccess && f != cudaSuccess) return f;
  }
  return e;
}

cudaError_t selective_state_update_cuda(const SelectiveStateUpdateArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int tpr = update_threads_per_row(a.dstate);
  selective_state_update_kernel<<<grid_for(a.batch * a.nheads * a.headdim * tpr, kUpdateThreads), kUpdateThreads, 0,
                                  stream>>>(a, tpr);
  return cudaGetLastError();
}

}  // namespace nm::cuda
