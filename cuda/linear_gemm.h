// The tensor-core GEMM behind linear_cuda for more than 16 input rows
// (cuda/linear_gemm.cu); internal to cuda/.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/linear.h"

namespace nm::cuda {

// y = round_bf16(x) W^T (+ b) for BF16 weights with ActRounding::BF16 (the
// CPU's bf16 path: the products are exact, so the result equals linear()'s
// up to float32 summation order). Arguments validated by the caller.
// cudaErrorNotSupported below compute capability 8.0 (no bf16 tensor cores).
cudaError_t linear_gemm_bf16(const LinearArgs& a, cudaStream_t stream);

}  // namespace nm::cuda
