// Host emulation of the CUDA kernels (cuda/kernels.h): the same argument
// checks and the same per-thread functions (cuda/*_math.cuh), run in a loop
// over the grid on the host, phase by phase where the kernel has barriers.
// Host pointers; returns what the launcher would (without launching).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels.h"

namespace nm::cuda::emulate {

cudaError_t embedding(const EmbeddingArgs& a);
cudaError_t scale(float* x, int64_t n, float s);
cudaError_t add(const float* a, const float* b, float* out, int64_t n);
cudaError_t swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                        int64_t I);
cudaError_t rms_norm(const RmsNormArgs& a);
cudaError_t gated_rms_norm(const GatedRmsNormArgs& a);
cudaError_t causal_conv1d(const CausalConv1dArgs& a);
cudaError_t causal_conv1d_update(const CausalConv1dUpdateArgs& a);
cudaError_t selective_scan(const SelectiveScanArgs& a, const ScanTuning& t = {});
cudaError_t ssd_chunk_scan(const SsdChunkScanArgs& a, const SsdTuning& t = {});
cudaError_t selective_state_update(const SelectiveStateUpdateArgs& a);
cudaError_t kv_cache_append(const KvCacheAppendArgs& a);
cudaError_t paged_attention(const PagedAttentionArgs& a, int method = 0);
cudaError_t rope(const RopeArgs& a);
cudaError_t quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride,
                                   const float* scale, int8_t* q, int64_t q_stride);
cudaError_t causal_conv1d_q8(const CausalConv1dQ8Args& a);
cudaError_t causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a);
cudaError_t selective_state_update_q8(const SelectiveStateUpdateQ8Args& a);
cudaError_t selective_scan_q8(const SelectiveScanQ8Args& a);
cudaError_t ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a);
cudaError_t hadamard_transform(const HadamardArgs& a);
cudaError_t hadamard_quantize(const HadamardQuantArgs& a);
cudaError_t linear(const LinearArgs& a);
cudaError_t qlinear(const QLinearArgs& a);
// The CUDA-core GEMMs (M > 16) of every format, which devices before sm_80
// run where newer ones take the tensor cores (cuda/linear_gemm.h
// linear_gemm_simt, cuda/qlinear_gemm.h qlinear_gemm_simt).
cudaError_t linear_gemm_simt(const LinearArgs& a);
cudaError_t qlinear_gemm_simt(const QLinearArgs& a);
cudaError_t moe_route(const MoeRouteArgs& a);
cudaError_t moe(const MoeArgs& a);

}  // namespace nm::cuda::emulate
