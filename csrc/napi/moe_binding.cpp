// JS entry points of the mixture-of-experts kernels (layouts in lib/kernels/moe.ts).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/ggml_panels.h"
#include "kernels/qlinear.h"
#include "kernels/moe.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

std::string str_or(const ArgReader& r, const char* name, const std::string& def) {
  if (!r.has(name)) return def;
  Napi::Value v = r.obj.Get(name);
  if (!v.IsString()) r.type_error(name, "must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// The router options shared by moeRoute and moe (when moe routes itself).
struct Router {
  MoeRouteArgs a;
};

Router read_router(const ArgReader& r, int64_t T, int64_t E, int64_t k) {
  Router out;
  MoeRouteArgs& a = out.a;
  a.T = T; a.E = E; a.k = k;
  const std::string s = str_or(r, "router", "");
  if (s == "softmax_topk") a.router = MoeRouter::SoftmaxTopk;
  else if (s == "topk_softmax") a.router = MoeRouter::TopkSoftmax;
  else if (s == "sigmoid_grouped") a.router = MoeRouter::SigmoidGrouped;
  else r.type_error("router", "must be 'softmax_topk', 'topk_softmax' or 'sigmoid_grouped', got '" + s + "'");
  ArrayArg logits = float_array(r, "logits", kF32, true, checked_product(r, "logits", {T, E}), shape_str({T, E}));
  a.logits = logits.as<float>();
  a.logits_stride = E;
  const bool grouped = a.router == MoeRouter::SigmoidGrouped;
  for (const char* name : {"bias", "nGroup", "topkGroup", "normTopkProb", "routedScalingFactor"})
    if (!grouped && r.has(name)) r.type_error(name, "applies only to router 'sigmoid_grouped'");
  if (grouped) {
    ArrayArg b = float_array(r, "bias", kF32, false, E, shape_str({E}));
    a.bias = b.present ? b.as<float>() : nullptr;
    a.n_group = r.integer_or("nGroup", 1, E, 1);
    if (E % a.n_group != 0)
      r.range_error("nGroup", "must divide experts (" + std::to_string(E) + "), got " + std::to_string(a.n_group));
    a.topk_group = r.integer_or("topkGroup", 1, a.n_group, a.n_group);
    const int64_t avail = a.topk_group * (E / a.n_group);
    if (k > avail)
      r.range_error("k", "must be <= topkGroup * experts / nGroup (" + std::to_string(avail) + "), got " +
                             std::to_string(k));
    a.norm_topk_prob = r.boolean_or("normTopkProb", false);
    a.routed_scaling_factor = (float)r.number_or("routedScalingFactor", 1.0);
  }
  return out;
}

// { logits: f32 [tokens, experts], tokens, experts, k, router, bias?, nGroup?, topkGroup?,
//   normTopkProb?, routedScalingFactor? } -> { ids: Int32Array [tokens, k], weights: f32 [tokens, k] }
Napi::Value moe_route_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "moeRoute");
  const int64_t T = r.integer("tokens", 0, kMaxElements);
  const int64_t E = r.integer("experts", 1, 1 << 20);
  const int64_t k = r.integer("k", 1, E);
  Router rt = read_router(r, T, E, k);
  const int64_t n = checked_product(r, "ids", {T, k});
  Napi::Int32Array ids = Napi::Int32Array::New(r.env, (size_t)n);
  Napi::Float32Array w = new_f32(r.env, n);
  rt.a.ids = ids.Data();
  rt.a.weights = w.Data();
  moe_route(rt.a);
  Napi::Object o = Napi::Object::New(r.env);
  o.Set("ids", ids);
  o.Set("weights", w);
  return o;
}

// The stacked expert weight `name`: E matrices of R rows of K columns.
//   Float32Array (f32), Uint16Array + <name>Dtype 'f16' | 'bf16', Uint8Array + 'q8_0' | 'q4_0' | 'i4',
//   Int8Array + 'i8'; i8 / i4 also <name>Scales (f32 [E, R] / [E, R, ceil(K/128)]) and
//   <name>XScale (f32 [E], static input scales; required for i8, absent = W4A16 for i4).
MoeWeight expert_weight(const ArgReader& r, const std::string& name, int64_t E, int64_t R, int64_t K) {
  const std::string dkey = name + "Dtype", skey = name + "Scales", xkey = name + "XScale";
  const char* n = name.c_str();
  checked_product(r, n, {E, R, K});
  Napi::Value v = r.obj.Get(n);
  if (v.IsUndefined() || v.IsNull()) r.type_error(name, "is required (the stacked expert weights)");
  if (!v.IsTypedArray()) r.type_error(name, "must be a typed array");
  const auto type = v.As<Napi::TypedArray>().TypedArrayType();
  const std::string ds = r.has(dkey.c_str()) ? str_or(r, dkey.c_str(), "") : "";
  MoeWeight w;
  if (type == napi_float32_array || type == napi_uint16_array) {
    ArrayArg a = float_array(r, n, kAnyFloat, true, E * R * K, shape_str({E, R, K}));
    w.w = a.data; w.dtype = a.dtype; w.row_stride = K;
    w.expert_stride = R * K * (a.dtype == DType::F32 ? 4 : 2);
  } else if (ds == "q8_0" || ds == "q4_0") {
    if (type != napi_uint8_array) r.type_error(name, "with " + dkey + " '" + ds + "' must be a Uint8Array of blocks");
    const DType t = ds == "q8_0" ? DType::Q8_0 : DType::Q4_0;
    if (K % kQuantBlock != 0)
      r.range_error(name, "has rows of " + std::to_string(K) + " elements, not a multiple of 32 (" + ds + " blocks)");
    w.dtype = t; w.row_stride = K; w.expert_stride = dtype_row_bytes(t, R * K);
  } else if (ds == "i8" || ds == "i4") {
    const DType t = ds == "i8" ? DType::I8 : DType::I4;
    if (K > (int64_t(1) << 16))
      r.range_error(name, "has rows of " + std::to_string(K) + " elements; " + ds + " supports at most 65536");
    if (type != (t == DType::I8 ? napi_int8_array : napi_uint8_array))
      r.type_error(name, t == DType::I8 ? "must be an Int8Array for " + dkey + " 'i8'"
                                        : "must be a Uint8Array of packed nibbles for " + dkey + " 'i4'");
    w.dtype = t; w.row_stride = dtype_row_bytes(t, K); w.expert_stride = R * w.row_stride;
    const int64_t per = dtype_scale_count(t, R, K);
    ArrayArg s = float_array(r, skey.c_str(), kF32, true, E * per,
                             t == DType::I8 ? shape_str({E, R}) : shape_str({E, R, (K + kI4Group - 1) / kI4Group}));
    w.scales = s.as<float>(); w.scales_expert_stride = per;
    ArrayArg xs = float_array(r, xkey.c_str(), kF32, t == DType::I8, E, shape_str({E}));
    if (xs.present) {
      for (int64_t e = 0; e < E; ++e) {
        const float f = xs.as<float>()[e];
        if (!(f > 0.0f) || !std::isfinite(f)) r.range_error(xkey, "must hold finite values > 0 (expert " + std::to_string(e) + ")");
      }
      w.x_scale = xs.as<float>();
    }
  } else {
    r.type_error(dkey, "must be 'f16' / 'bf16' (Uint16Array), 'q8_0' / 'q4_0' / 'i4' (Uint8Array) or 'i8' (Int8Array)"
                       " for this " + std::string(type == napi_uint8_array ? "Uint8Array" : "typed array"));
  }
  if (w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0 || w.dtype == DType::I8 || w.dtype == DType::I4) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    const int64_t need = E * w.expert_stride;
    if ((int64_t)ta.ByteLength() != need)
      r.range_error(name, "must have " + std::to_string(need) + " bytes (" + ds + ", " + std::to_string(E) +
                              " experts of " + std::to_string(R) + " rows of " + std::to_string(K) + "), got " +
                              std::to_string(ta.ByteLength()));
    w.w = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  }
  if (w.dtype != DType::I8 && w.dtype != DType::I4)
    for (const std::string& extra : {skey, xkey})
      if (r.has(extra.c_str())) r.type_error(extra, "applies only to i8 / i4 weights");
  return w;
}

// The E expert matrices of w (R rows of K) packed into the panel layout a
// loaded model reads them in (core/dtype.h), into buf (I8 / I4: their
// scales in panel order into sbuf); w then reaches them through its expert
// pointer tables (ptrs, sptrs). q8_0 / q4_0 experts need inputRounding 'q8',
// i8 / i4 experts int8 inputs (inputScales), as the engine packs them.
void expert_panels(const ArgReader& r, const char* name, ActRounding rounding, MoeWeight& w, int64_t E, int64_t R,
                   int64_t K, std::vector<uint8_t>& buf, std::vector<const void*>& ptrs, std::vector<float>& sbuf,
                   std::vector<const float*>& sptrs) {
  const bool ggml = w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0;
  const bool quamba = w.dtype == DType::I8 || w.dtype == DType::I4;
  if (!ggml && !quamba)
    r.type_error("weightLayout", std::string("'panels' needs q8_0, q4_0, i8 or i4 experts; ") + name + " is " + dtype_name(w.dtype));
  if (ggml && rounding != ActRounding::Q8Block)
    r.range_error("inputRounding", "must be 'q8' with weightLayout 'panels' (q8_0 / q4_0 experts in panels)");
  if (quamba && !w.x_scale)
    r.type_error("weightLayout", std::string("'panels' needs int8 inputs (input scales) for i4 experts; ") + name + " has none");
  const int64_t row_bytes = ggml ? dtype_row_bytes(w.dtype, K) : w.row_stride;
  const int64_t panel_bytes = dtype_panel_bytes(w.dtype, R, K);
  const int64_t panel_scales = quamba ? dtype_panel_scale_count(w.dtype, R, K) : 0;
  buf.assign((size_t)std::max<int64_t>(E * panel_bytes, 1), 0);
  ptrs.assign((size_t)E, nullptr);
  sbuf.assign((size_t)std::max<int64_t>(E * panel_scales, 1), 0.0f);
  sptrs.assign((size_t)E, nullptr);
  for (int64_t e = 0; e < E; ++e) {
    const void* src = static_cast<const char*>(w.w) + e * w.expert_stride;
    uint8_t* dst = buf.data() + e * panel_bytes;
    if (ggml) {
      if (!ggml_packable(w.dtype, src, row_bytes, R, K))
        r.range_error(name, "expert " + std::to_string(e) + " holds a q8_0 quant of -128, which the panel layout cannot take");
      ggml_pack_panels(w.dtype, src, row_bytes, R, K, dst);
    } else {
      qweight_pack_panels(src, w.dtype, row_bytes, w.scales + e * w.scales_expert_stride, R, K, dst,
                          sbuf.data() + e * panel_scales);
      sptrs[(size_t)e] = sbuf.data() + e * panel_scales;
    }
    ptrs[(size_t)e] = dst;
  }
  w.experts = ptrs.data();
  if (quamba) w.expert_scales = sptrs.data();
  w.layout = WeightLayout::Panels;
}

// { x: f32 [tokens, hidden], tokens, hidden, intermediate, experts, k,
//   ids?: Int32Array [tokens, k], weights?: f32 [tokens, k]  |  logits + router options (moeRoute),
//   gateUp (packed [experts, 2·intermediate, hidden])  |  gate + up ([experts, intermediate, hidden] each),
//   down [experts, hidden, intermediate], shared?: f32 [tokens, hidden], algorithm?: 'auto'|'decode'|'batched',
//   swigluEpilogue?: boolean,
//   inputRounding?: 'none'|'bf16'|'q8' (of every float-kernel product's input, kernels/linear.h),
//   weightLayout?: 'rows'|'panels' (q8_0 / q4_0 experts with 'q8', or i8 / i4 experts with input
//   scales, packed here as a loaded model packs them) }
//   -> f32 [tokens, hidden]
Napi::Value moe_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "moe");
  const int64_t T = r.integer("tokens", 0, kMaxElements);
  const int64_t d = r.integer("hidden", 0, kMaxElements);
  const int64_t I = r.integer("intermediate", 0, kMaxElements);
  const int64_t E = r.integer("experts", 1, 1 << 20);
  const int64_t k = r.integer("k", 1, E);
  const int64_t nx = checked_product(r, "x", {T, d});
  const int64_t nk = checked_product(r, "ids", {T, k});
  ArrayArg x = float_array(r, "x", kF32, true, nx, shape_str({T, d}));

  MoeArgs a;
  a.T = T; a.d = d; a.I = I; a.E = E; a.k = k;
  a.x = x.as<float>(); a.x_stride = d;

  // Routing: given, or computed here from logits.
  Napi::Int32Array ids_buf;
  Napi::Float32Array w_buf;
  if (r.has("logits")) {
    if (r.has("ids") || r.has("weights")) r.type_error("logits", "cannot be combined with 'ids' / 'weights'");
    Router rt = read_router(r, T, E, k);
    ids_buf = Napi::Int32Array::New(r.env, (size_t)nk);
    w_buf = new_f32(r.env, nk);
    rt.a.ids = ids_buf.Data();
    rt.a.weights = w_buf.Data();
    moe_route(rt.a);
    a.ids = ids_buf.Data();
    a.weights = w_buf.Data();
  } else {
    if (!r.has("ids")) r.type_error("ids", "is required (an Int32Array of shape " + shape_str({T, k}) + ") unless 'logits' is given");
    for (const char* name : {"router", "bias", "nGroup", "topkGroup", "normTopkProb", "routedScalingFactor"})
      if (r.has(name)) r.type_error(name, "applies only with 'logits'");
    ArrayArg ids = int32_array(r, "ids", true, nk, shape_str({T, k}));
    ArrayArg w = float_array(r, "weights", kF32, true, nk, shape_str({T, k}));
    for (int64_t i = 0; i < nk; ++i) {
      const int32_t e = ids.as<int32_t>()[i];
      if (e < 0 || e >= E)
        r.range_error("ids", "must hold expert ids in [0, " + std::to_string(E) + "), got " + std::to_string(e) +
                                 " at [" + std::to_string(i / k) + ", " + std::to_string(i % k) + "]");
    }
    a.ids = ids.as<int32_t>();
    a.weights = w.as<float>();
  }

  if (r.has("gateUp")) {
    if (r.has("gate") || r.has("up")) r.type_error("gateUp", "cannot be combined with 'gate' / 'up'");
    MoeWeight gu = expert_weight(r, "gateUp", E, 2 * I, d);
    a.gate = gu;
    a.up = gu;
    const int64_t half = gu.dtype == DType::I8 || gu.dtype == DType::I4 ? I * gu.row_stride : dtype_row_bytes(gu.dtype, I * d);
    a.up.w = static_cast<const char*>(gu.w) + half;
    if (gu.scales) a.up.scales = gu.scales + I * dtype_scale_count(gu.dtype, 1, d);
  } else {
    if (!r.has("gate") || !r.has("up")) r.type_error("gateUp", "is required (or both 'gate' and 'up')");
    a.gate = expert_weight(r, "gate", E, I, d);
    a.up = expert_weight(r, "up", E, I, d);
  }
  a.down = expert_weight(r, "down", E, d, I);

  ArrayArg sh = float_array(r, "shared", kF32, false, nx, shape_str({T, d}));
  a.shared = sh.present ? sh.as<float>() : nullptr;
  a.shared_stride = d;

  constexpr std::pair<const char*, MoeAlgo> kMoeAlgos[] = {
      {"auto", MoeAlgo::Auto}, {"decode", MoeAlgo::Decode}, {"batched", MoeAlgo::Batched}};
  const MoeAlgo algo = read_choice(r, "algorithm", kMoeAlgos);
  const ActRounding rounding = read_choice(r, "inputRounding", kRoundings);
  for (MoeWeight* w : {&a.gate, &a.up, &a.down}) w->x_rounding = rounding;
  a.swiglu_epilogue = r.boolean_or("swigluEpilogue", true);
  constexpr std::pair<const char*, WeightLayout> kLayouts[] = {{"rows", WeightLayout::Rows}, {"panels", WeightLayout::Panels}};
  std::vector<uint8_t> panel_bufs[3];
  std::vector<const void*> panel_ptrs[3];
  std::vector<float> panel_scales[3];
  std::vector<const float*> panel_scale_ptrs[3];
  if (read_choice(r, "weightLayout", kLayouts) == WeightLayout::Panels) {
    const bool packed = r.has("gateUp");
    expert_panels(r, packed ? "gateUp" : "gate", rounding, a.gate, E, I, d, panel_bufs[0], panel_ptrs[0], panel_scales[0],
                  panel_scale_ptrs[0]);
    expert_panels(r, packed ? "gateUp" : "up", rounding, a.up, E, I, d, panel_bufs[1], panel_ptrs[1], panel_scales[1],
                  panel_scale_ptrs[1]);
    expert_panels(r, "down", rounding, a.down, E, d, I, panel_bufs[2], panel_ptrs[2], panel_scales[2], panel_scale_ptrs[2]);
  }

  Napi::Float32Array out = new_f32(r.env, nx);
  a.out = out.Data();
  a.out_stride = d;
  moe(a, algo);
  return out;
}

}  // namespace

void register_moe(Napi::Env env, Napi::Object exports) {
  exports.Set("moeRoute", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, moe_route_js); }));
  exports.Set("moe", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, moe_js); }));
}

}  // namespace nm::napi
