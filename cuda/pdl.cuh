// Programmatic dependent launch (PDL, compute capability 9.0 and newer) for
// the decode GEMVs (cuda/linear.cu, cuda/qlinear.cu).
//
// A kernel launched with launch_gemv (the attribute
// cudaLaunchAttributeProgrammaticStreamSerialization, where enabled) may be
// scheduled while its stream predecessor still runs, once every block of
// the predecessor has started and called pdl_trigger(). Before pdl_wait()
// returns (the predecessor complete, its writes visible) such a kernel reads
// only its weights, which no kernel writes during a forward, and writes
// nothing: so a GEMV's launch, its first weight reads (gemv_prefetch_rows:
// into L2; the W8A8 / W4A8 row kernel: into registers) overlap the small
// kernel before it (the norm, the conv, the state update). pdl_wait() in a
// kernel launched without the attribute returns at once; pdl_trigger() in a
// kernel with no programmatic successor does nothing. On devices before 9.0
// both are empty and launch_gemv launches plainly.
//
// Off unless NODE_MAMBA_CUDA_PDL=1 (not yet timed on a GPU: bench/NOTES.md).
#pragma once
#include <stdint.h>
#include <stdlib.h>

#include <atomic>
#include <utility>

#include <cuda_runtime.h>

namespace nm::cuda {

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lanes of a warp prefetch `bytes` from p into L2, one 128-byte line each
// per step (`first` / `step`: the warp's share when several warps share p).
__device__ __forceinline__ void prefetch_l2_span(const void* p, int64_t bytes, int64_t first, int64_t step) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = first * 128; off < bytes; off += step * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(c + off));
}

namespace pdl_detail {
// Compiled with this file's kernels, so its PTX version is theirs.
static __global__ void probe_kernel() {}

// Device d (< 64) runs code of this build that waits (compute capability
// 9.0 and the kernels built for it: a build whose newest PTX is older runs
// JIT-compiled code without griddepcontrol, and must not launch early).
static bool device_ready(int d) {
  static std::atomic<int> known[64];  // 0 unknown, 1 no, 2 yes (an idempotent race)
  if (d < 0 || d >= 64) return false;
  if (known[d].load(std::memory_order_relaxed) == 0) {
    int major = 0;
    cudaFuncAttributes fa = {};
    const bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) == cudaSuccess &&
                    major >= 9 && cudaFuncGetAttributes(&fa, probe_kernel) == cudaSuccess && fa.ptxVersion >= 90;
    known[d].store(ok ? 2 : 1, std::memory_order_relaxed);
  }
  return known[d].load(std::memory_order_relaxed) == 2;
}
}  // namespace pdl_detail

// Whether the GEMVs are launched programmatically: NODE_MAMBA_CUDA_PDL=1
// (read at each launch, so that one process can time both ways; the decode
// graphs record their launches once) on a device that pdl_detail allows.
static inline bool pdl_enabled() {
  const char* v = getenv("NODE_MAMBA_CUDA_PDL");
  if (!(v && v[0] == '1' && v[1] == 0)) return false;
  int dev = 0;
  return cudaGetDevice(&dev) == cudaSuccess && pdl_detail::device_ready(dev);
}

// kernel<<<grid, threads, smem, s>>>(args...), programmatically where
// pdl_enabled(); returns cudaGetLastError()'s value for the launch.
template <class... P, class... A>
cudaError_t launch_gemv(void (*kernel)(P...), dim3 grid, dim3 threads, size_t smem, cudaStream_t s, A&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = threads, cfg.dynamicSmemBytes = smem, cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr, cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
}

}  // namespace nm::cuda
