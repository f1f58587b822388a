// What the CUDA runtime reports about this machine: the driver, the devices,
// and whether one can run node-mamba's kernels (compute capability 7.5 or
// newer), in the types runtimeInfo().cuda is made from (gpu/cuda_status.h).
// Host code; never throws.
#pragma once
#include "gpu/cuda_status.h"

namespace nm::cuda {

// The oldest architecture the kernels are built for (CMakeLists.txt NODE_MAMBA_CUDA_ARCHS).
constexpr int kMinComputeMajor = 7, kMinComputeMinor = 5;

using DeviceInfo = gpu::CudaDevice;
using RuntimeStatus = gpu::CudaStatus;

// compiled = true; usable and reason as the runtime and the devices say.
RuntimeStatus query_runtime();

}  // namespace nm::cuda
