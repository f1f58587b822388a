// The native sampler's rows on the pool, each with its thread's scratch
// rows; the row algorithm is per level (kernels/sampling_impl.h).
#include "kernels/sampling.h"

#include <limits>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void sample_row(const float* logits, int64_t V, const SampleParams& o, const SampleScratch& s, int32_t* out))

int32_t greedy_token(const float* x, int64_t vocab) {
  constexpr int kLanes = 16;  // independent running maxima (vectorizable, no dependency chain)
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  // The maximum first (a plain reduction over kLanes running maxima), then
  // its first index; a NaN makes the row invalid (every comparison with it
  // is false).
  float m[kLanes];
  int nan[kLanes];
  for (int j = 0; j < kLanes; ++j) m[j] = kNegInf, nan[j] = 0;
  int64_t i = 0;
  for (; i + kLanes <= vocab; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float v = x[i + j];
      m[j] = v > m[j] ? v : m[j];
      nan[j] |= v != v;
    }
  for (; i < vocab; ++i) {
    m[0] = x[i] > m[0] ? x[i] : m[0];
    nan[0] |= x[i] != x[i];
  }
  float best = kNegInf;
  int any_nan = 0;
  for (int j = 0; j < kLanes; ++j) best = m[j] > best ? m[j] : best, any_nan |= nan[j];
  if (any_nan) return kSampleNaN;
  if (!(best > kNegInf)) return kSampleNoFinite;
  for (int64_t k = 0; k < vocab; ++k)
    if (x[k] == best) return (int32_t)k;
  return kSampleNaN;  // (unreachable: best is one of the values)
}

namespace {

// Rows reused from call to call, per thread. hist and seen stay all zero
// between calls (top-p and the penalty clear what they touched).
SampleScratch scratch_for(int64_t V) {
  thread_local std::vector<double> x, p, e, vals, hist;
  thread_local std::vector<uint8_t> seen;
  if ((int64_t)x.size() < V) {
    x.resize((size_t)V);
    p.resize((size_t)V);
    e.resize((size_t)V);
    vals.resize((size_t)V);
    seen.resize((size_t)V, 0);
  }
  if (hist.empty()) hist.assign((size_t)kSampleBuckets, 0.0);
  return SampleScratch{x.data(), p.data(), e.data(), vals.data(), hist.data(), seen.data()};
}

int32_t sample_one(const float* logits, int64_t V, const SampleParams& o) {
  if (o.temperature == 0 && (o.repetition_penalty == 1 || !o.history || o.history_len == 0)) return greedy_token(logits, V);
  int32_t id = 0;
  NM_ISA_CALL(sample_row, logits, V, o, scratch_for(V), &id);
  return id;
}

}  // namespace

void sample_tokens(const float* logits, int64_t rows, int64_t vocab, int64_t stride, const SampleParams* params,
                   int32_t* out) {
  cpu::parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) out[r] = sample_one(logits + r * stride, vocab, params[r]);
  });
}

}  // namespace nm
