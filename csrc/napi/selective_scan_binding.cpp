// JS entry points of the selective_scan kernels (layouts in
// lib/kernels/selective_scan.ts).
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/selective_scan.h"
#include "kernels/ssm_q8.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

// { u, delta: f32 [batch, seqlen, dim], A: f32 [dim, dstate],
//   B, C: f32 [batch, seqlen, ngroups, dstate], D?: f32 [dim], z?: f32 [batch, seqlen, dim],
//   deltaBias?: f32 [dim], deltaSoftplus?, initialState?: f32 [batch, dim, dstate],
//   batch, seqlen, dim, dstate, ngroups? }
//   -> { out: f32 [batch, seqlen, dim], lastState: f32 [batch, dim, dstate] }
// int8 form (kernels/ssm_q8.h): u, B, C Int8Arrays with uScale f32 [dim],
// BScale, CScale f32 [ngroups * dstate].
Napi::Value selective_scan_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "selectiveScan");
  const int64_t batch = r.integer("batch", 0, kMaxElements);
  const int64_t seqlen = r.integer("seqlen", 0, kMaxElements);
  const int64_t dim = r.integer("dim", 1, kMaxElements);
  const int64_t dstate = r.integer("dstate", 1, kSelectiveScanMaxDstate);
  const int64_t ngroups = r.integer_or("ngroups", 1, dim, 1);
  if (dim % ngroups != 0)
    r.range_error("ngroups", "must divide dim (" + std::to_string(dim) + "), got " + std::to_string(ngroups));

  const int64_t n_tok = checked_product(r, "u", {batch, seqlen, dim});
  const int64_t n_bc = checked_product(r, "B", {batch, seqlen, ngroups, dstate});
  const int64_t n_a = checked_product(r, "A", {dim, dstate});
  const int64_t n_state = checked_product(r, "initialState", {batch, dim, dstate});
  const std::string tok_shape = shape_str({batch, seqlen, dim}), bc_shape = shape_str({batch, seqlen, ngroups, dstate});
  const std::string dim_shape = shape_str({dim}), state_shape = shape_str({batch, dim, dstate});

  const bool q8 = is_int8_array(r, "u");
  ArrayArg u = q8 ? int8_array(r, "u", true, n_tok, tok_shape) : float_array(r, "u", kF32, true, n_tok, tok_shape);
  ArrayArg delta = float_array(r, "delta", kF32, true, n_tok, tok_shape);
  ArrayArg A = float_array(r, "A", kF32, true, n_a, shape_str({dim, dstate}));
  ArrayArg B = q8 ? int8_array(r, "B", true, n_bc, bc_shape) : float_array(r, "B", kF32, true, n_bc, bc_shape);
  ArrayArg C = q8 ? int8_array(r, "C", true, n_bc, bc_shape) : float_array(r, "C", kF32, true, n_bc, bc_shape);
  ArrayArg u_scale, B_scale, C_scale;
  if (q8) {
    u_scale = scale_array(r, "uScale", dim);
    B_scale = scale_array(r, "BScale", checked_product(r, "BScale", {ngroups, dstate}));
    C_scale = scale_array(r, "CScale", checked_product(r, "CScale", {ngroups, dstate}));
  }
  ArrayArg D = float_array(r, "D", kF32, false, dim, dim_shape);
  ArrayArg z = float_array(r, "z", kF32, false, n_tok, tok_shape);
  ArrayArg bias = float_array(r, "deltaBias", kF32, false, dim, dim_shape);
  const bool softplus = r.boolean_or("deltaSoftplus", false);
  ArrayArg init = float_array(r, "initialState", kF32, false, n_state, state_shape);

  Napi::Float32Array out = new_f32(r.env, n_tok), last = new_f32(r.env, n_state);
  SelectiveScanArgs a;
  a.batch = batch; a.seqlen = seqlen; a.dim = dim; a.dstate = dstate; a.ngroups = ngroups;
  const int64_t tb = seqlen * dim, bb = seqlen * ngroups * dstate;
  a.u = q8 ? nullptr : u.as<float>(); a.u_batch_stride = tb; a.u_token_stride = dim;
  a.delta = delta.as<float>(); a.delta_batch_stride = tb; a.delta_token_stride = dim;
  a.B = q8 ? nullptr : B.as<float>(); a.B_batch_stride = bb; a.B_token_stride = ngroups * dstate;
  a.C = q8 ? nullptr : C.as<float>(); a.C_batch_stride = bb; a.C_token_stride = ngroups * dstate;
  a.z = z.present ? z.as<float>() : nullptr; a.z_batch_stride = tb; a.z_token_stride = dim;
  a.out = out.Data(); a.out_batch_stride = tb; a.out_token_stride = dim;
  a.A = A.as<float>();
  a.D = D.present ? D.as<float>() : nullptr;
  a.delta_bias = bias.present ? bias.as<float>() : nullptr;
  a.delta_softplus = softplus;
  a.initial_state = init.present ? init.as<float>() : nullptr; a.initial_state_batch_stride = dim * dstate;
  a.last_state = last.Data(); a.last_state_batch_stride = dim * dstate;
  if (q8) {
    SelectiveScanQ8Args q;
    q.scan = a;
    q.u = {u.as<int8_t>(), tb, dim, u_scale.as<float>()};
    q.B = {B.as<int8_t>(), bb, ngroups * dstate, B_scale.as<float>()};
    q.C = {C.as<int8_t>(), bb, ngroups * dstate, C_scale.as<float>()};
    selective_scan_q8(q);
  } else {
    selective_scan(a);
  }

  Napi::Object o = Napi::Object::New(r.env);
  o.Set("out", out);
  o.Set("lastState", last);
  return o;
}

// Mamba-1 (no headdim): { state: f32 [slots, dim, dstate], x, z?: f32 [batch, dim],
//   dt: f32 [batch, dim], A: f32 [dim, dstate], B, C: f32 [batch, ngroups, dstate],
//   D?, dtBias?: f32 [dim], dtSoftplus?, dtMin?, dtMax?, batch, dim, dstate, ngroups?,
//   stateIndices?: i32 [batch], stateSlots? }
// Mamba-2 (headdim given): state [slots, nheads, headdim, dstate], x, z? [batch, nheads,
//   headdim], dt [batch, nheads], A [nheads], D?, dtBias? [nheads], nheads, headdim.
//   -> { out: x's shape, state: a fresh copy of the state, updated }
// int8 form (kernels/ssm_q8.h): x, B, C Int8Arrays with xScale f32
// [nheads * headdim] and BScale, CScale f32 [ngroups * dstate].
Napi::Value selective_state_update_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "selectiveStateUpdate");
  const bool mamba2 = r.has("headdim");
  int64_t nheads, headdim;
  if (mamba2) {
    nheads = r.integer("nheads", 1, kMaxElements);
    headdim = r.integer("headdim", 1, kMaxElements);
    if (r.has("dim") && r.integer("dim", 1, kMaxElements) != checked_product(r, "dim", {nheads, headdim}))
      r.range_error("dim", "must equal nheads * headdim when given with Mamba-2 shapes");
  } else {
    if (r.has("nheads")) r.type_error("nheads", "is for Mamba-2 shapes; give 'headdim' as well (Mamba-1 uses 'dim')");
    nheads = r.integer("dim", 1, kMaxElements);
    headdim = 1;
  }
  const int64_t batch = r.integer("batch", 0, kMaxElements);
  const int64_t dstate = r.integer("dstate", 1, kMaxElements);
  const int64_t ngroups = r.integer_or("ngroups", 1, nheads, 1);
  if (nheads % ngroups != 0)
    r.range_error("ngroups", std::string("must divide ") + (mamba2 ? "nheads (" : "dim (") + std::to_string(nheads) +
                                 "), got " + std::to_string(ngroups));

  int64_t slots = batch;
  const bool indexed = r.has("stateIndices");
  if (indexed) slots = r.integer("stateSlots", 0, kMaxElements);
  else if (r.has("stateSlots")) r.type_error("stateSlots", "is only used together with 'stateIndices'");

  const int64_t rows = checked_product(r, "x", {batch, nheads, headdim});
  const int64_t per_slot = checked_product(r, "state", {nheads, headdim, dstate});
  const int64_t n_state = checked_product(r, "state", {slots, nheads, headdim, dstate});
  const int64_t n_bc = checked_product(r, "B", {batch, ngroups, dstate});
  const std::string x_shape = mamba2 ? shape_str({batch, nheads, headdim}) : shape_str({batch, nheads});
  const std::string state_shape =
      mamba2 ? shape_str({slots, nheads, headdim, dstate}) : shape_str({slots, nheads, dstate});
  const std::string bc_shape = shape_str({batch, ngroups, dstate}), head_shape = shape_str({nheads});

  ArrayArg state = float_array(r, "state", kF32, true, n_state, state_shape);
  const bool q8 = is_int8_array(r, "x");
  ArrayArg x = q8 ? int8_array(r, "x", true, rows, x_shape) : float_array(r, "x", kF32, true, rows, x_shape);
  ArrayArg dt = float_array(r, "dt", kF32, true, checked_product(r, "dt", {batch, nheads}), shape_str({batch, nheads}));
  ArrayArg A = mamba2 ? float_array(r, "A", kF32, true, nheads, head_shape)
                      : float_array(r, "A", kF32, true, checked_product(r, "A", {nheads, dstate}),
                                    shape_str({nheads, dstate}));
  ArrayArg B = q8 ? int8_array(r, "B", true, n_bc, bc_shape) : float_array(r, "B", kF32, true, n_bc, bc_shape);
  ArrayArg C = q8 ? int8_array(r, "C", true, n_bc, bc_shape) : float_array(r, "C", kF32, true, n_bc, bc_shape);
  ArrayArg x_scale, B_scale, C_scale;
  if (q8) {
    x_scale = scale_array(r, "xScale", nheads * headdim);
    B_scale = scale_array(r, "BScale", checked_product(r, "BScale", {ngroups, dstate}));
    C_scale = scale_array(r, "CScale", checked_product(r, "CScale", {ngroups, dstate}));
  }
  ArrayArg D = float_array(r, "D", kF32, false, nheads, head_shape);
  ArrayArg z = float_array(r, "z", kF32, false, rows, x_shape);
  ArrayArg bias = float_array(r, "dtBias", kF32, false, nheads, head_shape);
  const bool softplus = r.boolean_or("dtSoftplus", false);
  const bool has_min = r.has("dtMin"), has_max = r.has("dtMax");
  const double dt_min = r.number_or("dtMin", 0.0), dt_max = r.number_or("dtMax", 0.0);
  if (has_min && has_max && dt_min > dt_max) r.range_error("dtMax", "must be >= dtMin");

  ArrayArg idx;
  if (indexed) {
    idx = int32_array(r, "stateIndices", true, batch, shape_str({batch}));
    const int32_t* p = idx.as<int32_t>();
    for (int64_t b = 0; b < batch; ++b)
      if (p[b] < 0 || p[b] >= slots)
        r.range_error("stateIndices", "element " + std::to_string(b) + " is " + std::to_string(p[b]) +
                                          ", outside [0, stateSlots = " + std::to_string(slots) + ")");
    std::vector<int32_t> sorted(p, p + batch);
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i] == sorted[i - 1])
        r.range_error("stateIndices", "has the slot " + std::to_string(sorted[i]) + " more than once");
  }

  Napi::Float32Array out = new_f32(r.env, rows), new_state = new_f32(r.env, n_state);
  if (n_state > 0) std::memcpy(new_state.Data(), state.data, (size_t)n_state * sizeof(float));

  SelectiveStateUpdateArgs a;
  a.batch = batch; a.nheads = nheads; a.headdim = headdim; a.dstate = dstate; a.ngroups = ngroups;
  a.a_per_state = !mamba2;
  a.state = new_state.Data(); a.state_batch_stride = per_slot;
  a.state_indices = indexed ? idx.as<int32_t>() : nullptr;
  a.x = q8 ? nullptr : x.as<float>(); a.x_batch_stride = nheads * headdim;
  a.dt = dt.as<float>(); a.dt_batch_stride = nheads;
  a.B = q8 ? nullptr : B.as<float>(); a.B_batch_stride = ngroups * dstate;
  a.C = q8 ? nullptr : C.as<float>(); a.C_batch_stride = ngroups * dstate;
  a.z = z.present ? z.as<float>() : nullptr; a.z_batch_stride = nheads * headdim;
  a.out = out.Data(); a.out_batch_stride = nheads * headdim;
  a.A = A.as<float>();
  a.D = D.present ? D.as<float>() : nullptr;
  a.dt_bias = bias.present ? bias.as<float>() : nullptr;
  a.dt_softplus = softplus;
  if (has_min) a.dt_min = (float)dt_min;
  if (has_max) a.dt_max = (float)dt_max;
  if (q8) {
    SelectiveStateUpdateQ8Args q;
    q.upd = a;
    q.x = {x.as<int8_t>(), nheads * headdim, 0, x_scale.as<float>()};
    q.B = {B.as<int8_t>(), ngroups * dstate, 0, B_scale.as<float>()};
    q.C = {C.as<int8_t>(), ngroups * dstate, 0, C_scale.as<float>()};
    selective_state_update_q8(q);
  } else {
    selective_state_update(a);
  }

  Napi::Object o = Napi::Object::New(r.env);
  o.Set("out", out);
  o.Set("state", new_state);
  return o;
}

}  // namespace

void register_selective_scan(Napi::Env env, Napi::Object exports) {
  exports.Set("selectiveScan",
              Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, selective_scan_js); }));
  exports.Set("selectiveStateUpdate", Napi::Function::New(env, [](const Napi::CallbackInfo& i) {
                return guarded(i, selective_state_update_js);
              }));
}

}  // namespace nm::napi
