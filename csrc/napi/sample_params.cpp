// Reading the samplers' per-row parameters and histories (napi/sample_params.h).
#include "napi/sample_params.h"

#include <cmath>
#include <string>

namespace nm::napi {

SampleRows read_sample_rows(const ArgReader& r, const Napi::Value& params, const Napi::Value& history,
                            const Napi::Value& offsets, int64_t rows, int64_t vocab) {
  if (!params.IsTypedArray() || params.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    r.type_error("params", "must be a Float64Array");
  Napi::Float64Array a = params.As<Napi::Float64Array>();
  if ((int64_t)a.ElementLength() != rows * kSampleParamFields)
    r.range_error("params", "must hold " + std::to_string(kSampleParamFields) +
                                " numbers (temperature, topK, topP, minP, repetitionPenalty, u) for each of the " +
                                std::to_string(rows) + " rows, got " + std::to_string(a.ElementLength()));
  SampleRows out;
  out.params.resize((size_t)rows);
  const double* d = a.Data();
  for (int64_t i = 0; i < rows; ++i) {
    const double* f = d + i * kSampleParamFields;
    auto bad = [&](const char* field, const char* expected, double value) {
      r.range_error("params", std::string("row ") + std::to_string(i) + ": " + field + " must be " + expected + ", got " +
                                  std::to_string(value));
    };
    if (!(std::isfinite(f[0]) && f[0] >= 0)) bad("temperature", "a finite number >= 0", f[0]);
    if (!(f[1] >= 0 && f[1] <= 9007199254740991.0 && f[1] == std::floor(f[1]))) bad("topK", "an integer >= 0", f[1]);
    if (!(f[2] > 0 && f[2] <= 1)) bad("topP", "a number in (0, 1]", f[2]);
    if (!(f[3] >= 0 && f[3] <= 1)) bad("minP", "a number in [0, 1]", f[3]);
    if (!(std::isfinite(f[4]) && f[4] > 0)) bad("repetitionPenalty", "a finite number > 0", f[4]);
    if (!(f[5] >= 0 && f[5] < 1)) bad("u", "a number in [0, 1)", f[5]);
    SampleParams& p = out.params[(size_t)i];
    p.temperature = f[0];
    p.top_k = (int64_t)f[1];
    p.top_p = f[2];
    p.min_p = f[3];
    p.repetition_penalty = f[4];
    p.u = f[5];
  }
  const bool has_h = !history.IsUndefined() && !history.IsNull(), has_o = !offsets.IsUndefined() && !offsets.IsNull();
  if (has_h != has_o) r.type_error(has_h ? "historyOffsets" : "history", "must be given with " + std::string(has_h ? "history" : "historyOffsets"));
  if (!has_h) return out;
  auto i32 = [&](const Napi::Value& v, const char* name) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) r.type_error(name, "must be an Int32Array");
    return v.As<Napi::Int32Array>();
  };
  Napi::Int32Array h = i32(history, "history"), o = i32(offsets, "historyOffsets");
  if ((int64_t)o.ElementLength() != rows + 1)
    r.range_error("historyOffsets", "must hold rows + 1 = " + std::to_string(rows + 1) + " offsets, got " + std::to_string(o.ElementLength()));
  const int64_t n = (int64_t)h.ElementLength();
  if (o[0] != 0 || o[(size_t)rows] != n)
    r.range_error("historyOffsets", "must start at 0 and end at the history's length (" + std::to_string(n) + ")");
  for (int64_t i = 0; i < rows; ++i)
    if (o[(size_t)i + 1] < o[(size_t)i]) r.range_error("historyOffsets", "must not decrease (at row " + std::to_string(i) + ")");
  out.history.assign(h.Data(), h.Data() + n);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t k = o[(size_t)i]; k < o[(size_t)i + 1]; ++k) {
      const int32_t id = out.history[(size_t)k];
      if (id < 0 || id >= vocab)
        r.range_error("history", "row " + std::to_string(i) + ": id " + std::to_string(id) + " at index " + std::to_string(k) +
                                     " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    out.params[(size_t)i].history = out.history.data() + o[(size_t)i];
    out.params[(size_t)i].history_len = o[(size_t)i + 1] - o[(size_t)i];
  }
  return out;
}

}  // namespace nm::napi
