// The GEMM behind qlinear_cuda for more than 16 input rows (prefill of the
// Quamba formats, cuda/qlinear_gemm.cu); internal to cuda/.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/qlinear.h"

namespace nm::cuda {

// W8A8 and W4A8 bit for bit as qlinear() (exact int32 sums by __dp4a; W4A8
// the group chain f = fmaf(isum_g, s_w[n, g], f) in group order), W4A16 up to
// float32 summation order (each output one fmaf chain in ascending k).
// Arguments validated by the caller.
cudaError_t qlinear_gemm(const QLinearArgs& a, float inv, cudaStream_t stream);

}  // namespace nm::cuda
