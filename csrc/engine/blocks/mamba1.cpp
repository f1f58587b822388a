// The Mamba-1 mixer (state-spaces/mamba mamba_simple.py; REFERENCE.md
// section 1), with Jamba's RMSNorms of dt, B and C (section 7a) when the
// config asks for them: in_proj -> [x | z]; causal conv + SiLU of x; x_proj
// -> [dt | B | C]; dt_proj; the selective scan with the gate z; out_proj.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/blocks/mamba_common.h"
#include "engine/ops.h"
#include "engine/tensor_table.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/qlinear.h"
#include "kernels/selective_scan.h"

namespace nm::engine {

namespace {

// x [M, n] (row stride xs) <- RMSNorm(x) * w, in place.
void inner_norm(const Model& m, const Weight& w, float eps, float* x, int64_t xs, int64_t M, int64_t n) {
  RmsNormArgs a;
  a.rows = M; a.dim = n;
  a.x = x; a.x_stride = xs;
  a.weight = w.data; a.weight_dtype = w.dtype;
  a.eps = eps;
  a.out = x; a.out_stride = xs;
  m.backend().rms_norm(a);
}

// Mamba-1 front half shared by prefill and decode: in_proj, conv (+ SiLU),
// x_proj and dt_proj for M rows. Float path: xc holds u; int8 path: uq holds
// u (the conv's int8 output, x_proj's input) and bcq the quantized B | C.
struct Mamba1Front {
  float* xz;    // [M, 2 di]  x | z
  float* xc;    // [M, di]    u (float path)
  float* xdbl;  // [M, R+2N]  dt | B | C
  float* delta; // [M, di]
  int8_t *xq, *uq, *bcq;  // int8 path: [M, di], [M, di], [M, 2N]
};

// At one row, in_proj's z half (read only by the scan's gate) goes to
// `z_half`: it runs on the idle threads while this thread goes through the
// conv, x_proj and dt_proj (the caller joins it before the scan, or, at a
// decode step, after the state update).
void mamba1_front(Model& m, const MambaWeights& L, int64_t layer, const float* hn, int64_t M, const Mamba1Front& f,
                  bool q8, const std::function<void(const ConvInt8&)>& conv, SerialSection& serial,
                  BackgroundProduct& z_half) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank, xdim = R + 2 * N;
  if (M == 1 && z_half.available(L.in_proj.layout) &&
      run_linear_rows(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, M, f.xz, 0, di)) {
    z_half.start([&] {
      run_linear_rows(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, M, f.xz, di, 2 * di);
    });
  } else {
    run_linear(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, M, f.xz);
  }
  if (M <= 8) m.backend().prefetch(L.out_proj.data, packed_weight_bytes(L.out_proj));  // read after the conv and state update (decode)
  // At one row the calls until out_proj are small: on one thread, while
  // the others prefetch out_proj (the caller ends the section).
  serial.begin(M == 1);
  if (observer()) observe_channels(mixer_name(layer) + "conv1d:input", f.xz, 2 * di, M, di);
  if (q8) {
    m.backend().quantize_channels_int8(M, di, f.xz, 2 * di, L.conv_in_scale.data(), f.xq, di);
    conv(ConvInt8{f.xq, di, f.uq});
    QLinearArgs q = qlinear_args(L.x_proj, nullptr, M, f.xdbl);  // [dt | B | C]
    q.xq = f.uq; q.xq_stride = di;
    m.backend().qlinear(q);
  } else {
    conv(ConvInt8{});
    run_linear(m, L.x_proj, nullptr, f.xc, di, M, f.xdbl);
  }
  if (c.mamba_inner_norms) {
    // Jamba: RMSNorms of dt, B and C right after the split (modeling_jamba.py).
    inner_norm(m, L.dt_norm, c.norm_eps, f.xdbl, xdim, M, R);
    inner_norm(m, L.B_norm, c.norm_eps, f.xdbl + R, xdim, M, N);
    inner_norm(m, L.C_norm, c.norm_eps, f.xdbl + R + N, xdim, M, N);
  }
  if (observer()) observe_channels(mixer_name(layer) + "x_proj:output", f.xdbl, xdim, M, xdim);
  run_linear(m, L.dt_proj, nullptr, f.xdbl, xdim, M, f.delta);  // bias goes to the scan
  if (q8) {
    m.backend().quantize_channels_int8(M, 2 * N, f.xdbl + R, xdim, L.BC_scale.data(), f.bcq, 2 * N);
  }
}

void prefill_impl(Model& m, const MambaWeights& L, int64_t layer, int32_t slot, const float* hn, int64_t n, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank, xdim = R + 2 * N;
  const bool q8 = ssm_int8(m);
  float* state = m.slot_state(slot);
  Buf xz((size_t)(n * 2 * di)), xc((size_t)(q8 ? 0 : n * di)), xdbl((size_t)(n * xdim)), delta((size_t)(n * di)),
      y((size_t)(n * di));
  I8Buf xq((size_t)(q8 ? n * di : 0)), uq((size_t)(q8 ? n * di : 0)), bcq((size_t)(q8 ? n * 2 * N : 0));
  const Mamba1Front f{xz.data(), xc.data(), xdbl.data(), delta.data(), xq.data(), uq.data(), bcq.data()};
  SerialSection serial(m.backend());
  BackgroundProduct z_half(m.backend());
  mamba1_front(m, L, layer, hn, n, f, q8, [&](const ConvInt8& q) {
    conv_prefill(m, L, slot, xz.data(), 2 * di, di, n, xc.data(), q);  // x = first half of in_proj
  }, serial, z_half);
  z_half.join();

  SelectiveScanArgs s;
  s.batch = 1; s.seqlen = n; s.dim = di; s.dstate = N; s.ngroups = 1;
  s.u = xc.data(); s.u_token_stride = di; s.u_batch_stride = n * di;
  s.delta = delta.data(); s.delta_token_stride = di; s.delta_batch_stride = n * di;
  s.B = xdbl.data() + R; s.B_token_stride = xdim; s.B_batch_stride = n * xdim;
  s.C = xdbl.data() + R + N; s.C_token_stride = xdim; s.C_batch_stride = n * xdim;
  s.z = xz.data() + di; s.z_token_stride = 2 * di; s.z_batch_stride = n * 2 * di;
  s.out = y.data(); s.out_token_stride = di; s.out_batch_stride = n * di;
  s.A = L.A.data(); s.D = L.D.data(); s.delta_bias = L.dt_bias.data(); s.delta_softplus = true;
  s.initial_state = state + L.ssm_off; s.initial_state_batch_stride = di * N;
  s.last_state = state + L.ssm_off; s.last_state_batch_stride = di * N;  // may alias
  if (q8) {
    SelectiveScanQ8Args q;
    q.scan = s;
    q.u = {uq.data(), n * di, di, L.conv_out_scale.data()};
    q.B = {bcq.data(), n * 2 * N, 2 * N, L.BC_scale.data()};
    q.C = {bcq.data() + N, n * 2 * N, 2 * N, L.BC_scale.data() + N};
    m.backend().selective_scan_q8(q);
  } else {
    m.backend().selective_scan(s);
  }

  serial.end();
  run_out_proj(m, L, y.data(), n, out);
}

void step_impl(Model& m, const MambaWeights& L, int64_t layer, const int32_t* slots, const float* hn, int64_t B, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank, xdim = R + 2 * N;
  const bool q8 = ssm_int8(m);
  Buf xz((size_t)(B * 2 * di)), xc((size_t)(q8 ? 0 : B * di)), xdbl((size_t)(B * xdim)), delta((size_t)(B * di)),
      y((size_t)(B * di));
  I8Buf xq((size_t)(q8 ? B * di : 0)), uq((size_t)(q8 ? B * di : 0)), bcq((size_t)(q8 ? B * 2 * N : 0));
  const Mamba1Front f{xz.data(), xc.data(), xdbl.data(), delta.data(), xq.data(), uq.data(), bcq.data()};
  SerialSection serial(m.backend());
  BackgroundProduct z_half(m.backend());
  mamba1_front(m, L, layer, hn, B, f, q8, [&](const ConvInt8& q) {
    conv_step(m, L, slots, xz.data(), 2 * di, di, B, xc.data(), q);
  }, serial, z_half);
  // With z still running in the background the update runs ungated, into
  // xz's x half (dead once the conv has read it), and the gate follows the
  // join: silu(z) · y, the product the update takes when given z (the same
  // float32 result).
  const bool z_behind = z_half.running();

  SelectiveStateUpdateArgs s;
  s.batch = B; s.nheads = di; s.headdim = 1; s.dstate = N; s.ngroups = 1; s.a_per_state = true;
  s.state = m.pool_base() + L.ssm_off; s.state_batch_stride = m.state_floats(); s.state_indices = slots;
  s.x = xc.data(); s.x_batch_stride = di;
  s.dt = delta.data(); s.dt_batch_stride = di;
  s.B = xdbl.data() + R; s.B_batch_stride = xdim;
  s.C = xdbl.data() + R + N; s.C_batch_stride = xdim;
  if (!z_behind) { s.z = xz.data() + di; s.z_batch_stride = 2 * di; }
  s.out = z_behind ? xz.data() : y.data(); s.out_batch_stride = z_behind ? 2 * di : di;
  s.A = L.A.data(); s.D = L.D.data(); s.dt_bias = L.dt_bias.data(); s.dt_softplus = true;
  if (q8) {
    SelectiveStateUpdateQ8Args q;
    q.upd = s;
    q.x = {uq.data(), di, 0, L.conv_out_scale.data()};
    q.B = {bcq.data(), 2 * N, 0, L.BC_scale.data()};
    q.C = {bcq.data() + N, 2 * N, 0, L.BC_scale.data() + N};
    m.backend().selective_state_update_q8(q);
  } else {
    m.backend().selective_state_update(s);
  }
  if (z_behind) {
    z_half.join();
    m.backend().swiglu_rows(xz.data() + di, 2 * di, -di, y.data(), di, B, di);  // silu(z) · (the x half's y)
  }

  serial.end();
  run_out_proj(m, L, y.data(), B, out);
}

class Mamba1Mixer final : public Mixer {
 public:
  explicit Mamba1Mixer(const BlockContext& ctx) : layer_(ctx.layer) {
    const ModelConfig& c = ctx.model.config();
    TensorTable& tt = ctx.tensors;
    using Q = TensorTable::Quant;
    const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank;
    if (R <= 0) throw LoadError("invalid dt_rank", "", "time_step_rank");
    const std::string mx = mixer_name(layer_);
    load_mamba_common(ctx, L_, 2 * di, di, di * N);
    L_.x_proj = tt.get(mx + "x_proj.weight", {{R + 2 * N, di}}, true, Q::Any);
    L_.dt_proj = tt.get(mx + "dt_proj.weight", {{di, R}}, true, Q::Any);
    L_.dt_bias = tt.params(tt.get_f32(mx + "dt_proj.bias", {di}));
    L_.A = tt.params(load_A(tt, mx, {di, N}));
    L_.D = tt.params(tt.get_f32(mx + "D", {di}));
    if (c.mamba_inner_norms) {
      L_.dt_norm = tt.get(mx + "dt_norm.weight", {{R}});
      L_.B_norm = tt.get(mx + "B_norm.weight", {{N}});
      L_.C_norm = tt.get(mx + "C_norm.weight", {{N}});
    }
    if (c.ssm_int8) {
      L_.conv_in_scale = tt.params(tt.get_act_scales(mx + "conv1d.input_scale", di));
      // The conv output is x_proj's int8 input.
      if (dtype_info(L_.x_proj.dtype).linear != LinearKernel::Quamba || !(L_.x_proj.act_scale > 0.0f))
        throw LoadError("int8 SSM activations need x_proj with int8 inputs (an i8 / i4 weight with input_scale)",
                        tt.path_of(mx + "x_proj.weight"), mx + "x_proj.input_scale");
      L_.conv_out_scale = tt.params(std::vector<float>((size_t)di, L_.x_proj.act_scale));
      std::vector<float> bc = tt.get_act_scales(mx + "B_scale", N), cs = tt.get_act_scales(mx + "C_scale", N);
      bc.insert(bc.end(), cs.begin(), cs.end());
      L_.BC_scale = tt.params(std::move(bc));  // B | C: one quantization of x_proj's B | C columns
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
    out.emplace_back(mx + "x_proj", &L_.x_proj);
    out.emplace_back(mx + "dt_proj", &L_.dt_proj);
    out.emplace_back(mx + "out_proj", &L_.out_proj);
  }

 private:
  int64_t layer_;
  MambaWeights L_;
};

}  // namespace

std::unique_ptr<Mixer> make_mamba1_mixer(const BlockContext& ctx) { return std::make_unique<Mamba1Mixer>(ctx); }

}  // namespace nm::engine
