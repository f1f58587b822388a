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

template <int NMAX>
__global__ void __launch_bounds__(kScanThreads)
    scan_summary_kernel(const SelectiveScanArgs a, int64_t len, const ScanWorkspace ws) {
  const int64_t per_b = (ws.chunks - 1) * a.dim, n = a.batch * per_b;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / per_b, r = i % per_b;
    scan_chunk_summary<NMAX>(a, len, ws, b, r / a.dim, r % a.dim);
  }
}

__global__ void __launch_bounds__(kScanThreads) scan_carry_kernel(const SelectiveScanArgs a, const ScanWorkspace ws) {
  const int64_t per_b = a.dstate * a.dim, n = a.batch * per_b;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / per_b, r = i % per_b;
    scan_carry(a, ws, b, r / a.dim, r % a.dim);
  }
}

template <int NMAX>
__global__ void __launch_bounds__(kScanThreads)
    scan_out_kernel(const SelectiveScanArgs a, int64_t len, const ScanWorkspace ws) {
  const int64_t per_b = ws.chunks * a.dim, n = a.batch * per_b;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / per_b, r = i % per_b;
    scan_chunk_out<NMAX>(a, len, ws, b, r / a.dim, r % a.dim);
  }
}

template <int NMAX>
cudaError_t launch_scan(const SelectiveScanArgs& a, int64_t len, const ScanWorkspace& ws, cudaStream_t stream) {
  if (ws.chunks > 1) {
    scan_summary_kernel<NMAX><<<grid_for(a.batch * (ws.chunks - 1) * a.dim, kScanThreads), kScanThreads, 0, stream>>>(
        a, len, ws);
    scan_carry_kernel<<<grid_for(a.batch * a.dstate * a.dim, kScanThreads), kScanThreads, 0, stream>>>(a, ws);
  }
  scan_out_kernel<NMAX><<<grid_for(a.batch * ws.chunks * a.dim, kScanThreads), kScanThreads, 0, stream>>>(a, len, ws);
  return cudaGetLastError();
}

// Block of kUpdateThreads threads = kUpdateThreads / tpr consecutive rows of
// the flattened (batch, row) index, tpr lanes each (selective_scan_math.cuh);
// grid-strided over row blocks.
__global__ void __launch_bounds__(kUpdateThreads) selective_state_update_kernel(const SelectiveStateUpdateArgs a,
                                                                                  int tpr) {
  __shared__ float sh[kUpdateThreads];
  const int64_t R = a.nheads * a.headdim, total = a.batch * R, rpb = kUpdateThreads / tpr;
  const int t = threadIdx.x, lane = t % tpr;
  for (int64_t blk = blockIdx.x; blk * rpb < total; blk += gridDim.x) {
    const int64_t row = blk * rpb + t / tpr;
    sh[t] = row < total ? selective_state_update_partial(a, row / R, row % R, lane, tpr) : 0.0f;
    __syncthreads();
    for (int s = tpr / 2; s > 0; s >>= 1) {
      if (lane < s) sh[t] = sh[t] + sh[t + s];
      __syncthreads();
    }
    if (lane == 0 && row < total) selective_state_update_finish(a, row / R, row % R, sh[t]);
    __syncthreads();  // sh is reused by the next row block
  }
}

}  // namespace

size_t selective_scan_cuda_workspace_bytes(const SelectiveScanArgs& a, int64_t chunk_len) {
  if (check_args(a) != Check::kValid) return 0;
  return (size_t)scan_workspace_floats(a, scan_chunks(a, scan_chunk_len(a, chunk_len))) * sizeof(float);
}

cudaError_t selective_scan_cuda(const SelectiveScanArgs& a, cudaStream_t stream, void* workspace, int64_t chunk_len) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  if (chunk_len < 0) return cudaErrorInvalidValue;
  const int64_t len = scan_chunk_len(a, chunk_len), chunks = scan_chunks(a, len);
  const size_t bytes = (size_t)scan_workspace_floats(a, chunks) * sizeof(float);
  void* owned = nullptr;
  if (bytes > 0 && workspace == nullptr) {
    const cudaError_t e = cudaMallocAsync(&owned, bytes, stream);
    if (e != cudaSuccess) return e;
    workspace = owned;
  }
  const ScanWorkspace ws = scan_workspace(a, static_cast<float*>(workspace), chunks);
  const cudaError_t e = a.dstate == 16 ? launch_scan<16>(a, len, ws, stream)
                                       : launch_scan<(int)kSelectiveScanMaxDstate>(a, len, ws, stream);
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
