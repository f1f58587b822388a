// Per-element math of the CUDA embedding gather and elementwise kernels
// (cuda/elementwise.cu), shared with the host emulation (cuda/check).
// Semantics: kernels/embedding.h, engine/backend.h (scale, add) and
// kernels/moe.h (swiglu_rows).
#pragma once
#include "kernels/embedding.h"
#include "math_common.cuh"

namespace nm::cuda {

constexpr int kElementwiseThreads = 256;

// Element k of table row `row` (Rows layout; row_bytes = dtype_row_bytes(dtype, dim)):
//   f32 / f16 / bf16: the value; Q8_0 / Q4_0: d · q of its 32-element block;
//   I8: scale[row] · q; I4: scale[row, k / 128] · q, q from chunk k / 64
//   (byte k % 32 of the chunk, low nibble for k % 64 < 32, stored q + 8).
// Each is exact in float32, as the CPU's conversion.
NM_HD float embedding_value(const EmbeddingArgs& a, int64_t row_bytes, int64_t row, int64_t k) {
  const uint8_t* r = static_cast<const uint8_t*>(a.table) + row * row_bytes;
  switch (a.dtype) {
    case DType::F32: return reinterpret_cast<const float*>(r)[k];
    case DType::F16: return half_bits_to_float((uint16_t)(r[2 * k] | (r[2 * k + 1] << 8)));
    case DType::BF16: return bf16_bits_to_float((uint16_t)(r[2 * k] | (r[2 * k + 1] << 8)));
    case DType::Q8_0: {
      const uint8_t* b = r + (k / 32) * 34;
      return half_bits_to_float((uint16_t)(b[0] | (b[1] << 8))) * (float)(int8_t)b[2 + k % 32];
    }
    case DType::Q4_0: {
      const uint8_t* b = r + (k / 32) * 18;
      const int j = (int)(k % 32);
      const int q = (j < 16 ? (b[2 + j] & 0x0f) : (b[2 + j - 16] >> 4)) - 8;
      return half_bits_to_float((uint16_t)(b[0] | (b[1] << 8))) * (float)q;
    }
    case DType::I8: return (float)(int8_t)r[k] * a.scales[row];
    case DType::I4: {
      const int64_t groups = (a.dim + 127) / 128;
      const uint8_t b = r[(k / 64) * 32 + (k % 64) % 32];
      const int q = ((k % 64) < 32 ? (b & 0x0f) : (b >> 4)) - 8;
      return (float)q * a.scales[row * groups + k / 128];
    }
  }
  return 0.0f;
}

// h[r, i] = silu(gu[r, i]) · gu[r, up_off + i] (the rows' strides apart).
NM_HD float swiglu_value(const float* gu_row, int64_t up_off, int64_t i) {
  return silu(gu_row[i]) * gu_row[up_off + i];
}

}  // namespace nm::cuda
