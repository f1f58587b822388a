// What the Mamba-1 and Mamba-2 mixers (mamba1.cpp, mamba2.cpp) share: their
// weights, the loading of the common tensors, the causal conv over the
// sequence state, and out_proj with the online Hadamard rotation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/blocks/block.h"
#include "kernels/ssm_q8.h"

namespace nm::engine {

struct MambaWeights {
  Weight in_proj, in_proj_bias;  // [in_proj_dim, d_model], optional [in_proj_dim]
  Weight conv_w, conv_b;         // [conv_dim, d_conv] (stored [C,1,K]), optional [conv_dim]; float32 copies
  Weight out_proj, out_proj_bias;
  // Mamba-1
  Weight x_proj;                 // [dt_rank + 2N, d_inner]
  Weight dt_proj;                // [d_inner, dt_rank]
  Weight dt_norm, B_norm, C_norm;  // Jamba: [dt_rank], [N], [N] (ModelConfig::mamba_inner_norms)
  // Mamba-2
  Weight gated_norm;             // [d_inner]
  // float32 copies of small parameters: A = -exp(A_log) ([d_inner, N] or [H]),
  // D ([d_inner] or [H]), dt bias (dt_proj.bias [d_inner] or dt_bias [H]).
  Params A, D, dt_bias;
  // Int8 SSM path (ModelConfig::ssm_int8), per channel: conv input
  // [conv_dim], conv output [conv_dim] (Mamba-2: x, then B and C per group
  // and state; Mamba-1: x_proj's input scale, repeated), Mamba-1 B then C
  // [2 d_state]. Empty otherwise.
  Params conv_in_scale, conv_out_scale, BC_scale;
  // Offsets of the conv state [conv_dim, d_conv - 1] and the SSM state in a
  // sequence's state floats (Model::reserve_state).
  int64_t conv_off = 0, ssm_off = 0;
};

// The tensors both flavours have (in_proj, conv1d, out_proj and biases) and
// the state reservation; in_dim = in_proj rows, conv_dim = conv channels,
// ssm_floats = the SSM state's size.
void load_mamba_common(const BlockContext& ctx, MambaWeights& L, int64_t in_dim, int64_t conv_dim, int64_t ssm_floats);

// out_proj of y [M, d_inner], with the online rotation when the checkpoint has one.
void run_out_proj(const Model& m, const MambaWeights& L, const float* y, int64_t M, float* out);

// int8 input and output of the conv on the int8 SSM path (nullptr xq: float).
struct ConvInt8 {
  const int8_t* xq = nullptr;
  int64_t xq_stride = 0;
  int8_t* outq = nullptr;  // [n, channels], dense
};

// Causal conv (+ SiLU) over n tokens of one sequence, from and back into its
// conv state; on the int8 path (q.xq) int8 inputs and outputs with the
// layer's conv scales.
void conv_prefill(Model& m, const MambaWeights& L, int32_t slot, const float* x, int64_t x_stride, int64_t channels,
                  int64_t n, float* out, const ConvInt8& q = {});

// One conv step (+ SiLU) for `batch` sequences, in place on their conv states.
void conv_step(Model& m, const MambaWeights& L, const int32_t* slots, const float* x, int64_t x_stride,
               int64_t channels, int64_t batch, float* out, const ConvInt8& q = {});

// The int8 SSM path runs for checkpoints that have it, except while
// calibrating (the observer sees the float model).
bool ssm_int8(const Model& m);

}  // namespace nm::engine
