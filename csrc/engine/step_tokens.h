// Decode steps and prefills that hand back token ids instead of logits: the
// logits stay in a native buffer the caller reuses between calls (no fresh
// pages, nothing for V8 to collect), and each row's token is chosen
// greedily (greedy.h) or drawn with its sampling parameters
// (kernels/sampling.h). Used by the binding's step / prefill with 'greedy'
// or 'sample' and by the chained steps (napi/step_chain.h).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/model.h"
#include "kernels/sampling.h"

namespace nm::engine {

// Throws std::out_of_range naming the first of slots[0 .. n) that is not a
// live sequence slot.
void check_live_slots(const Model& m, const int32_t* slots, int64_t n);

// One decode step of `batch` rows (slots[b] fed tokens[b]) under the model's
// compute lock; ids[b] = row b's next token: the greedy choice where params
// is null (-1: a NaN or no finite logit), else drawn with params[b] (-1: a
// NaN, -2: no finite logit). logits is resized to batch x vocab as needed.
void step_tokens(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch, const SampleParams* params,
                 std::vector<float>& logits, int32_t* ids);
// The same, for a caller that holds the model's compute lock (ComputeLock).
void step_tokens_locked(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch,
                        const SampleParams* params, std::vector<float>& logits, int32_t* ids);

// A prefill of n tokens into `slot` under the compute lock, then the token
// drawn from the last token's logits with params (as step_tokens draws it).
int32_t prefill_token(Model& m, int32_t slot, const int32_t* tokens, int64_t n, const SampleParams& params);

}  // namespace nm::engine
