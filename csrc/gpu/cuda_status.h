// Whether this build has the CUDA backend and whether this machine can run
// it (cuda/runtime.h when built with -DNODE_MAMBA_CUDA=ON; otherwise a fixed
// answer). What kernels.runtimeInfo().cuda reports.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nm::gpu {

struct CudaDevice {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  uint64_t total_bytes = 0;
  int multiprocessors = 0;
  bool supported = false;
};

struct CudaStatus {
  bool compiled = false;  // built with the CUDA kernels
  bool usable = false;    // compiled, a driver, and a device of compute capability >= 7.5
  std::string reason;     // why not usable
  int driver_version = 0, runtime_version = 0;
  std::vector<CudaDevice> devices;
};

// Queried once per process (the first call initialises the CUDA runtime).
const CudaStatus& cuda_status();

}  // namespace nm::gpu
