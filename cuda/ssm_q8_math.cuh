// Per-element math of the CUDA int8-activation SSM kernels (cuda/ssm_q8.cu),
// shared with the host emulation. Semantics: kernels/ssm_q8.h: each call
// dequantizes its int8 operands (x̂ = q · s[c]) into float32 scratch, runs
// the float CUDA kernel, and quantizes the conv's output
// (q = clamp(nearbyint(x · (1 / s[c])), ±127), NaN -> 0).
#pragma once
#include "kernels/ssm_q8.h"
#include "math_common.cuh"

namespace nm::cuda {

NM_HD int8_t quantize_channel(float x, float scale) {
  const float v = rintf(x * (1.0f / scale));
  return v != v ? (int8_t)0 : (int8_t)fminf(127.0f, fmaxf(-127.0f, v));
}

NM_HD float dequantize_channel(int8_t q, float scale) { return (float)q * scale; }

// Element i of a [batch, tokens, width] dense float copy of an int8 operand
// (batch / token strides in elements).
NM_HD void dequantize_point(const Int8Operand& o, int64_t tokens, int64_t width, int64_t i, float* out) {
  const int64_t c = i % width, t = (i / width) % tokens, b = i / (width * tokens);
  out[i] = dequantize_channel(o.q[b * o.batch_stride + t * o.token_stride + c], o.scale[c]);
}

}  // namespace nm::cuda
