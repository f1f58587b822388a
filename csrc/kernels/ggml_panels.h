// Linear layers on ggml block weights (Q8_0, Q4_0) packed into panels
// (core/dtype.h, "Q8_0 and Q4_0 have panel layouts of their own"), with
// inputs rounded as ggml's Q8_0 (linear.h ActRounding::Q8Block): the product
// llama.cpp computes for these weights,
//
//   y[m, n] = Σ_b d_w[n, b] · d_x[m, b] · Σ_{k ∈ b} q_w[n, k] · q_x[m, k]  + bias[n]
//
// over the blocks b of 32 consecutive k (Q4_0: q_w = nibble - 8), the
// integer sums exact (int32) and the scaling and the sum over blocks
// float32, block after block. Every ISA level reads the same layout (the
// int8 dot products of qlinear's panels: vpdpbusd at the VNNI level,
// vpmaddubsw / vpmaddwd at AVX2 and AVX-512), so results agree across
// levels up to float32 rounding of the block sums, and equal linear() on
// the Rows layout with Q8Block up to float32 summation order.
#pragma once
#include <cstdint>

#include "kernels/linear.h"

namespace nm {

// Bytes of one block of 32 columns of a 16-row panel.
int64_t ggml_panel_block_bytes(DType t);

// y = round(x) Wᵀ + b for a.w in the panel layout of a.w_dtype (Q8_0 or
// Q4_0; a.w_layout Panels, a.x_rounding Q8Block; a.w_stride unused; K a
// multiple of 32). Throws std::invalid_argument for any other combination.
void linear_ggml_panels(const LinearArgs& a);

// Whether rows [0, N) of a Q8_0 / Q4_0 weight (rows w_stride bytes apart)
// can be packed: Q8_0 with no q of -128 (the vpmaddubsw levels take
// weights with a sign flip that -128 does not survive; ggml's quantizer
// writes -127..127); Q4_0 always.
bool ggml_packable(DType t, const void* w, int64_t w_stride, int64_t N, int64_t K);

// The panels of N rows of a Q8_0 / Q4_0 weight (rows w_stride bytes apart)
// into out (dtype_panel_bytes(t, N, K) bytes; padding rows zero). Throws
// std::invalid_argument when K is not a multiple of 32 or the format has no
// such panels. The caller checks ggml_packable first (the engine per slice,
// falling back to rows; the JS binding with a RangeError), so that the
// weight is scanned once. Multithreaded on the global pool.
void ggml_pack_panels(DType t, const void* w, int64_t w_stride, int64_t N, int64_t K, uint8_t* out);

// Row `row` of a Q8_0 / Q4_0 panel weight of row length K as float32.
void ggml_panel_row_to_f32(DType t, const void* panels, int64_t K, int64_t row, float* out);

}  // namespace nm
