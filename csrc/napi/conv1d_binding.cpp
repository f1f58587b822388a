// JS entry points of the conv1d kernels (layouts in lib/kernels/conv1d.ts).
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/conv1d.h"
#include "kernels/ssm_q8.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

// `activation`: 'silu' | 'none' (default 'none'). Returns true for silu.
bool read_activation(const ArgReader& r) {
  if (!r.has("activation")) return false;
  Napi::Value v = r.obj.Get("activation");
  if (!v.IsString()) r.type_error("activation", "must be the string 'silu' or 'none'");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "silu") return true;
  if (s == "none") return false;
  r.range_error("activation", "must be 'silu' or 'none', got '" + s + "'");
}

// { x: f32 [tokens, channels], weight: f32|f16|bf16 [channels, width],
//   bias?: f32|f16|bf16 [channels], tokens, channels, width,
//   cuSeqlens?: i32 [nseq+1], initialState?: f32 [nseq, channels, width-1],
//   activation?: 'silu'|'none' }
//   -> { out: f32 [tokens, channels], convState: f32 [nseq, channels, width-1] }
// int8 form (kernels/ssm_q8.h): x: Int8Array with xScale, outScale: f32
// [channels]; out is then an Int8Array quantized with outScale.
Napi::Value causal_conv1d_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "causalConv1d");
  int64_t tokens = r.integer("tokens", 0, kMaxElements);
  int64_t channels = r.integer("channels", 1, kMaxElements);
  int64_t width = r.integer("width", 1, kConv1dMaxWidth);
  const int64_t sw = width - 1;
  int64_t n = checked_product(r, "x", {tokens, channels});
  const bool q8 = is_int8_array(r, "x");
  ArrayArg x = q8 ? int8_array(r, "x", true, n, shape_str({tokens, channels}))
                  : float_array(r, "x", kF32, true, n, shape_str({tokens, channels}));
  ArrayArg x_scale, out_scale;
  if (q8) {
    x_scale = scale_array(r, "xScale", channels);
    out_scale = scale_array(r, "outScale", channels);
  }
  int64_t nw = checked_product(r, "weight", {channels, width});
  ArrayArg w = float_array(r, "weight", kAnyFloat, true, nw, shape_str({channels, width}));
  ArrayArg bias = float_array(r, "bias", kAnyFloat, false, channels, shape_str({channels}));

  // cuSeqlens: [nseq + 1], 0 = cu[0] <= cu[1] <= ... <= cu[nseq] = tokens.
  // Copied before validation so that the kernel sees exactly what was checked
  // (the array may live in a SharedArrayBuffer).
  int64_t nseq = 1;
  std::vector<int32_t> cu_copy;
  const int32_t* cu = nullptr;
  if (r.has("cuSeqlens")) {
    ArrayArg c = int32_array(r, "cuSeqlens", true, -1, "[nseq + 1]");
    if (c.length < 1) r.range_error("cuSeqlens", "must have at least 1 element (shape [nseq + 1])");
    cu_copy.assign(c.as<int32_t>(), c.as<int32_t>() + c.length);
    cu = cu_copy.data();
    nseq = c.length - 1;
    if (cu[0] != 0) r.range_error("cuSeqlens", "must start at 0, got " + std::to_string(cu[0]));
    for (int64_t i = 1; i <= nseq; ++i) {
      if (cu[i] < cu[i - 1])
        r.range_error("cuSeqlens", "must be non-decreasing, but element " + std::to_string(i) + " (" + std::to_string(cu[i]) +
                                      ") < element " + std::to_string(i - 1) + " (" + std::to_string(cu[i - 1]) + ")");
    }
    if ((int64_t)cu[nseq] != tokens)
      r.range_error("cuSeqlens", "must end at tokens (" + std::to_string(tokens) + "), got " + std::to_string(cu[nseq]));
  }
  int64_t ns = checked_product(r, "initialState", {nseq, channels, sw});
  std::string sshape = shape_str({nseq, channels, sw});
  ArrayArg init = float_array(r, "initialState", kF32, false, ns, sshape);
  bool silu = read_activation(r);

  Napi::Float32Array out = new_f32(r.env, q8 ? 0 : n), state = new_f32(r.env, ns);
  Napi::Int8Array outq = Napi::Int8Array::New(r.env, q8 ? (size_t)n : 0);
  CausalConv1dArgs a;
  a.tokens = tokens; a.channels = channels; a.width = width; a.nseq = nseq;
  a.cu_seqlens = cu;
  a.x = x.as<float>(); a.x_stride = channels;
  a.weight = w.data; a.weight_dtype = w.dtype; a.weight_stride = width;
  a.bias = bias.present ? bias.data : nullptr; a.bias_dtype = bias.dtype;
  a.initial_state = init.present ? init.as<float>() : nullptr;
  a.init_seq_stride = channels * sw; a.init_ch_stride = sw;
  a.final_state = state.Data(); a.final_seq_stride = channels * sw; a.final_ch_stride = sw;
  a.silu = silu;
  a.out = out.Data(); a.out_stride = channels;
  if (q8) {
    CausalConv1dQ8Args q;
    q.conv = a;
    q.io = {x.as<int8_t>(), channels, x_scale.as<float>(), outq.Data(), channels, out_scale.as<float>()};
    causal_conv1d_q8(q);
  } else {
    causal_conv1d(a);
  }
  Napi::Object o = Napi::Object::New(r.env);
  if (q8) o.Set("out", outq);
  else o.Set("out", out);
  o.Set("convState", state);
  return o;
}

// { x: f32 [batch, channels], convState: f32 [stateSlots, channels, width-1],
//   weight: f32|f16|bf16 [channels, width], bias?: [channels], batch,
//   channels, width, stateIndices?: i32 [batch], stateSlots? (default batch),
//   activation? }
//   -> { out: f32 [batch, channels], convState: f32 [stateSlots, channels, width-1] }
// int8 form as causalConv1d's (x: Int8Array, xScale, outScale; out: Int8Array).
Napi::Value causal_conv1d_update_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "causalConv1dUpdate");
  int64_t batch = r.integer("batch", 0, kMaxElements);
  int64_t channels = r.integer("channels", 1, kMaxElements);
  int64_t width = r.integer("width", 1, kConv1dMaxWidth);
  const int64_t sw = width - 1;
  // Slot indices are int32, so at most 2^31 slots.
  int64_t slots = r.integer_or("stateSlots", 0, INT32_MAX, batch);
  int64_t n = checked_product(r, "x", {batch, channels});
  const bool q8 = is_int8_array(r, "x");
  ArrayArg x = q8 ? int8_array(r, "x", true, n, shape_str({batch, channels}))
                  : float_array(r, "x", kF32, true, n, shape_str({batch, channels}));
  ArrayArg x_scale, out_scale;
  if (q8) {
    x_scale = scale_array(r, "xScale", channels);
    out_scale = scale_array(r, "outScale", channels);
  }
  int64_t nw = checked_product(r, "weight", {channels, width});
  ArrayArg w = float_array(r, "weight", kAnyFloat, true, nw, shape_str({channels, width}));
  ArrayArg bias = float_array(r, "bias", kAnyFloat, false, channels, shape_str({channels}));
  ArrayArg idx = int32_array(r, "stateIndices", false, batch, shape_str({batch}));
  if (!idx.present && slots != batch)
    r.range_error("stateSlots", "must equal batch (" + std::to_string(batch) + ") unless stateIndices is given, got " + std::to_string(slots));
  int64_t ns = checked_product(r, "convState", {slots, channels, sw});
  ArrayArg st = float_array(r, "convState", kF32, true, ns, shape_str({slots, channels, sw}));
  // Copied before validation (see causalConv1d); duplicates found by sorting.
  std::vector<int32_t> ix;
  if (idx.present) {
    ix.assign(idx.as<int32_t>(), idx.as<int32_t>() + batch);
    for (int64_t b = 0; b < batch; ++b) {
      if (ix[b] < 0 || (int64_t)ix[b] >= slots)
        r.range_error("stateIndices", "element " + std::to_string(b) + " is " + std::to_string(ix[b]) +
                                          ", outside [0, stateSlots = " + std::to_string(slots) + ")");
    }
    std::vector<int32_t> sorted = ix;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i] == sorted[i - 1])
        r.range_error("stateIndices", "repeats slot " + std::to_string(sorted[i]) + " (slots must be distinct)");
  }
  bool silu = read_activation(r);

  Napi::Float32Array out = new_f32(r.env, q8 ? 0 : n), state = new_f32(r.env, ns);
  Napi::Int8Array outq = Napi::Int8Array::New(r.env, q8 ? (size_t)n : 0);
  if (ns > 0) std::memcpy(state.Data(), st.data, (size_t)ns * sizeof(float));
  CausalConv1dUpdateArgs a;
  a.batch = batch; a.channels = channels; a.width = width;
  a.x = x.as<float>(); a.x_stride = channels;
  a.weight = w.data; a.weight_dtype = w.dtype; a.weight_stride = width;
  a.bias = bias.present ? bias.data : nullptr; a.bias_dtype = bias.dtype;
  a.conv_state = state.Data(); a.state_slot_stride = channels * sw; a.state_ch_stride = sw;
  a.state_indices = idx.present ? ix.data() : nullptr;
  a.silu = silu;
  a.out = out.Data(); a.out_stride = channels;
  if (q8) {
    CausalConv1dUpdateQ8Args q;
    q.conv = a;
    q.io = {x.as<int8_t>(), channels, x_scale.as<float>(), outq.Data(), channels, out_scale.as<float>()};
    causal_conv1d_update_q8(q);
  } else {
    causal_conv1d_update(a);
  }
  Napi::Object o = Napi::Object::New(r.env);
  if (q8) o.Set("out", outq);
  else o.Set("out", out);
  o.Set("convState", state);
  return o;
}

}  // namespace

void register_conv1d(Napi::Env env, Napi::Object exports) {
  exports.Set("causalConv1d", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, causal_conv1d_js); }));
  exports.Set("causalConv1dUpdate", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, causal_conv1d_update_js); }));
}

}  // namespace nm::napi
