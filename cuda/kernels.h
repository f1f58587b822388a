// CUDA twins of the CPU kernels (csrc/kernels): the same argument structs,
// with every pointer a DEVICE pointer and the strides as on the CPU. Each
// launcher validates its arguments as the CPU twin does (kernels_validate.h),
// enqueues the work on `stream` and returns the launch status; it never
// throws and never synchronises. cudaErrorInvalidValue: arguments the CPU twin
// rejects (or would misread); cudaErrorNotSupported: an option this CUDA
// version does not implement (e.g. a weight type other than f32/f16/bf16).
// Contents the host cannot see (cu_seqlens, state_indices) are the caller's
// to validate, as on the CPU.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/attention.h"
#include "kernels/conv1d.h"
#include "kernels/embedding.h"
#include "kernels/hadamard.h"
#include "kernels/linear.h"
#include "kernels/moe.h"
#include "kernels/qlinear.h"
#include "kernels/norm.h"
#include "kernels/selective_scan.h"
#include "kernels/ssd.h"
#include "kernels/ssm_q8.h"

namespace nm::cuda {

// Embedding rows of a table in the Rows layout (any format; cuda/elementwise.cu);
// a token outside [0, rows) gives a zero row (the caller checks them).
cudaError_t embedding_cuda(const EmbeddingArgs& a, cudaStream_t stream);
// x *= s; out = a + b (n floats); h = silu(gate) · up per row (kernels/moe.h swiglu_rows).
cudaError_t scale_cuda(float* x, int64_t n, float s, cudaStream_t stream);
cudaError_t add_cuda(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
cudaError_t swiglu_rows_cuda(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride,
                             int64_t rows, int64_t I, cudaStream_t stream);

cudaError_t rms_norm_cuda(const RmsNormArgs& a, cudaStream_t stream);
cudaError_t gated_rms_norm_cuda(const GatedRmsNormArgs& a, cudaStream_t stream);

cudaError_t causal_conv1d_cuda(const CausalConv1dArgs& a, cudaStream_t stream);
cudaError_t causal_conv1d_update_cuda(const CausalConv1dUpdateArgs& a, cudaStream_t stream);

// The Mamba-1 prefill scan, one of two kernels (ScanTuning::method):
//   tiles (2): one pass, a block per (batch row, 8 channels) walking the
//     sequence in tiles of 256 tokens, the tokens of a tile scanned in
//     parallel (selective_scan_tiles_math.cuh); no workspace;
//   chunks (1): three passes, parallel over chunks of tokens and, for
//     dstate 16, pairs of threads per channel (selective_scan_math.cuh).
//     More than one chunk needs a device workspace.
// selective_scan_cuda_workspace_bytes() says how much (0: none) for the same
// tuning: `workspace`, or when null memory from the stream-ordered pool
// (cudaMallocAsync / cudaFreeAsync on `stream`). ScanTuning: 0 = chosen from
// the shape (the tests and benchmarks set them).
struct ScanTuning {
  int64_t chunk_len = 0;  // chunks: tokens per chunk
  int parts = 0;          // chunks: threads per channel, 1 or 2 (dstate 16 only)
  int method = 0;         // 1: chunks, 2: tiles (scan_method)
};
size_t selective_scan_cuda_workspace_bytes(const SelectiveScanArgs& a, const ScanTuning& t = {});
cudaError_t selective_scan_cuda(const SelectiveScanArgs& a, cudaStream_t stream, void* workspace = nullptr,
                                const ScanTuning& t = {});
// The Mamba-2 prefill (kernels/ssd.h). Method 2, "chunks": chunked matrix
// form on the tensor cores in 3xTF32 (cuda/ssd_chunks_math.cuh; sm_80 and
// newer, headdim <= 128, the shared memory the device opts in to). Method 1,
// the recurrence: parallel over chunks of the packed token axis of
// `chunk_len` tokens (0: chosen from the shape), channels and parts of the
// state (cuda/ssd_math.cuh). Method 0 takes the chunks where they apply. The
// CPU's a.chunk_size is its own tile and applies to neither. Workspace as
// selective_scan_cuda; a method the device or shape does not allow:
// cudaErrorNotSupported.
struct SsdTuning {
  int method = 0;
  int64_t chunk_len = 0;  // method 1 only
};
size_t ssd_chunk_scan_cuda_workspace_bytes(const SsdChunkScanArgs& a, const SsdTuning& t = {});
cudaError_t ssd_chunk_scan_cuda(const SsdChunkScanArgs& a, cudaStream_t stream, void* workspace = nullptr,
                                const SsdTuning& t = {});

// Attention over the paged KV cache (kernels/attention.h): the cache
// append, paged attention (a warp per query and head, one key per step,
// cuda/attention_math.cuh; or, for prefill, tiles) and RoPE. head_dim <= 256.
cudaError_t kv_cache_append_cuda(const KvCacheAppendArgs& a, cudaStream_t stream);
// method: 0 chosen from the shape, 1 a warp per query (decode), 2 tiles of
// 32 queries x 32 keys in shared memory (prefill, head_dim <= 128;
// cuda/attention_tiles_math.cuh).
cudaError_t paged_attention_cuda(const PagedAttentionArgs& a, cudaStream_t stream, int method = 0);
cudaError_t rope_cuda(const RopeArgs& a, cudaStream_t stream);

// Hadamard rotation and its fused int8 quantization (kernels/hadamard.h),
// bit for bit as the CPU's; n <= 8192 (larger: cudaErrorNotSupported).
cudaError_t hadamard_transform_cuda(const HadamardArgs& a, cudaStream_t stream);
cudaError_t hadamard_quantize_cuda(const HadamardQuantArgs& a, cudaStream_t stream);

// Int8-activation SSM kernels (kernels/ssm_q8.h): dequantize into pool
// scratch, the float CUDA kernel, requantize the conv output; and the
// per-channel quantization itself.
cudaError_t quantize_channels_int8_cuda(int64_t rows, int64_t channels, const float* x, int64_t x_stride,
                                        const float* scale, int8_t* q, int64_t q_stride, cudaStream_t stream);
cudaError_t causal_conv1d_q8_cuda(const CausalConv1dQ8Args& a, cudaStream_t stream);
cudaError_t causal_conv1d_update_q8_cuda(const CausalConv1dUpdateQ8Args& a, cudaStream_t stream);
cudaError_t selective_scan_q8_cuda(const SelectiveScanQ8Args& a, cudaStream_t stream);
cudaError_t selective_state_update_q8_cuda(const SelectiveStateUpdateQ8Args& a, cudaStream_t stream);
cudaError_t ssd_chunk_scan_q8_cuda(const SsdChunkScanQ8Args& a, cudaStream_t stream);

cudaError_t selective_state_update_cuda(const SelectiveStateUpdateArgs& a, cudaStream_t stream);

// Decode GEMV (M <= 16 input rows). More rows: a GEMM, on the tensor cores
// for bf16 weights with ActRounding::BF16 (compute capability 8.0 and up),
// else on the CUDA cores (cuda/linear_gemm.h). linear_cuda: f32 / f16 / bf16 /
// Q8_0 / Q4_0 weights, every ActRounding, equal to linear() up to float32
// summation order. qlinear_cuda: I8 / I4 weights, W8A8 and W4A8 bit for bit
// as qlinear() (exact int32 sums, the same float steps), W4A16 up to float32
// summation order; float x is quantized per element as qlinear() does (a
// NaN row gives NaN outputs), or xq is read as given.
cudaError_t linear_cuda(const LinearArgs& a, cudaStream_t stream);
// qlinear_cuda with M > 16: a GEMM with the same arithmetic (cuda/qlinear_gemm.h).
cudaError_t qlinear_cuda(const QLinearArgs& a, cudaStream_t stream);

// Mixture of experts (kernels/moe.h; cuda/moe.cu, math in cuda/moe_math.cuh).
// moe_route_cuda: the three routers, a thread per token; ids and weights as
// moe_route (weights up to expf's rounding). moe_cuda: the fused dispatch
// (align, gate/up with SwiGLU in the epilogue, down with the routed weight,
// slot-order combine), every pointer a device pointer, the experts tables
// included; expert weights f32 / f16 / bf16 / Q8_0 / Q4_0 (I8 / I4:
// cudaErrorNotSupported), equal to moe() up to float32 summation order. Its
// scratch is moe_cuda_workspace_bytes() of `workspace`, or when null memory
// from the stream-ordered pool; MoeArgs::workspace (the CPU's) is not used.
cudaError_t moe_route_cuda(const MoeRouteArgs& a, cudaStream_t stream);
size_t moe_cuda_workspace_bytes(const MoeArgs& a);
cudaError_t moe_cuda(const MoeArgs& a, cudaStream_t stream, void* workspace = nullptr);

}  // namespace nm::cuda
