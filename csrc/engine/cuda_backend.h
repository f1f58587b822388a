// The CUDA backend: the engine's kernels on an NVIDIA GPU
// (cuda_backend.cpp; built with the CUDA library only).
#pragma once
#include <memory>

#include "engine/backend.h"

namespace nm::engine {

// On the first CUDA device of compute capability 7.5 or newer; throws
// std::runtime_error saying why when CUDA is not usable.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace nm::engine
