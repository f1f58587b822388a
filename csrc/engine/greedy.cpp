#include "engine/greedy.h"

#include <cmath>
#include <limits>

namespace nm::engine {

void greedy_tokens(const float* logits, int64_t rows, int64_t vocab, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * vocab;
    // The maximum first (a plain reduction), then its first index; a NaN
    // makes the row invalid (every comparison with it is false).
    float best = -std::numeric_limits<float>::infinity();
    bool nan = false;
    for (int64_t i = 0; i < vocab; ++i) {
      best = x[i] > best ? x[i] : best;
      nan |= x[i] != x[i];
    }
    int32_t id = -1;
    if (!nan && best > -std::numeric_limits<float>::infinity())
      for (int64_t i = 0; i < vocab; ++i)
        if (x[i] == best) { id = (int32_t)i; break; }
    out[r] = id;
  }
}

}  // namespace nm::engine
