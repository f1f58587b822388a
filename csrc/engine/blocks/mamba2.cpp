// The Mamba-2 mixer (state-spaces/mamba mamba2.py; REFERENCE.md section 2):
// in_proj -> [z, xBC, dt]; causal conv + SiLU of xBC -> [x, B, C]; the SSD
// scan (prefill) or state update (decode); gated RMSNorm with z (per group,
// or over all of d_inner as Granite 4.0-H computes it, section 7b); out_proj.
#include <algorithm>
#include <string>

#include "engine/backend.h"
#include "engine/blocks/mamba_common.h"
#include "engine/ops.h"
#include "engine/tensor_table.h"
#include "kernels/norm.h"
#include "kernels/ssd.h"

namespace nm::engine {

namespace {

int64_t conv_dim(const ModelConfig& c) { return c.d_inner + 2 * c.ngroups * c.d_state; }
// in_proj rows: [z, xBC, dt] = 2 d_inner + 2 G N + H.
int64_t in_proj_dim(const ModelConfig& c) { return 2 * c.d_inner + 2 * c.ngroups * c.d_state + c.nheads; }

// Mamba-2 tail: gated RMSNorm of y with z (per group), then out_proj.
void gated_norm_out_proj(const Model& m, const MambaWeights& L, const float* y, const float* z, int64_t z_stride,
                         int64_t rows, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner;
  Buf yn((size_t)(rows * di));
  GatedRmsNormArgs g;
  g.rows = rows; g.dim = di; g.group_size = c.gated_norm_group > 0 ? c.gated_norm_group : di / c.ngroups;
  g.y = y; g.y_stride = di;
  g.z = z; g.z_stride = z_stride;
  g.weight = L.gated_norm.data; g.weight_dtype = L.gated_norm.dtype;
  g.eps = c.norm_eps;
  g.out = yn.data(); g.out_stride = di;
  m.backend().gated_rms_norm(g);
  run_out_proj(m, L, yn.data(), rows, out);
}

// The SSD / state update's int8 operands x, B, C: columns of the int8 conv
// output [M, conv_dim] (row stride conv_dim, as token stride for the SSD and
// batch stride for the update), with the conv's output scales.
struct Mamba2Int8 {
  Int8Operand x, B, C;
};
Mamba2Int8 mamba2_int8(const ModelConfig& c, const MambaWeights& L, const int8_t* xbc, bool rows_are_tokens) {
  const int64_t di = c.d_inner, GN = c.ngroups * c.d_state, C = conv_dim(c);
  const float* s = L.conv_out_scale.data();
  auto op = [&](int64_t off) {
    return rows_are_tokens ? Int8Operand{xbc + off, 0, C, s + off} : Int8Operand{xbc + off, C, 0, s + off};
  };
  return {op(0), op(di), op(di + GN)};
}

void prefill_impl(Model& m, const MambaWeights& L, int64_t layer, int32_t slot, const float* hn, int64_t n, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, G = c.ngroups, H = c.nheads, Pd = c.headdim;
  const int64_t C = conv_dim(c), P = in_proj_dim(c);
  const bool q8 = ssm_int8(m);
  float* state = m.slot_state(slot);
  Buf zxbcdt((size_t)(n * P)), xbc((size_t)(q8 ? 0 : n * C)), y((size_t)(n * di)), ssm_final((size_t)(H * Pd * N));
  I8Buf xbc_in((size_t)(q8 ? n * C : 0)), xbc_q((size_t)(q8 ? n * C : 0));
  run_linear(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, n, zxbcdt.data());
  if (observer()) observe_channels(mixer_name(layer) + "conv1d:input", zxbcdt.data() + di, P, n, C);

  if (q8) {
    m.backend().quantize_channels_int8(n, C, zxbcdt.data() + di, P, L.conv_in_scale.data(), xbc_in.data(), C);
    conv_prefill(m, L, slot, nullptr, 0, C, n, nullptr, ConvInt8{xbc_in.data(), C, xbc_q.data()});
  } else {
    conv_prefill(m, L, slot, zxbcdt.data() + di, P, C, n, xbc.data());  // xBC follows z
  }
  if (observer()) observe_channels(mixer_name(layer) + "conv1d:output", xbc.data(), C, n, C, 0, di);

  const int32_t cu[2] = {0, (int32_t)n};
  SsdChunkScanArgs s;
  s.tokens = n; s.nheads = H; s.headdim = Pd; s.ngroups = G; s.dstate = N; s.nseq = 1;
  s.x = xbc.data(); s.x_stride = C;
  s.B = xbc.data() + di; s.B_stride = C;
  s.C = xbc.data() + di + G * N; s.C_stride = C;
  s.dt = zxbcdt.data() + di + C; s.dt_stride = P;
  s.A = L.A.data(); s.D = L.D.data(); s.dt_bias = L.dt_bias.data(); s.dt_softplus = true;
  s.dt_min = c.dt_min; s.dt_max = c.dt_max;
  s.cu_seqlens = cu;
  s.initial_states = state + L.ssm_off;
  s.final_states = ssm_final.data();
  s.out = y.data(); s.out_stride = di;
  if (q8) {
    const Mamba2Int8 v = mamba2_int8(c, L, xbc_q.data(), true);
    m.backend().ssd_chunk_scan_q8(SsdChunkScanQ8Args{s, v.x, v.B, v.C});
  } else {
    m.backend().ssd_chunk_scan(s);
  }
  m.backend().copy(state + L.ssm_off, ssm_final.data(), (size_t)(H * Pd * N) * sizeof(float));

  gated_norm_out_proj(m, L, y.data(), zxbcdt.data(), P, n, out);
}

void step_impl(Model& m, const MambaWeights& L, int64_t layer, const int32_t* slots, const float* hn, int64_t B, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, G = c.ngroups, H = c.nheads, Pd = c.headdim;
  const int64_t C = conv_dim(c), P = in_proj_dim(c);
  const bool q8 = ssm_int8(m);
  Buf zxbcdt((size_t)(B * P)), xbc((size_t)(q8 ? 0 : B * C)), y((size_t)(B * di));
  I8Buf xbc_in((size_t)(q8 ? B * C : 0)), xbc_q((size_t)(q8 ? B * C : 0));
  // At one sequence, in_proj's z rows (read only by the gated norm) come
  // last, and where the backend runs them in the background
  // (Backend::set_background) the conv and the state update run on this
  // thread meanwhile. Otherwise only the conv's calls do (they are small),
  // while the other threads prefetch out_proj, and the state update (128
  // states per channel against Mamba-1's 16) takes them all (bench/NOTES.md).
  BackgroundProduct z_rows(m.backend());
  bool z_behind = false;
  if (B == 1 && z_rows.available(L.in_proj.layout) &&
      run_linear_rows(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, B, zxbcdt.data(), di, P)) {
    z_behind = z_rows.start([&] {
      run_linear_rows(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, B, zxbcdt.data(), 0, di);
    });
  } else {
    run_linear(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, B, zxbcdt.data());
  }
  m.backend().prefetch(L.out_proj.data, packed_weight_bytes(L.out_proj));  // read after the conv and state update
  SerialSection serial(m.backend(), B == 1);

  if (q8) {
    m.backend().quantize_channels_int8(B, C, zxbcdt.data() + di, P, L.conv_in_scale.data(), xbc_in.data(), C);
    conv_step(m, L, slots, nullptr, 0, C, B, nullptr, ConvInt8{xbc_in.data(), C, xbc_q.data()});
  } else {
    conv_step(m, L, slots, zxbcdt.data() + di, P, C, B, xbc.data());
  }

  if (!z_behind) serial.end();
  SelectiveStateUpdateArgs s;
  s.batch = B; s.nheads = H; s.headdim = Pd; s.dstate = N; s.ngroups = G; s.a_per_state = false;
  s.state = m.pool_base() + L.ssm_off; s.state_batch_stride = m.state_floats(); s.state_indices = slots;
  s.x = xbc.data(); s.x_batch_stride = C;
  s.B = xbc.data() + di; s.B_batch_stride = C;
  s.C = xbc.data() + di + G * N; s.C_batch_stride = C;
  s.out = y.data(); s.out_batch_stride = di;
  s.A = L.A.data(); s.D = L.D.data();
  s.dt = zxbcdt.data() + di + C; s.dt_batch_stride = P;
  s.dt_bias = L.dt_bias.data(); s.dt_softplus = true;
  s.dt_min = c.dt_min; s.dt_max = c.dt_max;
  if (q8) {
    const Mamba2Int8 v = mamba2_int8(c, L, xbc_q.data(), false);
    m.backend().selective_state_update_q8(SelectiveStateUpdateQ8Args{s, v.x, v.B, v.C});
  } else {
    m.backend().selective_state_update(s);
  }
  serial.end();
  z_rows.join();

  gated_norm_out_proj(m, L, y.data(), zxbcdt.data(), P, B, out);
}

class Mamba2Mixer final : public Mixer {
 public:
  explicit Mamba2Mixer(const BlockContext& ctx) : layer_(ctx.layer) {
    const ModelConfig& c = ctx.model.config();
    TensorTable& tt = ctx.tensors;
    const int64_t di = c.d_inner, H = c.nheads;
    if (c.headdim <= 0 || c.nheads * c.headdim != c.d_inner || c.ngroups <= 0 || c.nheads % c.ngroups != 0 ||
        c.d_inner % c.ngroups != 0)
      throw LoadError("invalid Mamba-2 head / group configuration", "", "head_dim");
    if (c.gated_norm_group < 0 || (c.gated_norm_group > 0 && di % c.gated_norm_group != 0))
      throw LoadError("the gated norm's group size must divide d_inner", "", "gatedNormGroupSize");
    const std::string mx = mixer_name(layer_);
    load_mamba_common(ctx, L_, in_proj_dim(c), conv_dim(c), H * c.headdim * c.d_state);
    L_.dt_bias = tt.params(tt.get_f32(mx + "dt_bias", {H}));
    L_.A = tt.params(load_A(tt, mx, {H}));
    L_.D = tt.params(tt.get_f32(mx + "D", {H}));
    L_.gated_norm = tt.get(mx + "norm.weight", {{di}});
    if (c.ssm_int8) {
      L_.conv_in_scale = tt.params(tt.get_act_scales(mx + "conv1d.input_scale", conv_dim(c)));
      L_.conv_out_scale = tt.params(tt.get_act_scales(mx + "conv1d.output_scale", conv_dim(c)));
    }
  }

  void prefill(Model& m, int32_t slot, int64_t, const float* hn, int64_t n, float* out) override {
    prefill_impl(m, L_, layer_, slot, hn, n, out);
  }
  void step(Model& m, const int32_t* slots, const int32_t*, const float* hn, int64_t B, float* out) override {
    step_impl(m, L_, layer_, slots, hn, B, out);
  }
  void linear_layers(LinearList& out) const override {
    const std::string mx = mixer_name(layer_);
    out.emplace_back(mx + "in_proj", &L_.in_proj);
    out.emplace_back(mx + "out_proj", &L_.out_proj);
  }

 private:
  int64_t layer_;
  MambaWeights L_;
};

}  // namespace

std::unique_ptr<Mixer> make_mamba2_mixer(const BlockContext& ctx) { return std::make_unique<Mamba2Mixer>(ctx); }

}  // namespace nm::engine
