// The bench's variants of the f16 decode GEMV (cuda/check/gemv_variants.cu),
// built into nm_gpu_check only: the addon launches what linear_cuda chooses.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/linear.h"

namespace nm::cuda {

// The decode GEMV of f16 weights at one input row (float inputs) with
// `warps_per_row` warps per output row (1, 2 or 4) and `batch` chunks' loads
// issued together per lane (1, 2 or 4; not 4 with 2 or 4 warps), whatever
// linear_cuda would choose. cudaErrorNotSupported for anything else.
cudaError_t linear_gemv_variant_cuda(const LinearArgs& a, int warps_per_row, int batch, cudaStream_t stream);

}  // namespace nm::cuda
