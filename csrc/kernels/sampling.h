// Choosing each row's next token from its logits in native code, with the
// semantics of lib/generate/sampling.ts sampleToken (Hugging Face's order:
// temperature -> top-k -> top-p -> min-p -> sample; temperature 0 is the
// argmax, ties to the lowest id), so that a decode step can return token ids
// instead of handing JavaScript B x vocab floats per step.
//
// The arithmetic is sampleToken's, in float64 and in the same order, except
// two things: exp is the library's own (simd_exp_f64.h: within ~1 ulp, the
// same bits at every level; JavaScript's Math.exp may differ in the last
// bit) and the sums of the softmax terms are taken in vector lanes. So the
// probabilities agree with sampleToken's to ~1e-15 relative, and a draw
// differs only where u falls that close to a boundary between two tokens.
// The uniform draw u comes from the caller (lib/generate/rng.ts), one per
// token as sampleToken takes it, so that a seed gives the same generation
// either way.
// The repetition penalty (HF's, as sampleToken applies it: each distinct id
// of the row's history once, a logit > 0 divided by it and one <= 0
// multiplied) comes first, on the float64 logits, before the temperature.
#pragma once
#include <cstdint>

namespace nm {

struct SampleParams {
  double temperature = 1;          // >= 0; 0: the argmax
  int64_t top_k = 0;               // >= 0; 0: off
  double top_p = 1;                // (0, 1]; 1: off
  double min_p = 0;                // [0, 1]; 0: off
  double repetition_penalty = 1;   // > 0; 1: off
  double u = 0;                    // the uniform draw, [0, 1)
  const int32_t* history = nullptr;  // token ids in [0, vocab) (repeats allowed), for the penalty
  int64_t history_len = 0;
};

// What sample_tokens writes for a row it cannot sample from.
constexpr int32_t kSampleNaN = -1;       // a logit is NaN
constexpr int32_t kSampleNoFinite = -2;  // every logit is -Infinity

// Rows of a row's length that the sampler works in (kernels/sampling.cpp
// keeps them per thread; hist: kSampleBuckets zeros between calls).
struct SampleScratch {
  double* x;
  double* p;
  double* e;
  double* vals;
  double* hist;
  uint8_t* seen;  // vocab bytes, all zero between calls (the penalty's distinct ids)
};
constexpr int64_t kSampleBucketShift = 16;  // top-p's buckets: a float64's high word >> this
constexpr int64_t kSampleBuckets = int64_t(1) << (31 - kSampleBucketShift);

// The first index of the maximum of logits[0 .. vocab) (ties to the lowest
// id), or kSampleNaN / kSampleNoFinite: what sampling at temperature 0
// without a repetition penalty draws, read in float32 (the float64 values
// the sampler works in order as their floats do) in one vectorizable pass.
int32_t greedy_token(const float* logits, int64_t vocab);

// out[r] = the token drawn from logits[r · stride .. + vocab) with params[r]
// (or kSampleNaN / kSampleNoFinite); greedy_token's where a row's
// temperature is 0 and no repetition penalty applies. Rows run on the
// global pool. The caller has checked the parameters' ranges (the N-API
// bindings do).
void sample_tokens(const float* logits, int64_t rows, int64_t vocab, int64_t stride, const SampleParams* params,
                   int32_t* out);

}  // namespace nm
