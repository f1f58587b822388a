// JS entry point of the native sampler (kernels/sampling.h; lib/kernels/sampling.ts).
#include <napi.h>

#include "kernels/sampling.h"
#include "napi/bindings.h"
#include "napi/convert.h"
#include "napi/sample_params.h"

namespace nm::napi {

namespace {

// { logits: f32 [rows, vocab], rows, vocab, params: f64 [rows, 6], history?, historyOffsets? }
// (napi/sample_params.h) -> Int32Array [rows] (kSampleNaN / kSampleNoFinite for a row that
// cannot be sampled).
Napi::Value sample_tokens_js(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "sampleTokens");
  const int64_t rows = r.integer("rows", 0, kMaxElements), vocab = r.integer("vocab", 1, 2147483647);  // ids are int32
  const int64_t n = checked_product(r, "logits", {rows, vocab});
  ArrayArg logits = float_array(r, "logits", kF32, true, n, shape_str({rows, vocab}));
  const SampleRows s = read_sample_rows(r, r.obj.Get("params"), r.obj.Get("history"), r.obj.Get("historyOffsets"), rows, vocab);
  Napi::Int32Array out = Napi::Int32Array::New(r.env, (size_t)rows);
  sample_tokens(logits.as<float>(), rows, vocab, vocab, s.params.data(), out.Data());
  return out;
}

}  // namespace

void register_sampling(Napi::Env env, Napi::Object exports) {
  exports.Set("sampleTokens", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, sample_tokens_js); }));
}

}  // namespace nm::napi
