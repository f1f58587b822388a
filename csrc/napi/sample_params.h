// Reading the samplers' per-row parameters from JavaScript (a Float64Array
// of rows x kSampleParamFields: temperature, topK, topP, minP, u), shared by
// kernels.sampleTokens and the model's sampled decode steps.
#pragma once
#include <napi.h>

#include <vector>

#include "kernels/sampling.h"
#include "napi/convert.h"

namespace nm::napi {

constexpr int64_t kSampleParamFields = 5;

// The rows' parameters, each field range-checked (TypeError / RangeError
// naming `name`, the row and the field).
std::vector<SampleParams> read_sample_params(const ArgReader& r, const Napi::Value& v, const char* name, int64_t rows);

}  // namespace nm::napi
