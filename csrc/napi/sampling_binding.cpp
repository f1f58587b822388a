// JS entry point of the native sampler (kernels/sampling.h; lib/kernels/sampling.ts).
#include <napi.h>

#include <cmath>
#include <string>

#include "kernels/sampling.h"
#include "napi/bindings.h"
#include "napi/convert.h"
#include "napi/sample_params.h"

namespace nm::napi {

std::vector<SampleParams> read_sample_params(const ArgReader& r, const Napi::Value& v, const char* name, int64_t rows) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    r.type_error(name, "must be a Float64Array");
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  if ((int64_t)a.ElementLength() != rows * kSampleParamFields)
    r.range_error(name, "must hold " + std::to_string(kSampleParamFields) + " numbers (temperature, topK, topP, minP, u) for each of the " +
                            std::to_string(rows) + " rows, got " + std::to_string(a.ElementLength()));
  std::vector<SampleParams> out((size_t)rows);
  const double* d = a.Data();
  for (int64_t i = 0; i < rows; ++i) {
    const double* f = d + i * kSampleParamFields;
    auto bad = [&](const char* field, const char* expected, double value) {
      r.range_error(name, std::string("row ") + std::to_string(i) + ": " + field + " must be " + expected + ", got " +
                              std::to_string(value));
    };
    if (!(std::isfinite(f[0]) && f[0] >= 0)) bad("temperature", "a finite number >= 0", f[0]);
    if (!(f[1] >= 0 && f[1] <= 9007199254740991.0 && f[1] == std::floor(f[1]))) bad("topK", "an integer >= 0", f[1]);
    if (!(f[2] > 0 && f[2] <= 1)) bad("topP", "a number in (0, 1]", f[2]);
    if (!(f[3] >= 0 && f[3] <= 1)) bad("minP", "a number in [0, 1]", f[3]);
    if (!(f[4] >= 0 && f[4] < 1)) bad("u", "a number in [0, 1)", f[4]);
    SampleParams& p = out[(size_t)i];
    p.temperature = f[0];
    p.top_k = (int64_t)f[1];
    p.top_p = f[2];
    p.min_p = f[3];
    p.u = f[4];
  }
  return out;
}

namespace {

// { logits: f32 [rows, vocab], rows, vocab, params: f64 [rows, 5] } -> Int32Array [rows]
// (kSampleNaN / kSampleNoFinite for a row that cannot be sampled).
Napi::Value sample_tokens_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "sampleTokens");
  const int64_t rows = r.integer("rows", 0, kMaxElements), vocab = r.integer("vocab", 1, 2147483647);  // ids are int32
  const int64_t n = checked_product(r, "logits", {rows, vocab});
  ArrayArg logits = float_array(r, "logits", kF32, true, n, shape_str({rows, vocab}));
  std::vector<SampleParams> params = read_sample_params(r, r.obj.Get("params"), "params", rows);
  Napi::Int32Array out = Napi::Int32Array::New(r.env, (size_t)rows);
  sample_tokens(logits.as<float>(), rows, vocab, vocab, params.data(), out.Data());
  return out;
}

}  // namespace

void register_sampling(Napi::Env env, Napi::Object exports) {
  exports.Set("sampleTokens", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, sample_tokens_js); }));
}

}  // namespace nm::napi
