#include "gpu/cuda_status.h"

#if defined(NM_HAVE_CUDA)
#include "runtime.h"
#endif

namespace nm::gpu {

namespace {

CudaStatus query() {
#if defined(NM_HAVE_CUDA)
  return cuda::query_runtime();
#else
  CudaStatus s;
  s.reason = "this build of node-mamba has no CUDA kernels (it was built without -DNODE_MAMBA_CUDA=ON)";
  return s;
#endif
}

}  // namespace

const CudaStatus& cuda_status() {
  static const CudaStatus s = query();
  return s;
}

}  // namespace nm::gpu
