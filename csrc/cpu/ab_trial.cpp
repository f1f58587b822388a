#include "cpu/ab_trial.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>

namespace nm::cpu {

namespace {

constexpr int64_t kWarmupSteps = 40;       // page faults, first-call allocations
constexpr size_t kMaxSteps = 1 << 16;      // per variant; older times are overwritten

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Trial {
  int64_t block = 0;
  std::mutex mu;
  int64_t steps = 0;  // steps begun
  std::vector<int64_t> times[2];
  size_t next[2] = {0, 0};
  std::atomic<bool> b{false};
  Trial() {
    if (const char* env = std::getenv("NODE_MAMBA_AB_TRIAL")) {
      const long long v = std::atoll(env);
      if (v > 0) block = v;
    }
  }
};

Trial& trial() {
  static Trial* t = new Trial();  // never destroyed: steps may end during static teardown
  return *t;
}

thread_local int t_depth = 0;

}  // namespace

bool ab_trial_b() { return trial().b.load(std::memory_order_relaxed); }

AbTrialStep::AbTrialStep() {
  Trial& t = trial();
  if (t.block == 0 || t_depth++ > 0) return;
  std::lock_guard<std::mutex> lk(t.mu);
  t.b.store((t.steps / t.block) % 2 == 1, std::memory_order_relaxed);
  ++t.steps;
  t0_ = now_ns();
}

AbTrialStep::~AbTrialStep() {
  Trial& t = trial();
  if (t.block == 0) return;
  --t_depth;
  if (t0_ < 0) return;
  const int64_t dt = now_ns() - t0_;
  std::lock_guard<std::mutex> lk(t.mu);
  if (t.steps <= kWarmupSteps) return;
  const int v = t.b.load(std::memory_order_relaxed) ? 1 : 0;
  std::vector<int64_t>& times = t.times[v];
  if (times.size() < kMaxSteps) times.push_back(dt);
  else times[t.next[v]++ % kMaxSteps] = dt;
}

AbTrialTimes ab_trial_times() {
  Trial& t = trial();
  AbTrialTimes r;
  r.block_steps = t.block;
  r.warmup_steps = kWarmupSteps;
  std::lock_guard<std::mutex> lk(t.mu);
  r.a_ns = t.times[0];
  r.b_ns = t.times[1];
  return r;
}

}  // namespace nm::cpu
