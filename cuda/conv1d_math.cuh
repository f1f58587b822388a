// Per-thread math of the CUDA causal conv1d kernels (cuda/conv1d.cu), shared
// with the host emulation (cuda/check). Semantics: kernels/conv1d.h.
//
// Prefill: one thread per (channel, block of kConvTokensPerThread tokens)
// slides the window over its tokens in registers, so each input is read once
// (plus W-1 at the block's start); at a sequence's first token the window
// restarts from that sequence's initial state. One thread per (sequence,
// channel, tap) writes the final state; neither writes anything another
// thread reads (out and final_state overlap no input, kernels/conv1d.h).
// Decode: one thread per (row, channel) reads its slot's W-1 taps, writes
// the output and shifts the taps.
// The sum is accumulated in the CPU kernel's order (bias + w[W-1]·x, then
// taps oldest first, each an fma), so without silu the results are equal to
// the CPU twin's bit for bit.
//
// Every function reads its inputs and writes its outputs through an
// activation I/O `io`: ConvFloatIo (the args' own x and out) here, ConvQ8Io
// (int8 in and out, cuda/ssm_q8_math.cuh) for the int8 SSM path, so that one
// kernel does what dequantize, conv and quantize did in three passes.
#pragma once
#include "kernels/conv1d.h"
#include "math_common.cuh"

namespace nm::cuda {

// Float activations: x[t, c] in, out[t, c] out (t a token or a decode row).
struct ConvFloatIo {
  const float* x;
  int64_t x_stride;
  float* out;
  int64_t out_stride;
  template <class Args>
  static ConvFloatIo of(const Args& a) { return {a.x, a.x_stride, a.out, a.out_stride}; }
  NM_HD float in(int64_t t, int64_t c) const { return x[t * x_stride + c]; }
  NM_HD void put(int64_t t, int64_t c, float v) const { out[t * out_stride + c] = v; }
};

// in(p, c) of sequence s (base = its first token, p relative to it).
template <class Io>
NM_HD float conv_input(const CausalConv1dArgs& a, const Io& io, int64_t s, int64_t base, int64_t p, int64_t c) {
  if (p >= 0) return io.in(base + p, c);
  if (!a.initial_state) return 0.0f;
  return a.initial_state[s * a.init_seq_stride + c * a.init_ch_stride + (a.width - 1 + p)];
}

constexpr int64_t kConvTokensPerThread = 16;

// out[t, c] for the tokens t of block `tb` (tokens tb * kConvTokensPerThread
// onwards, within a.tokens) and channel c.
template <class Io>
NM_HD void conv_prefill_block(const CausalConv1dArgs& a, const Io& io, int64_t tb, int64_t c) {
  constexpr int kMaxTaps = (int)kConv1dMaxWidth - 1;
  const int64_t W = a.width, t0 = tb * kConvTokensPerThread;
  const int64_t t1 = t0 + kConvTokensPerThread < a.tokens ? t0 + kConvTokensPerThread : a.tokens;
  if (t0 >= t1) return;
  const int64_t wrow = c * a.weight_stride;
  float w[kMaxTaps], win[kMaxTaps];  // taps k < W-1; win[k] = in(p - (W-1) + k)
NM_UNROLL
  for (int k = 0; k < kMaxTaps; ++k) w[k] = k < W - 1 ? load_float(a.weight, a.weight_dtype, wrow + k) : 0.0f;
  const float wx = load_float(a.weight, a.weight_dtype, wrow + W - 1);  // the current token's tap
  const float b = a.bias ? load_float(a.bias, a.bias_dtype, c) : 0.0f;
  int64_t s = a.cu_seqlens ? sequence_of(a.cu_seqlens, a.nseq, t0) : 0;
  int64_t base = a.cu_seqlens ? a.cu_seqlens[s] : 0;
  int64_t next = a.cu_seqlens ? a.cu_seqlens[s + 1] : a.tokens;  // first token of the next sequence
  const int64_t p0 = t0 - base;
NM_UNROLL
  for (int k = 0; k < kMaxTaps; ++k) win[k] = k < W - 1 ? conv_input(a, io, s, base, p0 - (W - 1) + k, c) : 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    if (t == next) {  // a new sequence (empty ones hold no token: skip them)
      while ((int64_t)a.cu_seqlens[s + 1] <= t) ++s;
      base = a.cu_seqlens[s], next = a.cu_seqlens[s + 1];
NM_UNROLL
      for (int k = 0; k < kMaxTaps; ++k) win[k] = k < W - 1 ? conv_input(a, io, s, base, k - (W - 1), c) : 0.0f;
    }
    const float xv = io.in(t, c);
    float acc = fmaf(wx, xv, b);
NM_UNROLL
    for (int k = 0; k < kMaxTaps; ++k)
      if (k < W - 1) acc = fmaf(w[k], win[k], acc);
    // Slide: drop the oldest input, append this token's.
NM_UNROLL
    for (int k = 0; k < kMaxTaps; ++k)
      if (k < W - 1) win[k] = k + 1 < W - 1 ? win[k + 1] : xv;
    if (a.silu) acc = silu(acc);
    io.put(t, c, acc);
  }
}

// final_state[s, c, j] = in(len - (W-1) + j, c).
template <class Io>
NM_HD void conv_final_state_point(const CausalConv1dArgs& a, const Io& io, int64_t s, int64_t c, int64_t j) {
  const int64_t base = a.cu_seqlens ? a.cu_seqlens[s] : 0;
  const int64_t len = a.cu_seqlens ? (int64_t)a.cu_seqlens[s + 1] - base : a.tokens;
  a.final_state[s * a.final_seq_stride + c * a.final_ch_stride + j] =
      conv_input(a, io, s, base, len - (a.width - 1) + j, c);
}

// Decode row r, channel c (in place on the row's state slot).
template <class Io>
NM_HD void conv_update_point(const CausalConv1dUpdateArgs& a, const Io& io, int64_t r, int64_t c) {
  const int64_t W = a.width;
  const int64_t slot = a.state_indices ? (int64_t)a.state_indices[r] : r;
  float* st = a.conv_state + slot * a.state_slot_stride + c * a.state_ch_stride;
  const int64_t wrow = c * a.weight_stride;
  const float xv = io.in(r, c);
  const float b = a.bias ? load_float(a.bias, a.bias_dtype, c) : 0.0f;
  float acc = fmaf(load_float(a.weight, a.weight_dtype, wrow + W - 1), xv, b);
  for (int64_t j = 0; j < W - 1; ++j) {
    const float h = st[j];
    acc = fmaf(load_float(a.weight, a.weight_dtype, wrow + j), h, acc);
    if (j > 0) st[j - 1] = h;  // shift: the oldest tap drops out
  }
  if (W > 1) st[W - 2] = xv;
  if (a.silu) acc = silu(acc);
  io.put(r, c, acc);
}

}  // namespace nm::cuda
