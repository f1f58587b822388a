// What the CUDA runtime reports about this machine: the driver, the devices,
// and whether one can run node-mamba's kernels (compute capability 7.5 or
// newer). Host code; never throws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nm::cuda {

// The oldest architecture the kernels are built for (CMakeLists.txt NODE_MAMBA_CUDA_ARCHS).
constexpr int kMinComputeMajor = 7, kMinComputeMinor = 5;

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  uint64_t total_bytes = 0;
  int multiprocessors = 0;
  bool supported = false;  // compute capability >= 7.5
};

struct RuntimeStatus {
  bool usable = false;   // at least one supported device
  std::string reason;    // why not, when !usable
  int driver_version = 0, runtime_version = 0;  // e.g. 13000 for 13.0; 0: none
  std::vector<DeviceInfo> devices;
};

RuntimeStatus query_runtime();

}  // namespace nm::cuda
