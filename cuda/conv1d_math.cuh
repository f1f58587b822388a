// Per-thread math of the CUDA causal conv1d kernels (cuda/conv1d.cu), shared
// with the host emulation (cuda/check). Semantics: kernels/conv1d.h.
//
// Prefill: one thread per (token, channel) computes its output from the W
// inputs it needs (x or the initial state), and one thread per (sequence,
// channel, tap) writes the final state; neither writes anything another
// thread reads (out and final_state overlap no input, kernels/conv1d.h).
// Decode: one thread per (row, channel) reads its slot's W-1 taps, writes
// the output and shifts the taps.
// The sum is accumulated in the CPU kernel's order (bias + w[W-1]·x, then
// taps oldest first, each an fma), so without silu the results are equal to
// the CPU twin's bit for bit.
// Later: a thread per (channel, block of tokens) sliding the window in
// registers would read each input once instead of W times (from cache).
#pragma once
#include "kernels/conv1d.h"
#include "math_common.cuh"

namespace nm::cuda {

// in(p, c) of sequence s (base = its first token, p relative to it).
NM_HD float conv_input(const CausalConv1dArgs& a, int64_t s, int64_t base, int64_t p, int64_t c) {
  if (p >= 0) return a.x[(base + p) * a.x_stride + c];
  if (!a.initial_state) return 0.0f;
  return a.initial_state[s * a.init_seq_stride + c * a.init_ch_stride + (a.width - 1 + p)];
}

// out[t, c] for token t (of all packed tokens) and channel c.
NM_HD void conv_prefill_point(const CausalConv1dArgs& a, int64_t t, int64_t c) {
  const int64_t s = a.cu_seqlens ? sequence_of(a.cu_seqlens, a.nseq, t) : 0;
  const int64_t base = a.cu_seqlens ? a.cu_seqlens[s] : 0;
  const int64_t p = t - base, W = a.width;
  const int64_t wrow = c * a.weight_stride;
  const float b = a.bias ? load_float(a.bias, a.bias_dtype, c) : 0.0f;
  float acc = fmaf(load_float(a.weight, a.weight_dtype, wrow + W - 1), a.x[t * a.x_stride + c], b);
  for (int64_t k = 0; k < W - 1; ++k)
    acc = fmaf(load_float(a.weight, a.weight_dtype, wrow + k), conv_input(a, s, base, p - (W - 1) + k, c), acc);
  if (a.silu) acc = silu(acc);
  a.out[t * a.out_stride + c] = acc;
}

// final_state[s, c, j] = in(len - (W-1) + j, c).
NM_HD void conv_final_state_point(const CausalConv1dArgs& a, int64_t s, int64_t c, int64_t j) {
  const int64_t base = a.cu_seqlens ? a.cu_seqlens[s] : 0;
  const int64_t len = a.cu_seqlens ? (int64_t)a.cu_seqlens[s + 1] - base : a.tokens;
  a.final_state[s * a.final_seq_stride + c * a.final_ch_stride + j] = conv_input(a, s, base, len - (a.width - 1) + j, c);
}

// Decode row r, channel c (in place on the row's state slot).
NM_HD void conv_update_point(const CausalConv1dUpdateArgs& a, int64_t r, int64_t c) {
  const int64_t W = a.width;
  const int64_t slot = a.state_indices ? (int64_t)a.state_indices[r] : r;
  float* st = a.conv_state + slot * a.state_slot_stride + c * a.state_ch_stride;
  const int64_t wrow = c * a.weight_stride;
  const float xv = a.x[r * a.x_stride + c];
  const float b = a.bias ? load_float(a.bias, a.bias_dtype, c) : 0.0f;
  float acc = fmaf(load_float(a.weight, a.weight_dtype, wrow + W - 1), xv, b);
  for (int64_t j = 0; j < W - 1; ++j) {
    const float h = st[j];
    acc = fmaf(load_float(a.weight, a.weight_dtype, wrow + j), h, acc);
    if (j > 0) st[j - 1] = h;  // shift: the oldest tap drops out
  }
  if (W > 1) st[W - 2] = xv;
  if (a.silu) acc = silu(acc);
  a.out[r * a.out_stride + c] = acc;
}

}  // namespace nm::cuda
