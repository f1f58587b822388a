// The native sampler's rows on the pool, each with its thread's scratch
// rows; the row algorithm is per level (kernels/sampling_impl.h).
#include "kernels/sampling.h"

#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void sample_row(const float* logits, int64_t V, const SampleParams& o, const SampleScratch& s, int32_t* out))

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
