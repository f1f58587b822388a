// Whole forward passes of a Model, on the CPU kernels (csrc/kernels/).
// Callers hold the model's compute mutex and have validated token ids and
// slots (napi/model_binding.cpp).
#pragma once
#include <cstdint>

#include "engine/model.h"

namespace nm::engine {

enum class LogitsMode { None, Last, All };

// Runs `n` tokens of one sequence through the model, starting from (and
// updating) the recurrent state in `slot`. Long inputs are processed in
// chunks of kPrefillChunk tokens carrying the state. Writes logits for the
// last token ([vocab]) or every token ([n, vocab]) to `logits`.
void prefill(Model& m, int32_t slot, const int32_t* tokens, int64_t n, LogitsMode mode, float* logits);

// One decode step for `batch` sequences at once (one new token each):
// weights are read once for all of them. slots must be distinct and live.
// Writes logits [batch, vocab].
void decode_step(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch, float* logits);

constexpr int64_t kPrefillChunk = 512;

}  // namespace nm::engine
