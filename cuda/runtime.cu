// query_runtime (runtime.h). The CUDA runtime is linked statically and loads
// the driver library on its first call: on a machine without a driver that
// call fails with an error code, and the reason is reported, not raised.
#include <cuda_runtime.h>

#include <string>

#include "runtime.h"

namespace nm::cuda {

namespace {

std::string describe(cudaError_t e) {
  switch (e) {
    case cudaErrorInsufficientDriver:
      return "no NVIDIA driver, or one too old for the CUDA runtime node-mamba was built with";
    case cudaErrorNoDevice:
      return "the NVIDIA driver reports no CUDA device";
    default:
      return std::string("the CUDA runtime failed: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  }
}

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

}  // namespace

RuntimeStatus query_runtime() {
  RuntimeStatus s;
  s.compiled = true;
  cudaRuntimeGetVersion(&s.runtime_version);
  cudaError_t e = cudaDriverGetVersion(&s.driver_version);
  if (e != cudaSuccess || s.driver_version == 0) {
    s.reason = e != cudaSuccess ? describe(e) : "no NVIDIA driver is installed (libcuda was not found)";
    return s;
  }
  if (s.driver_version < s.runtime_version) {
    s.reason = "the NVIDIA driver supports CUDA " + version_text(s.driver_version) + ", older than the CUDA " +
               version_text(s.runtime_version) + " runtime node-mamba was built with";
    return s;
  }
  int count = 0;
  e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    s.reason = e != cudaSuccess ? describe(e) : "the NVIDIA driver reports no CUDA device";
    cudaGetLastError();  // clear the sticky error of a failed first call
    return s;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    DeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.compute_major = p.major;
    d.compute_minor = p.minor;
    d.total_bytes = (uint64_t)p.totalGlobalMem;
    d.multiprocessors = p.multiProcessorCount;
    d.supported = p.major > kMinComputeMajor || (p.major == kMinComputeMajor && p.minor >= kMinComputeMinor);
    s.usable = s.usable || d.supported;
    s.devices.push_back(d);
  }
  if (!s.usable)
    s.reason = s.devices.empty() ? "no CUDA device could be queried"
                                 : "every CUDA device has a compute capability below " + std::to_string(kMinComputeMajor) +
                                       "." + std::to_string(kMinComputeMinor);
  return s;
}

}  // namespace nm::cuda
