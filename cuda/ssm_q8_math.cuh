// Per-element math of the CUDA int8-activation SSM kernels (cuda/ssm_q8.cu),
// shared with the host emulation. Semantics: kernels/ssm_q8.h: int8
// operands are dequantized (x̂ = q · s[c]) and the conv's output quantized
// (q = clamp(nearbyint(x · (1 / s[c])), ±127), NaN -> 0): the conv and the
// state update as they read and write (ConvQ8Io, UpdateQ8Operands), the
// prefill scans through float32 scratch.
#pragma once
#include "kernels/ssm_q8.h"
#include "math_common.cuh"

namespace nm::cuda {

NM_HD int8_t quantize_channel(float x, float scale) {
  const float v = rintf(x * (1.0f / scale));
  return v != v ? (int8_t)0 : (int8_t)fminf(127.0f, fmaxf(-127.0f, v));
}

NM_HD float dequantize_channel(int8_t q, float scale) { return (float)q * scale; }

// The q8 conv's activation I/O (cuda/conv1d_math.cuh): x̂ = q · s_x[c] in,
// quantize(v, s_out[c]) out, the numbers of dequantize, conv, quantize.
struct ConvQ8Io {
  ConvInt8Io io;
  NM_HD float in(int64_t t, int64_t c) const { return dequantize_channel(io.xq[t * io.xq_stride + c], io.x_scale[c]); }
  NM_HD void put(int64_t t, int64_t c, float v) const {
    io.outq[t * io.outq_stride + c] = quantize_channel(v, io.out_scale[c]);
  }
};

// The q8 state update's operands (cuda/selective_scan_math.cuh): x̂, B̂, Ĉ
// dequantized as they are read (batch strides of the Int8Operands).
struct UpdateQ8Operands {
  Int8Operand x, B, C;
  NM_HD float x_at(int64_t b, int64_t r) const { return dequantize_channel(x.q[b * x.batch_stride + r], x.scale[r]); }
  NM_HD float B_at(int64_t b, int64_t i) const { return dequantize_channel(B.q[b * B.batch_stride + i], B.scale[i]); }
  NM_HD float C_at(int64_t b, int64_t i) const { return dequantize_channel(C.q[b * C.batch_stride + i], C.scale[i]); }
};

// Element i of a [batch, tokens, width] dense float copy of an int8 operand
// (batch / token strides in elements).
NM_HD void dequantize_point(const Int8Operand& o, int64_t tokens, int64_t width, int64_t i, float* out) {
  const int64_t c = i % width, t = (i / width) % tokens, b = i / (width * tokens);
  out[i] = dequantize_channel(o.q[b * o.batch_stride + t * o.token_stride + c], o.scale[c]);
}

}  // namespace nm::cuda
