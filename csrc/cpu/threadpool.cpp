#include "cpu/threadpool.h"

#include <atomic>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>
#include <string>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace nm::cpu {

namespace {
thread_local bool t_in_pool_task = false;
thread_local ThreadPool* t_detached_pool = nullptr;  // the pool whose detached_ call this thread made
thread_local int t_inline_depth = 0;  // begin_inline() calls not yet ended on this thread
thread_local bool t_detach_allowed = false;  // set_detach_allowed
// Whether a call from this thread runs its work here, inline: from inside a
// task (no nested parallelism), or within begin_inline / end_inline.
inline bool run_inline_here() { return t_in_pool_task || t_inline_depth > 0; }

int read_int_file(const std::string& path, int fallback) {
  std::ifstream f(path);
  int v;
  if (f >> v) return v;
  return fallback;
}
}  // namespace

int physical_core_count() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    std::set<std::pair<int, int>> cores;  // (package, core) pairs we may run on
    int logical = 0;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (!CPU_ISSET(c, &set)) continue;
      ++logical;
      std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
      int pkg = read_int_file(base + "physical_package_id", -1);
      int core = read_int_file(base + "core_id", -1);
      if (pkg < 0 || core < 0) { cores.clear(); break; }
      cores.insert({pkg, core});
    }
    if (!cores.empty()) return (int)cores.size();
    if (logical > 0) return logical;
  }
#endif
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}

namespace {
// How long a thread spins on the generation counter (a worker) or on the
// pending count (the caller) before it sleeps on a condition variable.
// Longer than the gaps between the kernel calls of a forward pass, including
// a decode step's serial stretches and the hand-back to JavaScript between
// steps: a worker asleep costs the next call a futex wake, tens to hundreds
// of microseconds in a virtual machine (bench/NOTES.md). A time, not a count
// of pause instructions, whose latency differs 10x between processors.
// NODE_MAMBA_SPIN_US overrides the default of 1 ms (0: sleep at once).
// Returns -1 where it is unset (or unreadable).
int64_t spin_env_ns() {
  static const int64_t ns = [] {
    if (const char* env = std::getenv("NODE_MAMBA_SPIN_US")) {
      char* end = nullptr;
      const long long v = std::strtoll(env, &end, 10);
      if (end != env && v >= 0) return (int64_t)std::min<long long>(v, 10 * 1000 * 1000) * 1000;
    }
    return (int64_t)-1;
  }();
  return ns;
}
inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Until when (now_ns() time) the CPUs count as oversubscribed. Then spinning
// only takes time from whatever else wants the CPUs (other processes), and
// the threads of parallel regions wait for each other behind it
// (bench/NOTES.md: two processes of two threads each on two CPUs): every
// thread sleeps at once instead, as with NODE_MAMBA_SPIN_US=0.
// An explicit NODE_MAMBA_SPIN_US is kept as it is.
//
// The signal is the CPU time of other processes on the CPUs this process
// may run on: the kernel's busy time on those CPUs (/proc/stat: user, nice,
// system, irq and softirq; not idle, I/O wait or a hypervisor's steal) less
// this process's own (getrusage), over windows of kWindowNs that one thread
// at a time measures, while it spins or as it starts a call. Past
// kOthersFraction of the window's CPU time, the CPUs count as oversubscribed
// until two windows from then, renewed while it lasts. Neither this
// process's own threads (JavaScript choosing the next token, the thread that
// runs a step, V8's collector: on two vCPUs they keep the pool's threads
// waiting for a CPU a fifth of the time) nor a virtual machine's vCPU pauses
// count: holding the pool asleep through them cost 8-sequence decode a third
// of its speed on the guest of bench/NOTES.md, and batch 1 a fifth.
std::atomic<int64_t> g_oversubscribed_until{0};
std::atomic<int64_t> g_hold_ns{0};  // the gap rule's last hold (0: none yet)
bool oversubscribed(int64_t t) { return t < g_oversubscribed_until.load(std::memory_order_relaxed); }
constexpr int64_t kWindowNs = 200 * 1000 * 1000;
constexpr double kOthersFraction = 0.25;

// Busy time (ns) of the CPUs in this process's affinity mask, from
// /proc/stat's cpuN lines; -1 where it cannot be read.
int64_t allowed_cpus_busy_ns(int* ncpus) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  FILE* f = std::fopen("/proc/stat", "re");
  if (!f) return -1;
  static const long tick = [] { const long t = ::sysconf(_SC_CLK_TCK); return t > 0 ? t : 100; }();
  char line[512];
  unsigned long long busy = 0;
  int n = 0;
  while (std::fgets(line, sizeof(line), f)) {
    int cpu = -1;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
    if (std::strncmp(line, "cpu", 3) != 0) break;  // the cpu lines come first
    if (std::sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu", &cpu, &user, &nice, &sys, &idle, &iowait, &irq,
                    &softirq) != 8 || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set))
      continue;  // (the first line, "cpu  ...", is the total)
    busy += user + nice + sys + irq + softirq;
    ++n;
  }
  std::fclose(f);
  if (n == 0) return -1;
  *ncpus = n;
  return (int64_t)(busy * (1000000000ull / (unsigned long long)tick));
#else
  (void)ncpus;
  return -1;
#endif
}

// This process's CPU time (all threads), ns; -1 where unknown.
int64_t process_cpu_ns() {
#if defined(__linux__)
  struct rusage u;
  if (::getrusage(RUSAGE_SELF, &u) != 0) return -1;
  return ((int64_t)u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000 + ((int64_t)u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000;
#else
  return -1;
#endif
}

// The window being measured: its start (now_ns() time; -1: none yet, -2: the
// counters cannot be read) and the counters then. One thread at a time
// closes a window (g_window_busy).
std::atomic<int64_t> g_window_t0{-1};
std::atomic<bool> g_window_busy{false};
int64_t g_window_cpu_busy = 0, g_window_self = 0;  // (under g_window_busy)

// A look at the window at time t (now_ns()), closing it once kWindowNs have
// passed. False where the counters cannot be read (the caller falls back
// to the gap rule).
bool note_other_processes(int64_t t) {
  const int64_t t0 = g_window_t0.load(std::memory_order_relaxed);
  if (t0 == -2) return false;
  if (t0 >= 0 && t - t0 < kWindowNs) return true;
  if (g_window_busy.exchange(true, std::memory_order_acquire)) return true;  // another thread closes it
  int ncpus = 0;
  const int64_t busy = allowed_cpus_busy_ns(&ncpus), self = process_cpu_ns();
  if (busy < 0 || self < 0) {
    g_window_t0.store(-2, std::memory_order_relaxed);
  } else {
    const int64_t start = g_window_t0.load(std::memory_order_relaxed);
    if (start >= 0) {
      const double others = (double)(busy - g_window_cpu_busy) - (double)(self - g_window_self);
      if (others > kOthersFraction * (double)ncpus * (double)(t - start))
        g_oversubscribed_until.store(t + 2 * kWindowNs, std::memory_order_relaxed);
    }
    g_window_cpu_busy = busy;
    g_window_self = self;
    g_window_t0.store(t, std::memory_order_relaxed);
  }
  g_window_busy.store(false, std::memory_order_release);
  return g_window_t0.load(std::memory_order_relaxed) != -2;
}

// The fallback (no /proc/stat): a spinning thread that found it had lost its
// CPU mid-spin (kPreemptedGapNs between two looks at the clock, which are a
// few microseconds apart when it runs) holds every thread asleep for a hold
// that starts at kFirstHoldNs and doubles (up to kOversubscribedHoldNs)
// while each gap follows the last hold's end within kRepeatNs.
constexpr int64_t kPreemptedGapNs = 300 * 1000;
constexpr int64_t kFirstHoldNs = 50 * 1000 * 1000;
constexpr int64_t kOversubscribedHoldNs = 1000 * 1000 * 1000;
constexpr int64_t kRepeatNs = 200 * 1000 * 1000;

// A gap at time t: the CPUs count as oversubscribed for the next hold.
// Relaxed atomics: two threads that detect at once may set either's hold.
void hold_after_gap(int64_t t) {
  const int64_t last_end = g_oversubscribed_until.load(std::memory_order_relaxed);
  const int64_t last = g_hold_ns.load(std::memory_order_relaxed);
  const int64_t hold = last > 0 && t - last_end < kRepeatNs ? std::min(2 * last, kOversubscribedHoldNs) : kFirstHoldNs;
  g_hold_ns.store(hold, std::memory_order_relaxed);
  g_oversubscribed_until.store(t + hold, std::memory_order_relaxed);
}

// A caller's look as it hands a call to the workers (a thread that computes
// rarely spins long enough to look there).
void note_other_processes_at_call() {
  if (spin_env_ns() < 0) note_other_processes(now_ns());
}

int64_t spin_ns() {
  if (spin_env_ns() >= 0) return spin_env_ns();
  return oversubscribed(now_ns()) ? 0 : 1000 * 1000;
}
// After a decode step (ThreadPool::linger) the next usually follows once
// JavaScript has chosen a token: ~1 ms with a sampled one at a 50K
// vocabulary, and in a virtual machine waking a worker whose idle vCPU halted
// took several milliseconds (bench/NOTES.md). Longer only then: from
// JavaScript, kernel calls between long stretches of other work keep the
// short spin. NODE_MAMBA_SPIN_US sets this too.
int64_t linger_ns() { return spin_env_ns() >= 0 ? spin_env_ns() : 5 * 1000 * 1000; }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Spins until done(), or until spin_ns() have passed and so has *until
// (when given: a deadline in now_ns() time that may move while this spins);
// true if done().
template <class Done>
bool spin_until(const Done& done, const std::atomic<int64_t>* until = nullptr) {
  if (done()) return true;
  const int64_t spin = spin_ns();
  if (spin == 0) return false;
  int64_t last = now_ns();
  const int64_t deadline = last + spin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      if (done()) return true;
    }
    const int64_t t = now_ns();
    if (spin_env_ns() < 0 && !note_other_processes(t) && t - last > kPreemptedGapNs) {
      hold_after_gap(t);
      return done();
    }
    last = t;
    if (t > deadline && (!until || (t > until->load(std::memory_order_relaxed) || oversubscribed(t)))) return done();
  }
}
// run_recomputable: how long past the end of its own ranges the caller
// waits for a range a worker holds before computing it again itself. A
// worker that is merely late finishes well within it (a decode call's
// ranges take microseconds); one the machine preempted (a kernel thread or
// another process on its core: hundreds of microseconds to milliseconds in
// the virtual machines of bench/NOTES.md) does not.
constexpr int64_t kStealAfterNs = 30 * 1000;

// A test hook (NODE_MAMBA_TEST_STALL_US="every,us"): in every `every`-th
// run_recomputable call the caller leaves the first range to a worker
// (waiting up to 200 ms for one to take it), and that worker sleeps `us`
// microseconds holding it, as a preempted worker would; the caller then
// takes it back. Unset: never.
struct TestStall {
  int64_t every = 0, us = 0;
  TestStall() {
    if (const char* env = std::getenv("NODE_MAMBA_TEST_STALL_US")) {
      long long e = 0, u = 0;
      if (std::sscanf(env, "%lld,%lld", &e, &u) == 2 && e > 0 && u > 0) every = e, us = std::min<long long>(u, 1000000);
    }
  }
};
const TestStall& test_stall() {
  static const TestStall cfg;
  return cfg;
}

// A run_recomputable range: not taken, or taken by a worker that has not
// marked it yet (kOpen); the caller's; a worker's, then staged (kWorkerDone);
// taken back by the caller (kStolen).
enum RangeState : uint8_t { kOpen = 0, kCaller, kWorker, kWorkerDone, kStolen };

// Range k of `ends` (range k ends at ends[k]) starts where range k - 1 ends.
int64_t range_begin(const std::vector<int64_t>& ends, size_t k) { return k == 0 ? 0 : ends[k - 1]; }

// Every range of `ends` in order on the calling thread: f(b, e).
template <class F>
void each_range_inline(const std::vector<int64_t>& ends, F&& f) {
  for (size_t k = 0; k < ends.size(); ++k) f(range_begin(ends, k), ends[k]);
}
}  // namespace

// One run_ranges / run_recomputable call. Shared by the caller and the
// workers that join it: a worker keeps it after the call has returned, so
// that what it touches then (the range counter, a recomputable work) is
// still there.
struct ThreadPool::RangeCall {
  std::vector<int64_t> ends;
  std::atomic<int64_t> next{0};  // the next range to take
  // run_ranges: workers that may call fn (counted before they take a
  // range: the caller waits for them, and fn is the caller's)
  std::atomic<int> inflight{0};
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  std::shared_ptr<RecomputableWork> work;          // run_recomputable
  std::unique_ptr<std::atomic<uint8_t>[]> state;   // run_recomputable: RangeState per range
  bool test_stall = false;  // the worker that takes range 0 stalls (TestStall)
  std::mutex error_mu;
  std::exception_ptr error;
  int64_t begin(size_t k) const { return range_begin(ends, k); }
};

ThreadPool::ThreadPool(int threads) { start(threads); }
ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int threads) {
  size_ = std::max(1, threads);
  quit_.store(false);
  // New workers must not mistake the last finished run for pending work.
  const uint64_t current = generation_.load();
  for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i, current] { worker_main(i, current); });
}

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    quit_.store(true);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::resize(int threads) {
  std::lock_guard<std::mutex> run_lk(run_mu_);
  if (std::max(1, threads) == size_) return;
  stop();
  start(threads);
}

void ThreadPool::prefetch(const void* p, size_t bytes) {
  // (With one thread no worker takes it. Every race with a worker taking a
  // chunk is benign: at worst a chunk of the old or new range is skipped or
  // prefetched.)
  pf_end_.store(0, std::memory_order_relaxed);  // no chunk of the old range is taken past this
  if (!p || bytes == 0) return;
  const uintptr_t b = reinterpret_cast<uintptr_t>(p);
  pf_next_.store(b, std::memory_order_relaxed);
  pf_end_.store(b + bytes, std::memory_order_release);
}

// One chunk of the hinted range, if any is left (a prefetch never faults, so
// a chunk read across a replaced hint only costs bandwidth).
void ThreadPool::prefetch_some() {
  constexpr uintptr_t kChunk = 1024;
  const uintptr_t end = pf_end_.load(std::memory_order_acquire);
  if (pf_next_.load(std::memory_order_relaxed) >= end) return;
  const uintptr_t c = pf_next_.fetch_add(kChunk, std::memory_order_relaxed);
  if (c >= end) return;
  const char* p = reinterpret_cast<const char*>(c);
  for (uintptr_t o = 0; o < kChunk && c + o < end; o += 64) __builtin_prefetch(p + o, 0, 2);
}

void ThreadPool::linger() { linger_until_.store(now_ns() + linger_ns(), std::memory_order_relaxed); }

void ThreadPool::worker_main(int ith, uint64_t seen) {
  for (;;) {
    // Wait for a new generation: spin first (prefetching any hinted range), then sleep.
    spin_until([&] {
      if (generation_.load(std::memory_order_acquire) != seen || quit_.load(std::memory_order_relaxed)) return true;
      prefetch_some();
      return false;
    }, &linger_until_);
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      cv_work_.wait(lk, [&] { return quit_.load() || generation_.load(std::memory_order_acquire) != seen; });
      --sleepers_;
      g = generation_.load(std::memory_order_acquire);
    }
    if (quit_.load()) return;
    int nth;
    const std::function<void(int, int)>* fn;
    std::shared_ptr<RangeCall> rc;
    {
      // The caller holds slot_mu_ for a few stores while it publishes (this
      // worker saw the new generation inside them): blocking on it would put
      // the worker to sleep on a futex for the caller's unlock to wake, some
      // microseconds in a virtual machine for a call that may take fewer.
      while (!slot_mu_.try_lock()) cpu_relax();
      std::lock_guard<std::mutex> lk(slot_mu_, std::adopt_lock);
      seen = generation_.load(std::memory_order_acquire);
      nth = nth_;
      fn = fn_;
      rc = ranges_;
      // (under the lock: quiesce() counts a worker that holds such a call
      // from before the call could have returned)
      if (rc && rc->work) late_workers_.fetch_add(1, std::memory_order_seq_cst);
    }
    if (rc) {
      // Counted before taking a range, so that a caller that finds none
      // left also finds this worker (seq_cst: next's and inflight's orders agree).
      if (!rc->work) rc->inflight.fetch_add(1, std::memory_order_seq_cst);
      t_in_pool_task = true;
      try {
        take_ranges(*rc, false);
      } catch (...) {
        std::lock_guard<std::mutex> lk(rc->error_mu);
        if (!rc->error) rc->error = std::current_exception();
      }
      t_in_pool_task = false;
      if (rc->work) {
        rc.reset();
        late_workers_.fetch_sub(1, std::memory_order_seq_cst);
      } else if (rc->inflight.fetch_sub(1, std::memory_order_seq_cst) == 1) {
        wake_caller();
      }
      continue;
    }
    if (ith < nth) {
      t_in_pool_task = true;
      try {
        (*fn)(ith, nth);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
      t_in_pool_task = false;
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1) wake_caller();
    }
  }
}

// A worker that finished a call's last task: wakes its caller if it sleeps
// (caller_waiting_ in threadpool.h: the store and this load are ordered
// against the done counts' decrement and the caller's last look at them).
void ThreadPool::wake_caller() {
  if (!caller_waiting_.load(std::memory_order_seq_cst)) return;
  std::lock_guard<std::mutex> lk(mu_);
  cv_done_.notify_one();
}

void ThreadPool::run(int max_tasks, const std::function<void(int, int)>& fn) {
  int nth = std::max(1, std::min(max_tasks, size_));
  if (nth == 1 || run_inline_here()) {
    for (int i = 0; i < nth; ++i) fn(i, nth);
    return;
  }
  finish_detached();
  std::lock_guard<std::mutex> run_lk(run_mu_);
  note_other_processes_at_call();
  nth = std::max(1, std::min(max_tasks, size_));
  error_ = nullptr;
  pending_.store(nth - 1, std::memory_order_relaxed);
  publish(&fn, nth, nullptr);
  std::exception_ptr local;
  t_in_pool_task = true;
  try {
    fn(0, nth);
  } catch (...) {
    local = std::current_exception();
  }
  t_in_pool_task = false;
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_waiting_.store(true, std::memory_order_seq_cst);
    cv_done_.wait(lk, [&] { return pending_.load(std::memory_order_seq_cst) == 0; });
    caller_waiting_.store(false, std::memory_order_relaxed);
  }
  // (fn_ is left as it is: a worker past nth that picks this call up late
  // reads it but never calls it, and the next publish replaces it)
  if (!local) {
    std::lock_guard<std::mutex> lk(error_mu_);
    local = error_;
    error_ = nullptr;
  }
  if (local) std::rethrow_exception(local);
}

void ThreadPool::publish(const std::function<void(int, int)>* fn, int nth, std::shared_ptr<RangeCall> ranges) {
  {
    std::lock_guard<std::mutex> lk(slot_mu_);
    fn_ = fn;
    nth_ = nth;
    ranges_ = std::move(ranges);  // the previous call's object lives on in the workers that hold it
    generation_.fetch_add(1, std::memory_order_release);
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (sleepers_ > 0) cv_work_.notify_all();
}

// Takes ranges of c until none is left. A worker computes a recomputable
// range into the work's staging and marks it done unless the caller took it
// back meanwhile; an exception there leaves it to the caller.
void ThreadPool::take_ranges(RangeCall& c, bool caller) {
  const int64_t count = (int64_t)c.ends.size();
  for (;;) {
    const int64_t k = c.next.fetch_add(1, std::memory_order_seq_cst);
    if (k >= count) return;
    const int64_t b = c.begin((size_t)k), e = c.ends[(size_t)k];
    if (!c.work) {
      (*c.fn)(b, e);
    } else if (caller) {
      c.state[k].store(kCaller, std::memory_order_relaxed);
      c.work->compute(b, e, true);
    } else {
      uint8_t open = kOpen;
      if (!c.state[k].compare_exchange_strong(open, kWorker, std::memory_order_acq_rel)) continue;  // taken back
      if (c.test_stall && k == 0) std::this_thread::sleep_for(std::chrono::microseconds(test_stall().us));
      try {
        c.work->compute(b, e, false);
      } catch (...) {
        continue;  // still kWorker: the caller computes it
      }
      uint8_t mine = kWorker;
      c.state[k].compare_exchange_strong(mine, kWorkerDone, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::run_ranges(std::vector<int64_t> ends, const std::function<void(int64_t, int64_t)>& fn) {
  if (ends.empty()) return;
  if (ends.size() == 1 || size_ == 1 || run_inline_here()) return each_range_inline(ends, fn);
  const int64_t count = (int64_t)ends.size();
  finish_detached();
  std::lock_guard<std::mutex> run_lk(run_mu_);
  note_other_processes_at_call();
  auto c = std::make_shared<RangeCall>();
  c->ends = std::move(ends);
  c->fn = &fn;
  publish(nullptr, 0, c);
  std::exception_ptr local;
  t_in_pool_task = true;
  try {
    take_ranges(*c, true);
  } catch (...) {
    local = std::current_exception();
    c->next.store(count, std::memory_order_relaxed);  // no further ranges
  }
  t_in_pool_task = false;
  // Workers that may still be in fn (a worker that joins later finds no range).
  if (!spin_until([&] { return c->inflight.load(std::memory_order_seq_cst) == 0; })) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_waiting_.store(true, std::memory_order_seq_cst);
    cv_done_.wait(lk, [&] { return c->inflight.load(std::memory_order_seq_cst) == 0; });
    caller_waiting_.store(false, std::memory_order_relaxed);
  }
  if (!local) {
    std::lock_guard<std::mutex> lk(c->error_mu);
    local = c->error;
  }
  if (local) std::rethrow_exception(local);
}

void ThreadPool::run_recomputable(std::vector<int64_t> ends, const std::shared_ptr<RecomputableWork>& work) {
  if (ends.empty()) return;
  const size_t count = ends.size();
  if (count == 1 || size_ == 1 || run_inline_here())
    return each_range_inline(ends, [&](int64_t b, int64_t e) { work->compute(b, e, true); });
  const bool detach = t_detach_allowed;
  finish_detached();
  std::unique_lock<std::mutex> run_lk(run_mu_);
  note_other_processes_at_call();
  auto c = std::make_shared<RangeCall>();
  c->ends = std::move(ends);
  c->work = work;
  c->state.reset(new std::atomic<uint8_t>[count]);
  for (size_t k = 0; k < count; ++k) c->state[k].store(kOpen, std::memory_order_relaxed);
  static std::atomic<int64_t> calls{0};
  c->test_stall = test_stall().every > 0 && calls.fetch_add(1, std::memory_order_relaxed) % test_stall().every == 0;
  publish(nullptr, 0, c);
  if (detach) {
    // The workers take the ranges while this thread goes on; it keeps the
    // pool (run_mu_) until finish_detached.
    detached_ = c;
    detached_lock_ = std::move(run_lk);
    detached_calls_.fetch_add(1, std::memory_order_relaxed);
    t_detached_pool = this;
    return;
  }
  finish_recomputable(*c);
}

void ThreadPool::finish_detached() {
  if (t_detached_pool != this) return;
  t_detached_pool = nullptr;
  std::shared_ptr<RangeCall> c = std::move(detached_);
  detached_.reset();
  std::unique_lock<std::mutex> run_lk = std::move(detached_lock_);
  finish_recomputable(*c);
}

// The caller's part of a run_recomputable call from the publish on: the
// ranges left, the wait for the workers' (taking back stalled ones) and the
// commit of their staged results.
void ThreadPool::finish_recomputable(RangeCall& call) {
  RangeCall* c = &call;
  const size_t count = c->ends.size();
  if (c->test_stall) {
    const int64_t until = now_ns() + 200 * 1000 * 1000;
    while (c->next.load(std::memory_order_acquire) == 0 && now_ns() < until) std::this_thread::yield();
  }
  t_in_pool_task = true;
  try {
    take_ranges(*c, true);
  } catch (...) {
    t_in_pool_task = false;
    throw;  // (workers' late results stay in the work's staging)
  }
  // Every range is taken now. Wait for the workers' ranges; past
  // kStealAfterNs compute the ones still held again, here.
  const int64_t t0 = now_ns();
  bool steal = false;
  for (int spins = 0;; ++spins) {
    bool held = false;
    for (size_t k = 0; k < count; ++k) {
      uint8_t st = c->state[k].load(std::memory_order_acquire);
      if (st != kOpen && st != kWorker) continue;
      held = true;
      if (steal && c->state[k].compare_exchange_strong(st, kStolen, std::memory_order_acq_rel)) {
        recomputed_.fetch_add(1, std::memory_order_relaxed);
        try {
          c->work->compute(c->begin(k), c->ends[k], true);
        } catch (...) {
          t_in_pool_task = false;
          throw;
        }
      }
    }
    if (!held) break;
    cpu_relax();
    if (!steal && (spins & 63) == 63) steal = now_ns() - t0 > kStealAfterNs;
  }
  t_in_pool_task = false;
  for (size_t k = 0; k < count; ++k)
    if (c->state[k].load(std::memory_order_acquire) == kWorkerDone) c->work->commit(c->begin(k), c->ends[k]);
}

void ThreadPool::quiesce() {
  while (late_workers_.load(std::memory_order_seq_cst) > 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
}

namespace {
thread_local bool t_recompute_allowed = false;
}  // namespace
bool recompute_allowed() { return t_recompute_allowed; }
void set_recompute_allowed(bool on) { t_recompute_allowed = on; }
void begin_inline() { ++t_inline_depth; }
void end_inline() { if (t_inline_depth > 0) --t_inline_depth; }
void set_detach_allowed(bool on) { t_detach_allowed = on; }
bool owns_detached() { return t_detached_pool != nullptr; }

ThreadPool& pool() {
  static ThreadPool* p = [] {
    int n = physical_core_count();
    if (const char* env = std::getenv("NODE_MAMBA_THREADS")) {
      int v = std::atoi(env);
      if (v > 0) n = v;
    }
    return new ThreadPool(n);  // never destroyed: workers may outlive static teardown order
  }();
  return *p;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t max_tasks = std::max<int64_t>(1, n / grain);
  pool().run((int)std::min<int64_t>(max_tasks, 1 << 20), [&](int ith, int nth) {
    int64_t begin = n * ith / nth, end = n * (ith + 1) / nth;
    if (begin < end) fn(begin, end);
  });
}

void parallel_for_dynamic(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run_ranges(dynamic_ranges(n, chunk), fn);
}

std::vector<int64_t> dynamic_ranges(int64_t n, int64_t chunk) {
  std::vector<int64_t> ends;
  if (n <= 0) return ends;
  chunk = std::max<int64_t>(1, chunk);
  ends.reserve((size_t)((n + chunk - 1) / chunk));
  for (int64_t e = chunk; ; e += chunk) {
    ends.push_back(std::min(n, e));
    if (e >= n) break;
  }
  return ends;
}

int64_t balanced_chunk(int64_t n, int64_t grain) {
  return std::max<int64_t>(std::max<int64_t>(1, grain), n / (4 * (int64_t)pool().size()));
}

void parallel_for_guided(int64_t n, int64_t min_chunk, int64_t align, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run_ranges(guided_ranges(n, min_chunk, align), fn);
}

std::vector<int64_t> guided_ranges(int64_t n, int64_t min_chunk, int64_t align) {
  std::vector<int64_t> ends;
  if (n <= 0) return ends;
  align = std::max<int64_t>(1, align);
  min_chunk = std::max<int64_t>(1, (min_chunk + align - 1) / align * align);
  // Each take a share of what is left, as when the threads took them in
  // turn (the sizes depend only on where a take starts).
  const int64_t nth = std::max<int64_t>(1, std::min<int64_t>(pool().size(), (n + min_chunk - 1) / min_chunk));
  for (int64_t b = 0; b < n;) {
    int64_t take = std::max(min_chunk, (n - b) / nth);
    take = (take + align - 1) / align * align;
    b = std::min(n, b + take);
    ends.push_back(b);
  }
  return ends;
}

}  // namespace nm::cpu
