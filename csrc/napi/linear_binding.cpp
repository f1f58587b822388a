// JS entry points of the linear kernels (layouts in lib/kernels/linear.ts).
#include <napi.h>

#include <string>

#include "kernels/linear.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

LinearAlgo read_algo(const ArgReader& r) {
  if (!r.has("algorithm")) return LinearAlgo::Auto;
  Napi::Value v = r.obj.Get("algorithm");
  if (!v.IsString()) r.type_error("algorithm", "must be 'auto', 'gemv' or 'gemm'");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "auto") return LinearAlgo::Auto;
  if (s == "gemv") return LinearAlgo::Gemv;
  if (s == "gemm") return LinearAlgo::Gemm;
  r.type_error("algorithm", "must be 'auto', 'gemv' or 'gemm', got '" + s + "'");
}

// { x: f32 [rows, inFeatures], weight: f32|f16|bf16 [outFeatures, inFeatures],
//   bias?: f32|f16|bf16 [outFeatures], rows, inFeatures, outFeatures,
//   algorithm?: 'auto'|'gemv'|'gemm' } -> f32 [rows, outFeatures]
Napi::Value linear_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "linear");
  const int64_t M = r.integer("rows", 0, kMaxElements);
  const int64_t K = r.integer("inFeatures", 0, kMaxElements);
  const int64_t N = r.integer("outFeatures", 0, kMaxElements);
  const int64_t nx = checked_product(r, "x", {M, K});
  const int64_t nw = checked_product(r, "weight", {N, K});
  const int64_t ny = checked_product(r, "output", {M, N});
  ArrayArg x = float_array(r, "x", kF32, true, nx, shape_str({M, K}));
  ArrayArg w = float_array(r, "weight", kAnyFloat, true, nw, shape_str({N, K}));
  ArrayArg b = float_array(r, "bias", kAnyFloat, false, N, shape_str({N}));
  const LinearAlgo algo = read_algo(r);

  Napi::Float32Array y = new_f32(r.env, ny);
  LinearArgs a;
  a.M = M; a.N = N; a.K = K;
  a.x = x.as<float>(); a.x_stride = K;
  a.w = w.data; a.w_stride = K; a.w_dtype = w.dtype;
  a.bias = b.present ? b.data : nullptr; a.bias_dtype = b.dtype;
  a.y = y.Data(); a.y_stride = N;
  linear(a, algo);
  return y;
}

}  // namespace

void register_linear(Napi::Env env, Napi::Object exports) {
  exports.Set("linear", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, linear_js); }));
}

}  // namespace nm::napi
