// Timings of the CUDA kernels at the benchmark shapes (bench.cpp).
#pragma once
#include "runtime.h"

namespace nm::check {

// Measures the device copy bandwidth and every kernel/shape, then prints one
// table. False on a CUDA error.
bool run_benchmarks(const nm::cuda::RuntimeStatus& rt);

}  // namespace nm::check
