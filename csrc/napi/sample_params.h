// Reading the samplers' per-row parameters from JavaScript, shared by
// kernels.sampleTokens and the model's sampled decode steps:
//   params: Float64Array [rows, kSampleParamFields]: temperature, topK, topP,
//           minP, repetitionPenalty, u;
//   history, historyOffsets (optional, together): Int32Array ids and
//           Int32Array [rows + 1] offsets, row r's history (for the
//           repetition penalty) at [offsets[r], offsets[r + 1]).
#pragma once
#include <napi.h>

#include <vector>

#include "kernels/sampling.h"
#include "napi/convert.h"

namespace nm::napi {

constexpr int64_t kSampleParamFields = 6;

struct SampleRows {
  std::vector<SampleParams> params;
  std::vector<int32_t> history;  // copied; params[r].history points into it
};

// Every field and id range-checked (TypeError / RangeError naming the
// argument, the row and the field or index).
SampleRows read_sample_rows(const ArgReader& r, const Napi::Value& params, const Napi::Value& history,
                            const Napi::Value& offsets, int64_t rows, int64_t vocab);

}  // namespace nm::napi
