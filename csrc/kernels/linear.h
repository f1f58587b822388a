// Linear layer (PyTorch nn.Linear / F.linear):
//
//   y[m, n] = sum_k x[m, k] * w[n, k] + bias[n]      (y = x W^T + b)
//
// for m < M, n < N, k < K, computed and accumulated in float32 (weights and
// bias in f16 / bf16 are widened exactly to float32 as they are read). This is
// the in_proj / out_proj / lm_head of state-spaces/mamba (nn.Linear).
//
// Layouts (row-major, strides in ELEMENTS, the last axis contiguous):
//   x    [M, K]  float32, row m at x + m * x_stride        (x_stride >= K)
//   w    [N, K]  f32 / f16 / bf16 / q8_0 / q4_0 (w_dtype), row n at
//                w + n * w_stride elements (w_stride >= K): the nn.Linear
//                weight layout [out, in]
//   bias [N]     optional (nullptr = none), f32 / f16 / bf16 (bias_dtype)
//   y    [M, N]  float32, row m at y + m * y_stride        (y_stride >= N)
// y must not overlap x, w or bias. Any M, N, K >= 0: K == 0 gives y = bias
// (or 0); M == 0 or N == 0 writes nothing.
//
// Quantized weights (w_dtype Q8_0 / Q4_0, ggml block formats, core/dtype.h):
// each row of W is K / 32 blocks of 32 weights along K, so K and w_stride
// must be multiples of 32 (callers check; the kernel does not). w_stride
// stays in ELEMENTS for every dtype: row n starts at byte
// dtype_row_bytes(w_dtype, n * w_stride), i.e. n * (w_stride / 32) blocks
// (34 bytes per block for Q8_0, 18 for Q4_0). Blocks are dequantised as they
// are read (exactly: d * q is representable in float32), never expanded into
// memory: GEMV dequantises each block in registers, GEMM into its packed f32
// panels. Both visit K in the same order as for f32 weights, so a quantized
// weight gives bit for bit the result of the same path on the dequantised
// f32 weight. The bias is never quantized.
//
// Two algorithms (linear() picks by M, see kLinearGemvMaxRows):
//   GEMV (decode, small M): each weight row is streamed from memory once and
//     dotted with all M input rows at the same time; parallel over N.
//   GEMM (prefill, large M): panels of W are packed (converted to f32,
//     transposed into NR-wide strips) into per-thread scratch, cache-blocked
//     over K, register-tiled micro-kernel; parallel over N (and M when N is
//     small). For a few tens of rows (a mixture-of-experts prefill's expert
//     products) x is transposed instead and W read in place, with the same
//     result bit for bit.
// Both give the same result up to float32 summation order.
//
// Rounded activations (x_rounding, default None = exact float32 x): the
// kernel computes y = round(x) W^T + b, where round() is
//   BF16     each x[m, k] rounded to bfloat16 (nearest even);
//   Q8Block  each run of 32 elements of a row of x (the last run of a row
//            may be shorter) quantized to int8 with one float scale, as
//            ggml's Q8_0: d = amax / 127, q = nearbyint(x * (127 / amax))
//            (0 when amax == 0), round(x) = d * q.
// This is what llama.cpp does for bf16 and Q8_0/Q4_0 weights, and it lets
// the GEMV use integer / bf16 dot-product instructions where the CPU has
// them (the Avx512Vnni level: vpdpbusd for Q8_0/Q4_0 weights with Q8Block,
// vdpbf16ps for BF16 weights with BF16). Every other combination and level
// rounds x into a float32 copy and runs the exact path on it, so all levels
// agree up to float32 summation order. Rounding is per row, so a row's
// result never depends on the other rows (batch invariance holds).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace nm {

enum class ActRounding : int32_t { None = 0, BF16 = 1, Q8Block = 2 };

struct LinearArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* x = nullptr;      // [M, K] f32
  int64_t x_stride = 0;
  // Optional [M]: input row m is x + x_rows[m] * x_stride (a gather of
  // arbitrary rows, read where the kernels load x: the mixture-of-experts
  // dispatch's tokens of one expert). Indices are not checked.
  const int32_t* x_rows = nullptr;
  const void* w = nullptr;       // [N, K]
  int64_t w_stride = 0;
  DType w_dtype = DType::F32;
  // Rows (above) or, for Q8_0 / Q4_0 with x_rounding Q8Block only, their
  // panel layout of core/dtype.h (kernels/ggml_panels.h; w_stride unused).
  WeightLayout w_layout = WeightLayout::Rows;
  const void* bias = nullptr;    // optional [N]
  DType bias_dtype = DType::F32;
  float* y = nullptr;            // [M, N] f32
  int64_t y_stride = 0;
  ActRounding x_rounding = ActRounding::None;  // see above
};

// round(x) of the rounded-activation modes above, as float32, for rows
// [0, M) of x [M, K] (stride xs) into out [M, K] (stride os). Portable code;
// the reference for the dot-product paths.
void round_activations(ActRounding mode, const float* x, int64_t xs, int64_t M, int64_t K, float* out, int64_t os,
                       const int32_t* x_rows = nullptr);

// Row m of a's input x (LinearArgs::x_rows when set). For the portable
// translation units only: the per-level impl headers keep their own static
// copy (kernels/simd/README.md: no shared inline symbols).
inline const float* linear_x_row(const float* x, int64_t xs, const int32_t* x_rows, int64_t m) {
  return x + (x_rows ? (int64_t)x_rows[m] : m) * xs;
}

enum class LinearAlgo : int32_t { Auto = 0, Gemv = 1, Gemm = 2 };

// Largest M for which Auto uses the GEMV path. Measured on a 2-core AVX-512
// Zen 4 (K=768, N=3072 and K=1536, N=768, f32 and bf16 weights): GEMV is
// 1.1-1.8x faster than GEMM up to M=16, they tie around M=24-32, GEMM wins
// from M~48 on (its 12-row tiles and the W packing cost little there).
constexpr int64_t kLinearGemvMaxRows = 16;

// The SwiGLU of a gated MLP computed in the epilogue of its products:
//   h[m, i] = silu(g[m, i]) · u[m, i],  g = round(x) W_gateᵀ, u = round(x) W_upᵀ,
// with W_gate = a.w (N = I rows) and W_up = w_up (I rows of the same format
// and row stride), without the [M, 2I] products in memory. Runs where the
// few-row GEMM runs (see above; M > kLinearGemvMaxRows, no bias, the Float-
// kernel formats) and returns true; otherwise writes nothing and returns
// false, and the caller runs the two products and the SwiGLU itself. The
// result equals that of linear() for both halves followed by moe.h's
// swiglu_rows, bit for bit. a.y is unused.
struct LinearSwiglu {
  const void* w_up = nullptr;
  float* h = nullptr;  // [M, I]
  int64_t h_stride = 0;
};
bool linear_swiglu(const LinearArgs& a, const LinearSwiglu& sw);

// Multithreaded on the global pool. `algo` forces one path (both handle every
// shape); Auto picks GEMV for M <= kLinearGemvMaxRows, else GEMM.
void linear(const LinearArgs& a, LinearAlgo algo = LinearAlgo::Auto);

}  // namespace nm
