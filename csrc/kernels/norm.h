// RMSNorm with fused residual add, and gated RMSNorm (Mamba-2).
//
//   rms_norm:        r = x + residual_in (or r = x);  residual_out = r;
//                    out = r * rsqrt(mean(r^2) + eps) * weight
//   gated_rms_norm:  g = y * silu(z) (or g = y);  per group of group_size
//                    channels: out = g * rsqrt(mean(g^2) + eps) * weight
//                    (state-spaces/mamba RMSNormGated, norm_before_gate=False)
//
// Rows are tokens; every row has its own stride (in elements). Buffers may
// alias elementwise (out == x, residual_out == residual_in): each element is
// read before it is written.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace nm {

struct RmsNormArgs {
  int64_t rows = 0, dim = 0;
  const float* x = nullptr;            // [rows, dim]
  int64_t x_stride = 0;
  const float* residual_in = nullptr;  // optional [rows, dim], f32
  int64_t residual_in_stride = 0;
  float* residual_out = nullptr;       // optional [rows, dim], f32
  int64_t residual_out_stride = 0;
  const void* weight = nullptr;        // [dim]
  DType weight_dtype = DType::F32;
  float eps = 1e-5f;
  float* out = nullptr;                // [rows, dim]
  int64_t out_stride = 0;
};

struct GatedRmsNormArgs {
  int64_t rows = 0, dim = 0, group_size = 0;  // dim % group_size == 0
  const float* y = nullptr;   // [rows, dim]
  int64_t y_stride = 0;
  const float* z = nullptr;   // optional gate [rows, dim]
  int64_t z_stride = 0;
  const void* weight = nullptr;  // [dim]
  DType weight_dtype = DType::F32;
  float eps = 1e-5f;
  float* out = nullptr;       // [rows, dim]
  int64_t out_stride = 0;
};

// Multithreaded over rows on the global pool.
void rms_norm(const RmsNormArgs& a);
void gated_rms_norm(const GatedRmsNormArgs& a);

}  // namespace nm
