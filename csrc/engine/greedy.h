// Greedy decoding's choice made in native code: the most likely next token
// of each row of logits, so that a greedy step hands JavaScript B token ids
// instead of B x vocab floats (lib's Sequence.stepGreedy).
#pragma once
#include <cstdint>

namespace nm::engine {

// out[r] = the first index of the maximum of logits[r, 0 .. vocab) (ties to
// the lowest id, as lib/generate/sampling.ts argmax), or -1 where the row
// holds a NaN or no value above -Infinity (the caller reports it).
void greedy_tokens(const float* logits, int64_t rows, int64_t vocab, int32_t* out);

}  // namespace nm::engine
