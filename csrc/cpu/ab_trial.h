// A/B trials of a code change inside one process, for machines whose speed
// drifts by more than the change between two runs minutes apart (the VMs of
// bench/NOTES.md): decode steps alternate between variant A and variant B in
// blocks of a few steps, and each variant's step times are kept apart, so
// both see the same phases of the machine (bench/ab_trial.js).
//
// NODE_MAMBA_AB_TRIAL=<steps per block> turns it on (read once); unset, every
// step is A and nothing is timed. The code under trial asks ab_trial_b()
// where it would choose between the two (a developer's temporary edit); with
// no such edit both variants run the same code, and the trial measures the
// method's own noise (an A/A trial). Steps are counted process-wide: trial
// one model stepping at a time.
#pragma once
#include <cstdint>
#include <vector>

namespace nm::cpu {

// Whether the decode step running now is variant B.
bool ab_trial_b();

// Brackets one decode step (its token choice included) on the stepping
// thread; nested brackets count once. A no-op unless the trial is on.
class AbTrialStep {
 public:
  AbTrialStep();
  ~AbTrialStep();
  AbTrialStep(const AbTrialStep&) = delete;
  AbTrialStep& operator=(const AbTrialStep&) = delete;

 private:
  int64_t t0_ = -1;  // start (ns), or -1: not the outermost bracket / off
};

struct AbTrialTimes {
  int64_t block_steps = 0;           // 0: the trial is off
  int64_t warmup_steps = 0;          // first steps not recorded
  std::vector<int64_t> a_ns, b_ns;   // recorded step times (at most the last 65536 of each)
};
AbTrialTimes ab_trial_times();

}  // namespace nm::cpu
