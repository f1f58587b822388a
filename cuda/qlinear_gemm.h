// The GEMMs behind qlinear_cuda for more than 16 input rows (prefill of the
// Quamba formats, cuda/qlinear_gemm.cu); internal to cuda/.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/qlinear.h"

namespace nm::cuda {

// W8A8 and W4A8 bit for bit as qlinear() (exact int32 sums; W4A8 the group
// chain f = fmaf(isum_g, s_w[n, g], f) in group order), W4A16 up to float32
// rounding. The int8 schemes run on the int8 tensor cores where the device
// has them (sm_80+), W4A16 on the f16 ones (inputs split in two f16 terms),
// else on the CUDA cores. Arguments validated by the caller.
cudaError_t qlinear_gemm(const QLinearArgs& a, float inv, cudaStream_t stream);

// The kernels, for benchmarks: the int8 tensor-core GEMM
// (cudaErrorNotSupported for W4A16 or a device before sm_80), the W4A16 one
// on the f16 tensor cores (inputs split in two f16 terms; not supported for
// the int8 schemes or before sm_80) and the SIMT GEMM (__dp4a for the int8
// schemes, fmaf for W4A16).
cudaError_t qlinear_gemm_int8_mma(const QLinearArgs& a, float inv, cudaStream_t stream);
cudaError_t qlinear_gemm_w4a16_mma(const QLinearArgs& a, cudaStream_t stream);
cudaError_t qlinear_gemm_simt(const QLinearArgs& a, float inv, cudaStream_t stream);

}  // namespace nm::cuda
