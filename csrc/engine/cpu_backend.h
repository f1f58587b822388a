// The CPU backend: the engine's kernels on the host (csrc/kernels, the
// global thread pool, the ISA level chosen at run time).
#pragma once
#include <memory>

#include "engine/backend.h"

namespace nm::engine {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace nm::engine
