// Causal depthwise conv1d (Mamba / Mamba-2 short convolution), prefill over
// packed variable-length sequences and the one-token decode update.
//
// Reference: Dao-AILab causal-conv1d `causal_conv1d_ref` /
// `causal_conv1d_update_ref` (see shared REFERENCE.md section 1). With W the
// kernel width and weight w[c, k] (k = 0..W-1), for every channel c:
//
//   out[t, c] = bias[c] + sum_{k=0..W-1} w[c, k] * in(t - (W-1) + k, c)
//   out       = silu(out)                       when `silu` is set
//
// (cross-correlation: w[c, W-1] multiplies the current token). `in(p, c)` is
// x[p, c] for positions p >= 0 of the sequence; for p < 0 it is
// initial_state[c, W-1+p] when an initial state is given, else 0.
//
// Conv state layout: [seq (or slot), channels, W-1] float32, positions
// oldest first and contiguous: state[c, j] = in(len - (W-1) + j, c), the last
// W-1 PRE-conv inputs. A sequence shorter than W-1 therefore keeps the tail of
// its initial state (or zeros) at the front of its final state.
//
// Decode update (one token per row): conceptually x_new = cat(state, x),
// out = conv over the W values of x_new, state = x_new[1:].
//
// All strides are in ELEMENTS. Token rows of x / out have their own stride;
// channels are contiguous in x, out and bias. Weights are [channels, width]
// with a row stride per channel (width contiguous).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace nm {

// Widths 1..kConv1dMaxWidth are supported (Mamba uses 4).
constexpr int kConv1dMaxWidth = 8;

struct CausalConv1dArgs {
  int64_t tokens = 0;    // total tokens of all sequences
  int64_t channels = 0;
  int64_t width = 0;     // W, 1..kConv1dMaxWidth
  int64_t nseq = 1;      // number of sequences (>= 0)
  // Optional [nseq + 1] cumulative offsets: sequence s is tokens
  // [cu_seqlens[s], cu_seqlens[s+1]). Must be non-decreasing from 0 to
  // `tokens` (validated by the caller). nullptr: one sequence of all tokens
  // (nseq must then be 1).
  const int32_t* cu_seqlens = nullptr;
  const float* x = nullptr;     // [tokens, channels]
  int64_t x_stride = 0;         // between tokens
  const void* weight = nullptr; // [channels, width]
  DType weight_dtype = DType::F32;
  int64_t weight_stride = 0;    // between channels (>= width)
  const void* bias = nullptr;   // optional [channels]
  DType bias_dtype = DType::F32;
  // Optional initial conv state [nseq, channels, W-1], positions contiguous.
  const float* initial_state = nullptr;
  int64_t init_seq_stride = 0, init_ch_stride = 0;
  // Optional final conv state [nseq, channels, W-1], positions contiguous.
  float* final_state = nullptr;
  int64_t final_seq_stride = 0, final_ch_stride = 0;
  bool silu = false;
  float* out = nullptr;         // [tokens, channels]
  int64_t out_stride = 0;
  // Aliasing: out must not overlap x or the states, and final_state must not
  // overlap initial_state (sequences are split into token blocks that run
  // concurrently and read neighbouring inputs / the initial state).
};

struct CausalConv1dUpdateArgs {
  int64_t batch = 0;      // rows, one new token each
  int64_t channels = 0;
  int64_t width = 0;      // W, 1..kConv1dMaxWidth
  const float* x = nullptr;     // [batch, channels]
  int64_t x_stride = 0;
  const void* weight = nullptr; // [channels, width]
  DType weight_dtype = DType::F32;
  int64_t weight_stride = 0;
  const void* bias = nullptr;   // optional [channels]
  DType bias_dtype = DType::F32;
  // Conv state pool [slots, channels, W-1], positions contiguous; UPDATED IN
  // PLACE. Row b reads and writes slot state_indices[b] (or slot b when
  // state_indices is nullptr).
  float* conv_state = nullptr;
  int64_t state_slot_stride = 0, state_ch_stride = 0;
  // Optional [batch]: distinct slot indices, each in range (validated by the
  // caller; duplicates would race).
  const int32_t* state_indices = nullptr;
  bool silu = false;
  float* out = nullptr;         // [batch, channels]; may alias x (same stride)
  int64_t out_stride = 0;
};

// Multithreaded on the global pool over (sequence, token block, channel block)
// tiles, dynamically scheduled.
void causal_conv1d(const CausalConv1dArgs& a);
// Multithreaded over (channel block, row) items; weights are read once per
// channel vector and row range.
void causal_conv1d_update(const CausalConv1dUpdateArgs& a);

}  // namespace nm
