// JS entry points of the norm kernels (layouts in lib/kernels/norm.ts).
#include <napi.h>

#include "kernels/norm.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

// { x: f32 [rows, dim], residual?: f32 [rows, dim], weight: f32|f16|bf16 [dim],
//   rows, dim, eps? } -> { out: f32 [rows, dim], residual: f32 [rows, dim] }
Napi::Value rms_norm_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "rmsNorm");
  int64_t rows = r.integer("rows", 0, kMaxElements), dim = r.integer("dim", 1, kMaxElements);
  int64_t n = checked_product(r, "x", {rows, dim});
  std::string shp = shape_str({rows, dim});
  ArrayArg x = float_array(r, "x", kF32, true, n, shp);
  ArrayArg res = float_array(r, "residual", kF32, false, n, shp);
  ArrayArg w = float_array(r, "weight", kAnyFloat, true, dim, shape_str({dim}));
  double eps = r.number_or("eps", 1e-5);
  if (eps < 0) r.range_error("eps", "must be >= 0");

  Napi::Float32Array out = new_f32(r.env, n), res_out = new_f32(r.env, n);
  RmsNormArgs a;
  a.rows = rows; a.dim = dim;
  a.x = x.as<float>(); a.x_stride = dim;
  a.residual_in = res.present ? res.as<float>() : nullptr; a.residual_in_stride = dim;
  a.residual_out = res_out.Data(); a.residual_out_stride = dim;
  a.weight = w.data; a.weight_dtype = w.dtype;
  a.eps = (float)eps;
  a.out = out.Data(); a.out_stride = dim;
  rms_norm(a);
  Napi::Object o = Napi::Object::New(r.env);
  o.Set("out", out);
  o.Set("residual", res_out);
  return o;
}

// { y: f32 [rows, dim], z?: f32 [rows, dim], weight: f32|f16|bf16 [dim], rows, dim,
//   groupSize?, eps? } -> f32 [rows, dim]
Napi::Value gated_rms_norm_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "gatedRmsNorm");
  int64_t rows = r.integer("rows", 0, kMaxElements), dim = r.integer("dim", 1, kMaxElements);
  int64_t gs = r.integer_or("groupSize", 1, dim, dim);
  if (dim % gs != 0) r.range_error("groupSize", "must divide dim (" + std::to_string(dim) + "), got " + std::to_string(gs));
  int64_t n = checked_product(r, "y", {rows, dim});
  std::string shp = shape_str({rows, dim});
  ArrayArg y = float_array(r, "y", kF32, true, n, shp);
  ArrayArg z = float_array(r, "z", kF32, false, n, shp);
  ArrayArg w = float_array(r, "weight", kAnyFloat, true, dim, shape_str({dim}));
  double eps = r.number_or("eps", 1e-5);
  if (eps < 0) r.range_error("eps", "must be >= 0");

  Napi::Float32Array out = new_f32(r.env, n);
  GatedRmsNormArgs a;
  a.rows = rows; a.dim = dim; a.group_size = gs;
  a.y = y.as<float>(); a.y_stride = dim;
  a.z = z.present ? z.as<float>() : nullptr; a.z_stride = dim;
  a.weight = w.data; a.weight_dtype = w.dtype;
  a.eps = (float)eps;
  a.out = out.Data(); a.out_stride = dim;
  gated_rms_norm(a);
  return out;
}

}  // namespace

void register_norm(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNorm", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, rms_norm_js); }));
  exports.Set("gatedRmsNorm", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, gated_rms_norm_js); }));
}

}  // namespace nm::napi
