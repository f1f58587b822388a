// Linear layers on the Quamba-style weight formats (core/dtype.h: I8 per
// output channel, I4 in groups of 128 along K), y = x Wᵀ + b as in linear.h,
// in three schemes (Quamba, arXiv:2410.13229; Quamba2, arXiv:2503.22879):
//
//   W8A8  (I8 weights, int8 inputs):
//     y[m, n] = s_x · s_w[n] · Σ_k q_x[m, k] · q_w[n, k]  + b[n]
//   W4A8  (I4 weights, int8 inputs):
//     y[m, n] = s_x · Σ_g s_w[n, g] · (Σ_{k ∈ g} q_x[m, k] · q_w[n, k])  + b[n]
//   W4A16 (I4 weights, float32 inputs):
//     y[m, n] = Σ_g s_w[n, g] · (Σ_{k ∈ g} x[m, k] · q_w[n, k])  + b[n]
//
// g runs over the groups of 128 consecutive k (the last may be shorter).
// Integer sums are exact (int32: |q_x·q_w| ≤ 127·127 over K < 2^17 terms);
// the float scaling, the sum over groups (in group order) and the W4A16
// products are float32.
//
// Inputs: int8 schemes take either float32 x with the static per-tensor
// scale s_x (x_scale > 0), quantized here as
//   q_x = clamp(nearbyint(x · inv_s), -127, 127),  inv_s = 1 / s_x in float32
// (round half to even; a NaN input gives a NaN output row, never a silent
// 0), or inputs already quantized (xq, e.g. by hadamard_quantize) with the
// scale they were quantized with (x_scale). W4A16 takes float32 x
// (x_scale = 0).
//
// Layouts (row-major, strides in elements):
//   x  [M, K] f32 (x_stride) or xq [M, K] int8 (xq_stride)
//   w  [N, ·] I8: N rows of K bytes (w_stride bytes apart, ≥ K);
//             I4: N rows of ceil(K / 64) chunks of 32 bytes (w_stride bytes
//             apart, ≥ dtype_row_bytes(I4, K))
//   w_scales  I8: [N] f32;  I4: [N, ceil(K / 128)] f32
//   or, with w_layout Panels (int8 inputs only: W8A8, W4A8), w is the
//   panel layout of core/dtype.h (qweight_pack_panels; any alignment, 64
//   bytes reads fastest; w_stride unused) and I4 scales are [ceil(N / 16), ceil(K / 128), 16]
//   bias [N] optional (f32 / f16 / bf16)
//   y  [M, N] f32 (y_stride)
//
// Rows of x are independent (batch invariance): row m's result never
// depends on the other rows, on M or on the path (GEMV or GEMM tiling),
// up to float32 summation order in W4A16.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace nm {

struct QLinearArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* x = nullptr;      // [M, K] f32, or
  int64_t x_stride = 0;
  const int32_t* x_rows = nullptr;  // optional [M] with x: row m is x + x_rows[m] * x_stride (as LinearArgs)
  const int8_t* xq = nullptr;    // [M, K] int8, already quantized with x_scale
  int64_t xq_stride = 0;
  float x_scale = 0.0f;          // > 0: int8 inputs (W8A8 / W4A8); 0: float inputs (W4A16, I4 only)
  const void* w = nullptr;
  int64_t w_stride = 0;          // bytes between weight rows (Rows layout)
  DType w_dtype = DType::I8;     // I8 or I4
  WeightLayout w_layout = WeightLayout::Rows;
  const float* w_scales = nullptr;
  const void* bias = nullptr;    // optional [N]
  DType bias_dtype = DType::F32;
  float* y = nullptr;            // [M, N] f32
  int64_t y_stride = 0;
};

// Symmetric int8 quantization of activations: q = clamp(nearbyint(x · inv_scale),
// -127, 127) for rows [0, M) of x [M, K]; a NaN x gives 0 (callers that must
// propagate NaN check the row, as qlinear does).
void quantize_act_int8(const float* x, int64_t xs, int64_t M, int64_t K, float inv_scale, int8_t* q, int64_t qs);

// out[0:K] = row `row` of an I8 / I4 weight [·, K] as float32: q · s (I8:
// the row's scale; I4: its group's), e.g. a quantized embedding's lookup.
// layout Rows: rows w_stride bytes apart, scales as stored; Panels: the
// panel layout and scales of qweight_pack_panels (w_stride unused). Also a
// Q8_0 / Q4_0 weight in panels (its values; scales unused).
void qweight_row_to_f32(const void* w, DType t, int64_t w_stride, const float* scales, int64_t row, int64_t K,
                        float* out, WeightLayout layout = WeightLayout::Rows);

// The Panels layout (core/dtype.h) of an I8 / I4 weight [N, K] stored as
// rows w_stride bytes apart: panels gets dtype_panel_bytes(t, N, K) bytes, panel_scales dtype_panel_scale_count(t, N, K) floats
// (I8: a copy of scales; I4: reordered per panel, padding rows 0; Q8_0 /
// Q4_0: scales and panel_scales unused, ggml_panels.h ggml_pack_panels).
// A weight may be packed in slices of whole panels (rows [r0, r1), r0 a
// multiple of kPanelRows: w + r0 · w_stride, scales + r0 · groups, panels +
// r0 · dtype_panel_row_bytes, panel_scales + r0 · groups). Multithreaded on the global pool. Throws std::invalid_argument for another
// format.
void qweight_pack_panels(const void* w, DType t, int64_t w_stride, const float* scales, int64_t N, int64_t K,
                         uint8_t* panels, float* panel_scales);

// Multithreaded on the global pool. Throws std::invalid_argument for a
// weight format that is not I8 / I4, float inputs with I8 weights, or float
// inputs with the Panels layout.
void qlinear(const QLinearArgs& a);

}  // namespace nm
