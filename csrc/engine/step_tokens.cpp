#include "engine/step_tokens.h"

#include <stdexcept>
#include <string>

#include "cpu/ab_trial.h"
#include "engine/forward.h"
#include "engine/greedy.h"

namespace nm::engine {

void check_live_slots(const Model& m, const int32_t* slots, int64_t n) {
  for (int64_t b = 0; b < n; ++b)
    if (!m.slot_live(slots[b]))
      throw std::out_of_range("node-mamba: sequence slot " + std::to_string(slots[b]) + " is not live");
}

void step_tokens(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch, const SampleParams* params,
                 std::vector<float>& logits, int32_t* ids) {
  if (batch <= 0) return;
  ComputeLock lk(m);
  step_tokens_locked(m, slots, tokens, batch, params, logits, ids);
}

void step_tokens_locked(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch,
                        const SampleParams* params, std::vector<float>& logits, int32_t* ids) {
  if (batch <= 0) return;
  check_live_slots(m, slots, batch);
  const int64_t V = m.config().vocab;
  if (logits.size() < (size_t)(batch * V)) logits.resize((size_t)(batch * V));
  cpu::AbTrialStep trial_step;  // (the token choice counts in the step's time)
  decode_step(m, slots, tokens, batch, logits.data());
  if (params) sample_tokens(logits.data(), batch, V, V, params, ids);
  else greedy_tokens(logits.data(), batch, V, ids);
}

int32_t prefill_token(Model& m, int32_t slot, const int32_t* tokens, int64_t n, const SampleParams& params) {
  ComputeLock lk(m);
  check_live_slots(m, &slot, 1);
  const int64_t V = m.config().vocab;
  std::vector<float> logits((size_t)V);
  prefill(m, slot, tokens, n, LogitsMode::Last, logits.data());
  int32_t id = 0;
  sample_tokens(logits.data(), 1, V, V, &params, &id);
  return id;
}

}  // namespace nm::engine
