// The GEMMs behind linear_cuda for more than 16 input rows
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

// The same product on mma.sync with a 3-stage cp.async pipeline
// (linear_mma_math.cuh): x rounded to bf16 once into pool scratch, then
// 128 x 128 x 32 tiles. cudaErrorNotSupported below compute capability 8.0
// or when W or its rows are not 16-byte aligned (mma_usable in
// linear_mma_math.cuh: linear_cuda then takes the WMMA kernel above).
cudaError_t linear_gemm_bf16_mma(const LinearArgs& a, cudaStream_t stream);

// f16 weights with ActRounding::None (float32 inputs) on the f16 tensor
// cores (linear_mma_math.cuh): each row of x scaled by a power of two and
// split in two f16 terms (22 significant bits), both multiplied by W; against
// linear() up to float32 summation order. cudaErrorNotSupported for other
// formats or roundings, W or its rows not 16-byte aligned, or below compute
// capability 8.0.
cudaError_t linear_gemm_f16_mma(const LinearArgs& a, cudaStream_t stream);

// Q8_0 / Q4_0 weights with ActRounding::Q8Block inputs on the int8 tensor
// cores (linear_mma_math.cuh): x quantized per 32-element block and the
// weights' quants staged as int8 rows in pool scratch, exact int32 sums per
// block, then Σ_b float(isum_b) · (d_x · d_w) in ascending b; against
// linear() up to float32 rounding. cudaErrorNotSupported for other formats
// or roundings, or below compute capability 8.0.
cudaError_t linear_gemm_q8_mma(const LinearArgs& a, cudaStream_t stream);

// y = round(x) W^T (+ b) on the CUDA cores for every other format and
// rounding (f32 / f16 / bf16 / Q8_0 / Q4_0 weights): each output is one
// fmaf chain over k in ascending order, from the rounded inputs and the
// dequantized weights of linear_math.cuh (gemv_load_x / gemv_load_w on
// 32-element tiles, zero past K), so the host emulation repeats it bit for
// bit; against linear() up to float32 summation order.
cudaError_t linear_gemm_simt(const LinearArgs& a, cudaStream_t stream);

}  // namespace nm::cuda
