#include "cpu/threadpool.h"

#include <atomic>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif

namespace nm::cpu {

namespace {
thread_local bool t_in_pool_task = false;

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
int64_t spin_ns() { return spin_env_ns() >= 0 ? spin_env_ns() : 1000 * 1000; }
// After a decode step (ThreadPool::linger) the next usually follows once
// JavaScript has chosen a token: ~1 ms with a sampled one at a 50K
// vocabulary, and in a virtual machine waking a worker whose idle vCPU halted
// took several milliseconds (bench/NOTES.md). Longer only then: from
// JavaScript, kernel calls between long stretches of other work keep the
// short spin. NODE_MAMBA_SPIN_US sets this too.
int64_t linger_ns() { return spin_env_ns() >= 0 ? spin_env_ns() : 5 * 1000 * 1000; }

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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
  const int64_t deadline = now_ns() + spin_ns();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      if (done()) return true;
    }
    const int64_t t = now_ns();
    if (t > deadline && (!until || t > until->load(std::memory_order_relaxed))) return done();
  }
}
}  // namespace

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
    seen = g;
    const int nth = nth_;
    const std::function<void(int, int)>* fn = fn_;
    if (ith < nth) {
      t_in_pool_task = true;
      try {
        (*fn)(ith, nth);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
      t_in_pool_task = false;
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        if (caller_waiting_) cv_done_.notify_one();
      }
    }
  }
}

void ThreadPool::run(int max_tasks, const std::function<void(int, int)>& fn) {
  int nth = std::max(1, std::min(max_tasks, size_));
  if (nth == 1 || t_in_pool_task) {
    for (int i = 0; i < nth; ++i) fn(i, nth);
    return;
  }
  std::lock_guard<std::mutex> run_lk(run_mu_);
  nth = std::max(1, std::min(max_tasks, size_));
  fn_ = &fn;
  nth_ = nth;
  error_ = nullptr;
  pending_.store(nth - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes fn_, nth_, pending_
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (sleepers_ > 0) cv_work_.notify_all();
  }
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
    caller_waiting_ = true;
    cv_done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    caller_waiting_ = false;
  }
  fn_ = nullptr;
  if (!local) {
    std::lock_guard<std::mutex> lk(error_mu_);
    local = error_;
    error_ = nullptr;
  }
  if (local) std::rethrow_exception(local);
}

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
  if (n <= 0) return;
  chunk = std::max<int64_t>(1, chunk);
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  pool().run((int)std::min<int64_t>(chunks, 1 << 20), [&](int, int) {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;)
      fn(c * chunk, std::min(n, (c + 1) * chunk));
  });
}

int64_t balanced_chunk(int64_t n, int64_t grain) {
  return std::max<int64_t>(std::max<int64_t>(1, grain), n / (4 * (int64_t)pool().size()));
}

void parallel_for_guided(int64_t n, int64_t min_chunk, int64_t align, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  align = std::max<int64_t>(1, align);
  min_chunk = std::max<int64_t>(1, (min_chunk + align - 1) / align * align);
  std::atomic<int64_t> next{0};
  pool().run((int)std::min<int64_t>((n + min_chunk - 1) / min_chunk, 1 << 20), [&](int, int nth) {
    int64_t b = next.load(std::memory_order_relaxed);
    while (b < n) {
      int64_t take = std::max(min_chunk, (n - b) / (2 * (int64_t)nth));
      take = (take + align - 1) / align * align;
      const int64_t e = std::min(n, b + take);
      if (next.compare_exchange_weak(b, e, std::memory_order_relaxed)) {
        fn(b, e);
        b = next.load(std::memory_order_relaxed);
      }
    }
  });
}

}  // namespace nm::cpu
