// The device-emulation backend: the CPU kernels on memory that host code
// reaches only through the backend (device_emulation_backend.cpp).
#pragma once
#include <memory>

#include "engine/backend.h"

namespace nm::engine {

std::unique_ptr<Backend> make_device_emulation_backend();

}  // namespace nm::engine
