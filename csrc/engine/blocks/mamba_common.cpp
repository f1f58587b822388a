#include "engine/backend.h"
#include "engine/blocks/mamba_common.h"

#include <algorithm>

#include "engine/ops.h"
#include "engine/tensor_table.h"
#include "kernels/conv1d.h"
#include "kernels/hadamard.h"
#include "kernels/linear.h"

namespace nm::engine {

void load_mamba_common(const BlockContext& ctx, MambaWeights& L, int64_t in_dim, int64_t conv_dim, int64_t ssm_floats) {
  const ModelConfig& c = ctx.model.config();
  TensorTable& tt = ctx.tensors;
  using Q = TensorTable::Quant;
  const int64_t d = c.d_model, di = c.d_inner, K = c.d_conv;
  const std::string mx = mixer_name(ctx.layer);
  L.in_proj = tt.get(mx + "in_proj.weight", {{in_dim, d}}, true, Q::Any);
  L.in_proj_bias = tt.get(mx + "in_proj.bias", {{in_dim}}, false);
  L.conv_w = tt.get_as_f32(mx + "conv1d.weight", {{conv_dim, 1, K}, {conv_dim, K}});
  L.conv_b = tt.get_as_f32(mx + "conv1d.bias", {{conv_dim}}, false);
  L.out_proj = tt.get(mx + "out_proj.weight", {{d, di}}, true, Q::Any);
  L.out_proj_bias = tt.get(mx + "out_proj.bias", {{d}}, false);
  L.conv_off = ctx.model.reserve_state(conv_dim * (K - 1));
  L.ssm_off = ctx.model.reserve_state(ssm_floats);
}

// out_proj of y [M, d_inner]. With the online rotation (hadamard_out) y is
// replaced by T(y) first: fused with the int8 quantization when out_proj is
// W8A8 / W4A8 (hadamard_quantize, then qlinear on the int8 rows), else as a
// float transform (W4A16, float weights, and calibration, which observes
// the rotated float input).
void run_out_proj(const Model& m, const MambaWeights& L, const float* y, int64_t M, float* out) {
  const ModelConfig& c = m.config();
  const Weight& w = L.out_proj;
  const int64_t di = c.d_inner;
  if (!c.hadamard_out) {
    run_linear(m, w, &L.out_proj_bias, y, di, M, out);
    return;
  }
  if (dtype_info(w.dtype).linear == LinearKernel::Quamba && w.act_scale > 0.0f && !observer()) {
    // int8 rows from the call's buffer pool (a float buffer of a quarter the count)
    Buf qbuf((size_t)((M * di + 3) / 4));
    int8_t* q = reinterpret_cast<int8_t*>(qbuf.data());
    HadamardQuantArgs h;
    h.rows = M; h.n = di; h.x = y; h.x_stride = di; h.inv_scale = 1.0f / w.act_scale;
    h.out = q; h.out_stride = di;
    m.backend().hadamard_quantize(h);
    QLinearArgs a = qlinear_args(w, &L.out_proj_bias, M, out);
    a.xq = q; a.xq_stride = di;
    m.backend().qlinear(a);
    return;
  }
  Buf ry((size_t)(M * di));
  HadamardArgs h;
  h.rows = M; h.n = di; h.x = y; h.x_stride = di; h.out = ry.data(); h.out_stride = di;
  m.backend().hadamard_transform(h);
  run_linear(m, w, &L.out_proj_bias, ry.data(), di, M, out);
}

namespace {

// The q8 conv kernels' int8 input / output with the layer's conv scales.
ConvInt8Io conv_int8_io(const MambaWeights& L, const ConvInt8& q, int64_t channels) {
  return {q.xq, q.xq_stride, L.conv_in_scale.data(), q.outq, channels, L.conv_out_scale.data()};
}

}  // namespace

// Causal conv (+ SiLU) over n tokens of one sequence, from and back into the
// layer's conv state in `slot` (the kernel's final state may not alias its
// initial state, hence the copy). On the int8 path (q.xq) it reads int8
// inputs and writes int8 outputs with the layer's conv scales.
void conv_prefill(Model& m, const MambaWeights& L, int32_t slot, const float* x, int64_t x_stride,
                  int64_t channels, int64_t n, float* out, const ConvInt8& q) {
  const int64_t K = m.config().d_conv;
  float* state = m.slot_state(slot) + L.conv_off;
  Buf final_state((size_t)(channels * (K - 1)));
  CausalConv1dArgs cv;
  cv.tokens = n; cv.channels = channels; cv.width = K; cv.nseq = 1;
  cv.x = x; cv.x_stride = x_stride;
  cv.weight = L.conv_w.data; cv.weight_dtype = L.conv_w.dtype; cv.weight_stride = K;
  if (L.conv_b.data) { cv.bias = L.conv_b.data; cv.bias_dtype = L.conv_b.dtype; }
  cv.initial_state = state; cv.init_seq_stride = channels * (K - 1); cv.init_ch_stride = K - 1;
  cv.final_state = final_state.data(); cv.final_seq_stride = channels * (K - 1); cv.final_ch_stride = K - 1;
  cv.silu = true;
  cv.out = out; cv.out_stride = channels;
  if (q.xq) {
    CausalConv1dQ8Args a;
    a.conv = cv;
    a.io = conv_int8_io(L, q, channels);
    m.backend().causal_conv1d_q8(a);
  } else {
    m.backend().causal_conv1d(cv);
  }
  m.backend().copy(state, final_state.data(), (size_t)(channels * (K - 1)) * sizeof(float));
}

// One conv step (+ SiLU) for `batch` sequences, in place on their conv states
// (int8 path as conv_prefill).
void conv_step(Model& m, const MambaWeights& L, const int32_t* slots, const float* x, int64_t x_stride,
               int64_t channels, int64_t batch, float* out, const ConvInt8& q) {
  const int64_t K = m.config().d_conv;
  CausalConv1dUpdateArgs cv;
  cv.batch = batch; cv.channels = channels; cv.width = K;
  cv.x = x; cv.x_stride = x_stride;
  cv.weight = L.conv_w.data; cv.weight_dtype = L.conv_w.dtype; cv.weight_stride = K;
  if (L.conv_b.data) { cv.bias = L.conv_b.data; cv.bias_dtype = L.conv_b.dtype; }
  cv.conv_state = m.pool_base() + L.conv_off;
  cv.state_slot_stride = m.state_floats(); cv.state_ch_stride = K - 1;
  cv.state_indices = slots;
  cv.silu = true;
  cv.out = out; cv.out_stride = channels;
  if (q.xq) {
    CausalConv1dUpdateQ8Args a;
    a.conv = cv;
    a.io = conv_int8_io(L, q, channels);
    m.backend().causal_conv1d_update_q8(a);
  } else {
    m.backend().causal_conv1d_update(cv);
  }
}

// The int8 SSM path runs for checkpoints that have it, except while
// calibrating (the observer sees the float model).
bool ssm_int8(const Model& m) { return m.config().ssm_int8 && !observer(); }


}  // namespace nm::engine
