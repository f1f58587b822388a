// Linear layers on Q8_0 weights packed into panels (core/dtype.h, "Q8_0 has
// a panel layout of its own"), with inputs rounded as ggml's Q8_0
// (linear.h ActRounding::Q8Block): the product llama.cpp computes for Q8_0
// weights,
//
//   y[m, n] = Σ_b d_w[n, b] · d_x[m, b] · Σ_{k ∈ b} q_w[n, k] · q_x[m, k]  + bias[n]
//
// over the blocks b of 32 consecutive k, the integer sums exact (int32) and
// the scaling and the sum over blocks float32, block after block. Every ISA
// level reads the same layout (the int8 dot products of qlinear's panels:
// vpdpbusd at the VNNI level, vpmaddubsw / vpmaddwd at AVX2 and AVX-512),
// so results agree across levels up to float32 rounding of the block sums.
// Equal to linear() on the Rows layout with Q8Block up to float32 summation
// order.
#pragma once
#include <cstdint>

#include "kernels/linear.h"

namespace nm {

// y = round(x) Wᵀ + b for a.w in the Q8_0 panel layout (a.w_layout Panels,
// a.w_dtype Q8_0, a.x_rounding Q8Block; a.w_stride unused; K a multiple of
// 32). Throws std::invalid_argument for any other combination.
void linear_q8_0_panels(const LinearArgs& a);

// Whether rows [0, N) of a Q8_0 weight (rows w_stride bytes apart) can be
// packed: no q is -128 (the vpmaddubsw levels take weights with a sign
// flip that -128 does not survive; ggml's quantizer writes -127..127).
bool q8_0_packable(const void* w, int64_t w_stride, int64_t N, int64_t K);

// The panels of N rows of a Q8_0 weight (rows w_stride bytes apart) into
// out (dtype_panel_bytes(Q8_0, N, K) bytes; padding rows zero). Throws
// std::invalid_argument when K is not a multiple of 32 or the weight is not
// q8_0_packable. Multithreaded on the global pool.
void q8_0_pack_panels(const void* w, int64_t w_stride, int64_t N, int64_t K, uint8_t* out);

// Row `row` of a Q8_0 panel weight of row length K as float32 (d · q).
void q8_0_panel_row_to_f32(const void* panels, int64_t K, int64_t row, float* out);

}  // namespace nm
