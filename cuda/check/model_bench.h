// Whole-model timings of nm_gpu_check on a GPU (model_bench.cpp): prefill
// and batch-1 decode of Mamba-1 at the mamba-130m and 1.4B shapes, decode
// with and without CUDA graphs, as one table; copy_gbs is the device's
// measured copy bandwidth (read + write) for the "of copy" column.
#pragma once

namespace nm::check {

bool run_model_benchmarks(double copy_gbs);

// The timed checkpoint at a tiny shape on the device-emulation backend (the
// host emulation's check that the benchmark's model loads and runs).
bool model_bench_smoke();

}  // namespace nm::check
