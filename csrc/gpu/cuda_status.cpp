#include "gpu/cuda_status.h"

#if defined(NM_HAVE_CUDA)
#include "runtime.h"
#endif

namespace nm::gpu {

namespace {

CudaStatus query() {
  CudaStatus s;
#if defined(NM_HAVE_CUDA)
  const cuda::RuntimeStatus r = cuda::query_runtime();
  s.compiled = true;
  s.usable = r.usable;
  s.reason = r.reason;
  s.driver_version = r.driver_version;
  s.runtime_version = r.runtime_version;
  for (const cuda::DeviceInfo& d : r.devices)
    s.devices.push_back({d.index, d.name, d.compute_major, d.compute_minor, d.total_bytes, d.multiprocessors, d.supported});
#else
  s.reason = "this build of node-mamba has no CUDA kernels (it was built without -DNODE_MAMBA_CUDA=ON)";
#endif
  return s;
}

}  // namespace

const CudaStatus& cuda_status() {
  static const CudaStatus s = query();
  return s;
}

}  // namespace nm::gpu
