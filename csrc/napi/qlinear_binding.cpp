// JS entry point of the Quamba-style linear kernel (layouts in lib/kernels/qlinear.ts).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ggml_panels.h"
#include "kernels/qlinear.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

// weight / weightDtype / weightScales of an [N, K] I8 / I4 weight, in rows
// or (panels) in the panel layout, checked against their sizes.
struct QWeightArg {
  DType t;
  const void* data;
  const float* scales;
};

QWeightArg qweight_arg(ArgReader& r, int64_t N, int64_t K, bool panels) {
  Napi::Value dtv = r.obj.Get("weightDtype");
  const std::string ds = dtv.IsString() ? dtv.As<Napi::String>().Utf8Value() : "";
  if (ds != "i8" && ds != "i4") r.type_error("weightDtype", "must be 'i8' or 'i4'");
  const DType wt = ds == "i8" ? DType::I8 : DType::I4;
  Napi::Value wv = r.obj.Get("weight");
  const napi_typedarray_type want = wt == DType::I8 ? napi_int8_array : napi_uint8_array;
  if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != want)
    r.type_error("weight", wt == DType::I8 ? "must be an Int8Array for weightDtype 'i8'"
                                           : "must be a Uint8Array of packed nibbles for weightDtype 'i4'");
  Napi::TypedArray wa = wv.As<Napi::TypedArray>();
  const int64_t row_bytes = dtype_row_bytes(wt, K);
  if (!panels && (int64_t)wa.ByteLength() != N * row_bytes)
    r.range_error("weight", "must have " + std::to_string(N * row_bytes) + " bytes (" + ds + ", " +
                                std::to_string(N) + " rows of " + std::to_string(row_bytes) + " bytes), got " +
                                std::to_string(wa.ByteLength()));
  if (panels && (int64_t)wa.ByteLength() != dtype_panel_bytes(wt, N, K))
    r.range_error("weight", "must have " + std::to_string(dtype_panel_bytes(wt, N, K)) + " bytes (" + ds +
                                " in panels of " + std::to_string(kPanelRows) + " rows of " +
                                std::to_string(dtype_panel_row_bytes(wt, K)) + " bytes), got " +
                                std::to_string(wa.ByteLength()));
  const int64_t G = (K + kI4Group - 1) / kI4Group;
  const int64_t nscale = panels ? dtype_panel_scale_count(wt, N, K) : dtype_scale_count(wt, N, K);
  ArrayArg s = float_array(r, "weightScales", kF32, true, nscale,
                           wt == DType::I8 ? shape_str({N})
                           : panels        ? shape_str({dtype_panel_count(N), G, kPanelRows})
                                           : shape_str({N, G}));
  return {wt, static_cast<const char*>(wa.ArrayBuffer().Data()) + wa.ByteOffset(), s.as<float>()};
}

// { weight, weightDtype, weightScales (rows layout), outFeatures, inFeatures }
//   -> { data: Int8Array | Uint8Array, scales: f32 } in the panel layout
Napi::Value qlinear_pack_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "qlinearPackPanels");
  const int64_t K = r.integer("inFeatures", 0, int64_t(1) << 16);
  const int64_t N = r.integer("outFeatures", 0, kMaxElements);
  checked_product(r, "weight", {N, K});
  Napi::Value dtv = r.obj.Get("weightDtype");
  const std::string dts = dtv.IsString() ? dtv.As<Napi::String>().Utf8Value() : "";
  if (dts == "q8_0" || dts == "q4_0") {
    // ggml's blocks (scales inside): linear({ weightLayout: 'panels', inputRounding: 'q8' }) reads the result.
    const DType t = dts == "q8_0" ? DType::Q8_0 : DType::Q4_0;
    Napi::Value wv = r.obj.Get("weight");
    if (!wv.IsTypedArray() || wv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      r.type_error("weight", "must be a Uint8Array of " + dts + " blocks for weightDtype '" + dts + "'");
    if (K % kQuantBlock != 0)
      r.range_error("inFeatures", "must be a multiple of 32 for a " + dts + " weight, got " + std::to_string(K));
    Napi::Uint8Array u = wv.As<Napi::Uint8Array>();
    const int64_t need = N * dtype_row_bytes(t, K);
    if ((int64_t)u.ByteLength() != need)
      r.range_error("weight", "must have " + std::to_string(need) + " bytes (" + dts + ", shape " + shape_str({N, K}) +
                                  "), got " + std::to_string(u.ByteLength()));
    if (!ggml_packable(t, u.Data(), dtype_row_bytes(t, K), N, K))
      r.range_error("weight", "holds a q of -128, which the q8_0 panels cannot hold (ggml's quantizer writes -127..127)");
    const int64_t bytes = dtype_panel_bytes(t, N, K);
    HostBuffer panels;  // 64-byte aligned, as a loaded model's panels are
    panels.allocate((size_t)bytes, true);
    qweight_pack_panels(u.Data(), t, dtype_row_bytes(t, K), nullptr, N, K, panels.as<uint8_t>(), nullptr);
    Napi::ArrayBuffer ab = adopt_array_buffer(r.env, panels);
    Napi::Object out = Napi::Object::New(r.env);
    out.Set("data", Napi::Uint8Array::New(r.env, (size_t)bytes, ab, 0));
    out.Set("scales", new_f32(r.env, 0));
    return out;
  }
  const QWeightArg w = qweight_arg(r, N, K, false);
  const int64_t bytes = dtype_panel_bytes(w.t, N, K);
  HostBuffer panels;  // 64-byte aligned, as a loaded model's panels are
  panels.allocate((size_t)bytes, true);
  Napi::Float32Array sc = new_f32(r.env, dtype_panel_scale_count(w.t, N, K));
  qweight_pack_panels(w.data, w.t, dtype_row_bytes(w.t, K), w.scales, N, K, panels.as<uint8_t>(), sc.Data());
  Napi::ArrayBuffer ab = adopt_array_buffer(r.env, panels);
  Napi::Object out = Napi::Object::New(r.env);
  if (w.t == DType::I8) out.Set("data", Napi::Int8Array::New(r.env, (size_t)bytes, ab, 0));
  else out.Set("data", Napi::Uint8Array::New(r.env, (size_t)bytes, ab, 0));
  out.Set("scales", sc);
  return out;
}

// { x?: f32 [rows, inFeatures] | xq?: Int8Array [rows, inFeatures], xScale: number (0 = float inputs),
//   weight: Int8Array (i8) | Uint8Array (i4), weightDtype: 'i8' | 'i4', weightScales: f32,
//   bias?: f32|f16|bf16 [outFeatures], rows, inFeatures, outFeatures,
//   weightLayout?: 'rows' | 'panels' (int8 inputs only: weight and
//   weightScales are qlinearPackPanels' output, as the engine packs them
//   once at load) } -> f32 [rows, outFeatures]
Napi::Value qlinear_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "qlinear");
  const int64_t M = r.integer("rows", 0, kMaxElements);
  const int64_t K = r.integer("inFeatures", 0, int64_t(1) << 16);
  const int64_t N = r.integer("outFeatures", 0, kMaxElements);
  const int64_t nx = checked_product(r, "x", {M, K});
  const int64_t ny = checked_product(r, "output", {M, N});
  checked_product(r, "weight", {N, K});

  Napi::Value lv = r.obj.Get("weightLayout");
  const std::string ls = lv.IsUndefined() ? "rows" : lv.IsString() ? lv.As<Napi::String>().Utf8Value() : "";
  if (ls != "rows" && ls != "panels") r.type_error("weightLayout", "must be 'rows' or 'panels'");
  const bool panels = ls == "panels";
  const QWeightArg w = qweight_arg(r, N, K, panels);
  ArrayArg b = float_array(r, "bias", kAnyFloat, false, N, shape_str({N}));

  const double xs = r.number_or("xScale", 0.0);
  if (!(xs >= 0.0) || !std::isfinite(xs)) r.range_error("xScale", "must be a finite number >= 0");
  const bool int8_in = xs > 0.0;
  if (w.t == DType::I8 && !int8_in) r.range_error("xScale", "must be > 0 for i8 weights (W8A8)");
  if (panels && !int8_in) r.range_error("xScale", "must be > 0 with weightLayout 'panels' (int8 inputs)");

  QLinearArgs a;
  a.M = M; a.N = N; a.K = K;
  if (r.has("xq")) {
    if (!int8_in) r.range_error("xScale", "must be > 0 with already quantized inputs (xq)");
    Napi::Value qv = r.obj.Get("xq");
    if (!qv.IsTypedArray() || qv.As<Napi::TypedArray>().TypedArrayType() != napi_int8_array)
      r.type_error("xq", "must be an Int8Array");
    Napi::Int8Array q = qv.As<Napi::Int8Array>();
    if ((int64_t)q.ElementLength() != nx)
      r.range_error("xq", "must have " + std::to_string(nx) + " elements (shape " + shape_str({M, K}) + "), got " +
                              std::to_string(q.ElementLength()));
    a.xq = q.Data(); a.xq_stride = K;
  } else {
    ArrayArg x = float_array(r, "x", kF32, true, nx, shape_str({M, K}));
    a.x = x.as<float>(); a.x_stride = K;
  }
  a.x_scale = (float)xs;
  a.w = w.data;
  a.w_stride = dtype_row_bytes(w.t, K); a.w_dtype = w.t;
  a.w_scales = w.scales;
  a.w_layout = panels ? WeightLayout::Panels : WeightLayout::Rows;
  a.bias = b.present ? b.data : nullptr; a.bias_dtype = b.dtype;
  Napi::Float32Array y = new_f32(r.env, ny);
  a.y = y.Data(); a.y_stride = N;
  qlinear(a);
  return y;
}

// { x: f32 [rows, cols], scale: number > 0 } -> Int8Array (quantize_act_int8)
Napi::Value quantize_int8_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "quantizeInt8");
  const int64_t M = r.integer("rows", 0, kMaxElements);
  const int64_t K = r.integer("cols", 0, kMaxElements);
  const int64_t n = checked_product(r, "x", {M, K});
  ArrayArg x = float_array(r, "x", kF32, true, n, shape_str({M, K}));
  const double s = r.number_or("scale", -1.0);
  if (!(s > 0.0) || !std::isfinite(s)) r.range_error("scale", "must be a finite number > 0");
  Napi::Int8Array q = Napi::Int8Array::New(r.env, (size_t)n);
  quantize_act_int8(x.as<float>(), K, M, K, 1.0f / (float)s, q.Data(), K);
  return q;
}

}  // namespace

void register_qlinear(Napi::Env env, Napi::Object exports) {
  exports.Set("qlinear", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, qlinear_js); }));
  exports.Set("qlinearPackPanels",
              Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, qlinear_pack_js); }));
  exports.Set("quantizeInt8",
              Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, quantize_int8_js); }));
}

}  // namespace nm::napi
