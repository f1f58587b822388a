// The GEMMs behind qlinear_cuda for more than 16 input rows (prefill of the
// Quamba formats, cuda/qlinear_gemm.cu); internal to cuda/.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/qlinear.h"

namespace nm::cuda {

// W8A8 and W4A8 bit for bit as qlinear() (exact int32 sums; W4A8 the group
// chain f = fmaf(isum_g, s_w[n, g], f) in group order), W4A16 up to float32
// summation order (each output one fmaf chain in ascending k). The int8
// schemes run on the tensor cores where the device has them (sm_80+), else
// on the CUDA cores. Arguments validated by the caller.
cudaError_t qlinear_gemm(const QLinearArgs& a, float inv, cudaStream_t stream);

// The two kernels, for benchmarks: the int8 tensor-core GEMM
// (cudaErrorNotSupported for W4A16 or a device before sm_80) and the SIMT
// GEMM (__dp4a for the int8 schemes, fmaf for W4A16).
cudaError_t qlinear_gemm_int8_mma(const QLinearArgs& a, float inv, cudaStream_t stream);
cudaError_t qlinear_gemm_simt(const QLinearArgs& a, float inv, cudaStream_t stream);

}  // namespace nm::cuda
