// Persistent worker threads. Kernels receive (ith, nth) and split their own
// range (run), or take precomputed ranges in turn (run_ranges: dynamic and
// guided loops), which a worker that a busy machine stalls cannot hold up
// beyond the ranges it has started; a decode step's matrix products also
// take those back (run_recomputable). Only this pool creates threads.
//
// A decode step makes a few hundred short parallel calls, so workers spin
// on an atomic generation counter after each task (the next call usually
// arrives within microseconds, the next decode step within a millisecond or
// two) for up to 1 ms, 5 ms after a decode step (linger; NODE_MAMBA_SPIN_US
// sets both), and only then sleep on a condition
// variable; the caller likewise spins before sleeping while it waits for the
// workers. While other processes take over a quarter of the CPU time of the
// CPUs this process may run on (measured over 200 ms windows), every thread
// of the pool sleeps at once instead of spinning (threadpool.cpp).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace nm::cpu {

// Work for ThreadPool::run_recomputable: items [0, n) whose ranges give the
// same result whichever thread computes them, reading only memory that
// outlives the call (the work object itself, which holds copies of its
// inputs, and a model's weights), so that the caller can compute again a
// range that a stalled worker holds instead of waiting for it.
class RecomputableWork {
 public:
  virtual ~RecomputableWork() = default;
  // Items [b, e): into the caller's outputs (caller: the calling thread) or
  // into the work's own staging (a worker, which may finish after the call).
  virtual void compute(int64_t b, int64_t e, bool caller) = 0;
  // A worker's staged results of [b, e) into the caller's outputs.
  virtual void commit(int64_t b, int64_t e) = 0;
};

// Physical cores available to this process (affinity and SMT siblings taken
// into account); at least 1.
int physical_core_count();

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that run work, the calling thread included.
  int size() const { return size_; }
  void resize(int threads);

  // Runs fn(ith, nth) for every ith in [0, nth), nth = min(size(), max_tasks),
  // the caller taking ith = 0, and returns when all have finished. Calls from
  // several threads are serialised; a call from inside a task runs inline.
  void run(int max_tasks, const std::function<void(int, int)>& fn);

  // fn(b, e) over [0, n) in ranges taken in turn by the pool's threads (the
  // caller included): ends[k] is the end of range k (ascending, the last
  // n). The call returns once every range is done; a worker that has not
  // taken a range by then is not waited for (one that a busy machine
  // preempted delays only the ranges it holds). A call from inside a task
  // runs inline.
  void run_ranges(std::vector<int64_t> ends, const std::function<void(int64_t, int64_t)>& fn);

  // As run_ranges, for work whose ranges may be computed twice: a range a
  // worker holds past kStealAfterNs (30 us) after the caller ran out of ranges is
  // computed again by the caller (the worker's late result, staged in the
  // work, is dropped). Never waits for a stalled worker.
  void run_recomputable(std::vector<int64_t> ends, const std::shared_ptr<RecomputableWork>& work);

  // Ends the calling thread's detached run_recomputable call, if any (see
  // set_detach_allowed): takes the ranges no worker has taken, waits for
  // the workers' (taking back stalled ones, as run_recomputable does) and
  // commits their results. The thread's next non-inline call to the pool
  // ends it first; calls from other threads wait for it.
  void finish_detached();

  // Waits until no worker computes a range of a finished run_recomputable
  // call (before the memory such work reads, a model's weights, is freed).
  void quiesce();

  // Ranges the callers of run_recomputable took back from stalled workers
  // since the pool started.
  uint64_t recomputed_ranges() const { return recomputed_.load(std::memory_order_relaxed); }
  // run_recomputable calls detached (set_detach_allowed) since the pool started.
  uint64_t detached_calls() const { return detached_calls_.load(std::memory_order_relaxed); }

  // A hint, returning at once: idle workers bring [p, p + bytes) toward
  // their caches while they spin for the next run, chunk by chunk from the
  // start, until the range is done or a later hint replaces it. For weights
  // the caller reads after a stretch of serial work: the memory system is
  // busy meanwhile, and a worker done with its share of that read early
  // prefetches, further along, the part another thread still reads.
  void prefetch(const void* p, size_t bytes);

  // A hint, returning at once: the next run comes soon after a stretch of
  // other work (the next decode step, once JavaScript has chosen a token), so
  // idle workers keep spinning for it longer than after other runs (5 ms
  // from now; NODE_MAMBA_SPIN_US sets both).
  void linger();

 private:
  struct RangeCall;  // one run_ranges / run_recomputable call (threadpool.cpp)
  void start(int threads);
  void stop();
  void worker_main(int ith, uint64_t seen);
  void publish(const std::function<void(int, int)>* fn, int nth, std::shared_ptr<RangeCall> ranges);
  static void take_ranges(RangeCall& c, bool caller);
  void finish_recomputable(RangeCall& c);
  void wake_caller();

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // one run() at a time
  // A call's hand-offs cross cores; each group below sits on its own cache
  // lines, so that a write to one (a worker's prefetch counter, its done
  // count) does not take the line another thread spins on.
  //
  // The call a worker joins, published under slot_mu_ with generation_
  // (written by the caller, read by spinning workers): run()'s fn_ / nth_,
  // or a range call (whose object a late worker keeps).
  alignas(64) std::atomic<uint64_t> generation_{0};
  std::mutex slot_mu_;
  int nth_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::shared_ptr<RangeCall> ranges_;
  // run(): workers that have not finished their task (the caller spins on it).
  alignas(64) std::atomic<int> pending_{0};
  // The prefetch hint: addresses [pf_next_, pf_end_), taken in chunks.
  alignas(64) std::atomic<uintptr_t> pf_next_{0}, pf_end_{0};
  void prefetch_some();
  alignas(64) std::atomic<int64_t> linger_until_{0};  // idle workers spin at least until then (steady-clock ns)
  std::atomic<bool> quit_{false};
  // Sleeping and waking: workers blocked on cv_work_, a caller on cv_done_.
  // caller_waiting_ is set under mu_ before the caller's last look at its
  // done count; a worker that finishes a call's last task looks at it after
  // its own decrement (both sequentially consistent), so one of the two
  // sees the other and the fast path takes no lock.
  alignas(64) std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  int sleepers_ = 0;  // (under mu_)
  std::atomic<bool> caller_waiting_{false};
  alignas(64) std::atomic<int> late_workers_{0};  // workers inside a run_recomputable call's object
  std::atomic<uint64_t> recomputed_{0};
  std::atomic<uint64_t> detached_calls_{0};
  // A detached run_recomputable call and its hold on run_mu_ (touched only
  // by the thread that detached it, which holds run_mu_ meanwhile).
  std::shared_ptr<RangeCall> detached_;
  std::unique_lock<std::mutex> detached_lock_;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

// Whether kernels called on this thread may run their decode-sized matrix
// products through ThreadPool::run_recomputable: set by the engine's CPU
// backend for the span of a decode step, whose weights stay until the
// model's Backend::quiesce (which waits for late workers).
bool recompute_allowed();
void set_recompute_allowed(bool on);

// Between begin_inline() and its end_inline() (they nest), the pool's calls
// from this thread run here, inline, as calls from inside a task do: for a
// stretch of small, latency-bound kernels (a decode step's conv and state
// update at batch 1) whose hand-offs to a worker cost about as much as their
// work, while the idle workers prefetch the hinted weights instead.
void begin_inline();
void end_inline();

// While set on this thread, a run_recomputable call (a decode step's matrix
// product, cpu::recompute_allowed) is detached: its ranges start on the
// idle workers and the call returns at once, the caller taking none, so
// that the caller can go on with other work (a stretch of inline calls:
// begin_inline) while the workers compute; ThreadPool::finish_detached
// ends it. Its output is not ready before then. A call that is not
// recomputable (or runs inline) is unaffected, and runs to its end.
void set_detach_allowed(bool on);
// Whether this thread has a detached call not yet finished.
bool owns_detached();

// The process-wide pool, sized to physical_core_count() on first use
// (or NODE_MAMBA_THREADS if set).
ThreadPool& pool();

// Split [0, n) into contiguous ranges of at least `grain` items and run
// fn(begin, end) on the pool.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Split [0, n) into chunks of `chunk` items that the pool's threads take in
// turn until none is left: a thread that starts late or runs slower takes
// fewer (short calls, such as a decode step's matrix-vector products, where
// a static split waits for the slowest thread).
void parallel_for_dynamic(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);

// The ranges of parallel_for_dynamic (ends of [k · chunk, (k + 1) · chunk)
// within n) and parallel_for_guided, for ThreadPool::run_ranges /
// run_recomputable.
std::vector<int64_t> dynamic_ranges(int64_t n, int64_t chunk);
std::vector<int64_t> guided_ranges(int64_t n, int64_t min_chunk, int64_t align);

// The chunk for parallel_for_dynamic over n items: about a quarter of a
// thread's share, at least `grain`. Enough chunks that a thread the machine
// slowed (or a late start) costs little, few enough that each is worth a take.
int64_t balanced_chunk(int64_t n, int64_t grain);

// Like parallel_for_dynamic, but each take is a share of what is left
// (remaining / threads items, rounded up to a multiple of `align`, at least
// `min_chunk`): long ranges first, short ones at the end, so that the
// threads finish within about one short range of each other (guided
// scheduling). For calls of a few tens of microseconds, such as a decode
// step's matrix-vector products, where the wait for the last fixed-size
// chunk was a tenth of the step; each range starts new memory streams, so
// few (a share of remaining / (2 · threads) was 1.3-3.4% slower a step:
// bench/NOTES.md).
void parallel_for_guided(int64_t n, int64_t min_chunk, int64_t align, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace nm::cpu
