#include "engine/greedy.h"

#include <limits>

#include "cpu/threadpool.h"

namespace nm::engine {

namespace {

constexpr int kLanes = 16;  // independent running maxima (vectorizable, no dependency chain)

int32_t greedy_row(const float* x, int64_t vocab) {
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
  if (any_nan || !(best > kNegInf)) return -1;
  for (int64_t k = 0; k < vocab; ++k)
    if (x[k] == best) return (int32_t)k;
  return -1;  // (unreachable: best is one of the values)
}

}  // namespace

void greedy_tokens(const float* logits, int64_t rows, int64_t vocab, int32_t* out) {
  // Rows on the pool: at 8 sequences and a 50K vocabulary the serial scan
  // was a few percent of a step, the other threads idle.
  cpu::parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) out[r] = greedy_row(logits + r * vocab, vocab);
  });
}

}  // namespace nm::engine
