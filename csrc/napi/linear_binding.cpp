// JS entry points of the linear kernels (layouts in lib/kernels/linear.ts).
#include <napi.h>

#include <string>
#include <utility>

#include "kernels/linear.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

constexpr std::pair<const char*, LinearAlgo> kAlgos[] = {
    {"auto", LinearAlgo::Auto}, {"gemv", LinearAlgo::Gemv}, {"gemm", LinearAlgo::Gemm}};

constexpr std::pair<const char*, WeightLayout> kLayouts[] = {{"rows", WeightLayout::Rows}, {"panels", WeightLayout::Panels}};

// A ggml block-quantized weight: weight is a Uint8Array of raw blocks and
// weightDtype 'q8_0' | 'q4_0' (with `panels`: in the format's panel layout,
// qlinearPackPanels' output). Returns false when the weight is not one.
bool quant_weight(const ArgReader& r, int64_t N, int64_t K, bool panels, ArrayArg* out) {
  Napi::Value v = r.obj.Get("weight");
  Napi::Value dt = r.obj.Get("weightDtype");
  const std::string s = dt.IsString() ? dt.As<Napi::String>().Utf8Value() : "";
  const bool is_u8 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  if (s != "q8_0" && s != "q4_0") {
    if (is_u8) r.type_error("weight", "is a Uint8Array, so 'weightDtype' must be 'q8_0' or 'q4_0'");
    return false;
  }
  if (!is_u8) r.type_error("weight", "with weightDtype '" + s + "' must be a Uint8Array of " + s + " blocks");
  const DType t = s == "q8_0" ? DType::Q8_0 : DType::Q4_0;
  if (K % kQuantBlock != 0)
    r.range_error("inFeatures", "must be a multiple of " + std::to_string(kQuantBlock) + " for a " + s +
                                    " weight (blocks of 32 along inFeatures), got " + std::to_string(K));
  const int64_t bb = dtype_block_bytes(t), blocks = K / kQuantBlock;
  // N * K <= 2^40 was checked, so N * blocks * bb stays far from overflow.
  const int64_t need = panels ? dtype_panel_bytes(t, N, K) : N * blocks * bb;
  Napi::Uint8Array u = v.As<Napi::Uint8Array>();
  const int64_t got = (int64_t)u.ByteLength();
  if (got != need)
    r.range_error("weight", "must have " + std::to_string(need) + " bytes (" + s + ", shape " + shape_str({N, K}) +
                                ": " + (panels ? std::to_string(dtype_panel_count(N)) + " panels of 16" : std::to_string(N)) +
                                " rows of " + std::to_string(blocks) + " blocks of " + std::to_string(bb) +
                                " bytes), got " + std::to_string(got));
  out->data = u.Data();
  out->length = K == 0 ? 0 : N * K;
  out->dtype = t;
  out->present = true;
  return true;
}

// { x: f32 [rows, inFeatures], weight: f32|f16|bf16|q8_0|q4_0 [outFeatures, inFeatures],
//   bias?: f32|f16|bf16 [outFeatures], rows, inFeatures, outFeatures,
//   algorithm?: 'auto'|'gemv'|'gemm', inputRounding?: 'none'|'bf16'|'q8',
//   weightLayout?: 'rows'|'panels' (q8_0 / q4_0 with 'q8' only) }
//   -> f32 [rows, outFeatures]
Napi::Value linear_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "linear");
  const int64_t M = r.integer("rows", 0, kMaxElements);
  const int64_t K = r.integer("inFeatures", 0, kMaxElements);
  const int64_t N = r.integer("outFeatures", 0, kMaxElements);
  const int64_t nx = checked_product(r, "x", {M, K});
  const int64_t nw = checked_product(r, "weight", {N, K});
  const int64_t ny = checked_product(r, "output", {M, N});
  ArrayArg x = float_array(r, "x", kF32, true, nx, shape_str({M, K}));
  const WeightLayout layout = read_choice(r, "weightLayout", kLayouts);
  const bool panels = layout == WeightLayout::Panels;
  ArrayArg w;
  if (!quant_weight(r, N, K, panels, &w)) {
    if (panels) r.type_error("weightLayout", "'panels' needs a q8_0 or q4_0 weight (weightDtype 'q8_0' | 'q4_0')");
    w = float_array(r, "weight", kAnyFloat, true, nw, shape_str({N, K}));
  }
  ArrayArg b = float_array(r, "bias", kAnyFloat, false, N, shape_str({N}));
  const LinearAlgo algo = read_choice(r, "algorithm", kAlgos);
  const ActRounding rounding = read_choice(r, "inputRounding", kRoundings);
  if (panels && rounding != ActRounding::Q8Block)
    r.range_error("inputRounding", "must be 'q8' with weightLayout 'panels' (a q8_0 / q4_0 weight in panels)");

  Napi::Float32Array y = new_f32(r.env, ny);
  LinearArgs a;
  a.M = M; a.N = N; a.K = K;
  a.x = x.as<float>(); a.x_stride = K;
  a.w = w.data; a.w_stride = K; a.w_dtype = w.dtype; a.w_layout = layout;
  a.bias = b.present ? b.data : nullptr; a.bias_dtype = b.dtype;
  a.y = y.Data(); a.y_stride = N;
  a.x_rounding = rounding;
  linear(a, algo);
  return y;
}

}  // namespace

void register_linear(Napi::Env env, Napi::Object exports) {
  exports.Set("linear", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, linear_js); }));
}

}  // namespace nm::napi
