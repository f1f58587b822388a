// CUDA selective_scan / selective_state_update (kernels.h); the math is
// cuda/selective_scan_math.cuh.
#include "kernels.h"
#include "launch_util.cuh"
#include "selective_scan_math.cuh"
#include "selective_scan_tiles_math.cuh"
#include "state_update_kernel.cuh"

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

// The one-pass scan (selective_scan_tiles_math.cuh): block = (batch row,
// kTileChannels channels), thread = (segment, channel). Shared memory: the
// warps' totals of the current state group (two buffers: a group's are read
// after its barrier while the next group's are written) and the carry, the
// state at the current tile's start (two buffers: read for this tile,
// written for the next), [dstate][kTileChannels] each.
__global__ void __launch_bounds__(kTileThreads, 2) scan_tiles_kernel(const SelectiveScanArgs a) {
  __shared__ ScanStep agg[2][kTileStates][kTileChannels][kTileWarps];
  extern __shared__ float carry[];  // [2][dstate][kTileChannels]
  const int64_t N = a.dstate, cgroups = (a.dim + kTileChannels - 1) / kTileChannels;
  const int64_t b = blockIdx.x / cgroups, d0 = (blockIdx.x % cgroups) * kTileChannels;
  const int tid = threadIdx.x, ch = tid % kTileChannels, seg = tid / kTileChannels, w = tid / 32;
  const int sl = seg % kTileWarpSegments;  // the segment's place in its warp
  for (int64_t i = tid; i < N * kTileChannels; i += kTileThreads)
    carry[i] = tile_initial_state(a, b, d0 + i % kTileChannels, i / kTileChannels);
  __syncthreads();
  TileThread T;
  tile_thread_init(a, b, d0 + ch, T);
  int cp = 0, ap = 0;
  const int64_t tiles = (a.seqlen + kTileTokens - 1) / kTileTokens;
  for (int64_t tile = 0; tile < tiles; ++tile) {
    tile_load(a, tile * kTileTokens + seg * kTileItems, T);
    const float* cin = carry + cp * N * kTileChannels;
    float* cout = carry + (cp ^ 1) * N * kTileChannels;
    for (int64_t n0 = 0; n0 < N; n0 += kTileStates) {
      const int nn = N - n0 < kTileStates ? (int)(N - n0) : kTileStates;
      ScanStep s[kTileStates], ex[kTileStates];
      tile_segment_steps(a, n0, nn, T, s);
NM_UNROLL
      for (int j = 0; j < kTileStates; ++j) {
        // Inclusive scan over the warp's segments (lanes kTileChannels apart),
        // then the exclusive prefix from the previous segment's lane.
        ScanStep v = s[j];
NM_UNROLL
        for (int off = 1; off < kTileWarpSegments; off <<= 1) {
          const ScanStep p{__shfl_up_sync(0xffffffffu, v.P, off * kTileChannels),
                           __shfl_up_sync(0xffffffffu, v.H, off * kTileChannels)};
          if (sl >= off) v = scan_then(p, v);
        }
        const ScanStep e{__shfl_up_sync(0xffffffffu, v.P, kTileChannels),
                         __shfl_up_sync(0xffffffffu, v.H, kTileChannels)};
        ex[j] = sl >= 1 ? e : ScanStep{1.0f, 0.0f};
        s[j] = v;
        if (sl == kTileWarpSegments - 1) agg[ap][j][ch][w] = v;
      }
      __syncthreads();
      float h[kTileStates];
NM_UNROLL
      for (int j = 0; j < kTileStates; ++j) {
        const float start = j < nn ? tile_warp_start(cin[(n0 + j) * kTileChannels + ch], agg[ap][j][ch], w) : 0.0f;
        h[j] = scan_apply(ex[j], start);
        if (w == kTileWarps - 1 && sl == kTileWarpSegments - 1 && j < nn)
          cout[(n0 + j) * kTileChannels + ch] = scan_apply(s[j], start);
      }
      tile_segment_apply(a, n0, nn, h, T);
      ap ^= 1;
    }
    tile_store(a, T);
    cp ^= 1;
  }
  __syncthreads();
  if (!a.last_state) return;
  const float* fin = carry + cp * N * kTileChannels;
  for (int64_t i = tid; i < N * kTileChannels; i += kTileThreads) {
    const int64_t d = d0 + i % kTileChannels, n = i / kTileChannels;
    if (d < a.dim) a.last_state[b * a.last_state_batch_stride + d * N + n] = fin[i];
  }
}

}  // namespace

size_t selective_scan_cuda_workspace_bytes(const SelectiveScanArgs& a, const ScanTuning& t) {
  if (check_args(a) != Check::kValid || t.chunk_len < 0 || scan_method(a, t.method) != 1) return 0;
  return (size_t)scan_workspace_floats(a, scan_chunks(a, scan_chunk_len(a, t.chunk_len))) * sizeof(float);
}

cudaError_t selective_scan_cuda(const SelectiveScanArgs& a, cudaStream_t stream, void* workspace, const ScanTuning& t) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  const int method = scan_method(a, t.method);
  if (method == 0 || t.chunk_len < 0) return cudaErrorInvalidValue;
  if (method == 2) {
    const int64_t blocks = scan_tile_blocks(a);
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    const size_t shared = 2 * (size_t)a.dstate * kTileChannels * sizeof(float);
    scan_tiles_kernel<<<(unsigned)blocks, kTileThreads, shared, stream>>>(a);
    return cudaGetLastError();
  }
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
  return launch_selective_state_update(a, UpdateFloatOperands::of(a), stream);
}

}  // namespace nm::cuda
