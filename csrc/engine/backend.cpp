#include "engine/backend.h"

#include <stdexcept>

#include "engine/cpu_backend.h"
#include "engine/cuda_backend.h"
#include "engine/device_emulation_backend.h"

namespace nm::engine {

std::unique_ptr<Backend> make_backend(BackendKind kind) {
  switch (kind) {
    case BackendKind::Cpu: return make_cpu_backend();
    case BackendKind::DeviceEmulation: return make_device_emulation_backend();
    case BackendKind::Cuda:
#if NM_HAVE_CUDA
      return make_cuda_backend();
#else
      throw std::invalid_argument("node-mamba: this build has no CUDA backend (built without -DNODE_MAMBA_CUDA=ON)");
#endif
  }
  throw std::invalid_argument("unknown backend kind");
}

}  // namespace nm::engine
