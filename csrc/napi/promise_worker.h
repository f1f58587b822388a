// Runs a C++ job on libuv's thread pool and settles a Promise with its
// result, so long computations never block the JavaScript thread. The job's
// exceptions become JS errors here (none crosses the N-API boundary):
//   engine::LoadError  -> Error with code 'ERR_MODEL_LOAD', .file, .field
//   std::out_of_range  -> RangeError
//   std::invalid_argument -> TypeError
//   anything else      -> Error
//
// A job may belong to a JobLane (a model's: every job of one model takes its
// compute lock, one at a time): a lane has at most one job on libuv's pool,
// the others wait in the lane, in order, without a thread. Otherwise jobs
// queued together (eight sequences' prefills) each held one of libuv's four
// threads while they waited for the model, and the process's file system,
// DNS, crypto and zlib work waited behind them.
#pragma once
#include <napi.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>

namespace nm::napi {

class PromiseWorker;

// Touched only on the JavaScript thread.
class JobLane {
 public:
  // Queues w on libuv's pool now, or after the lane's jobs before it.
  void submit(PromiseWorker* w);
  // The lane's job on the pool has settled: queues the next, if any.
  void done();

 private:
  bool busy_ = false;
  std::deque<PromiseWorker*> waiting_;
};

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;
  using Resolver = std::function<Napi::Value(Napi::Env)>;

  // Queues the job (in `lane`'s order, if given) and returns its Promise.
  static Napi::Promise run(Napi::Env env, const char* name, Job execute, Resolver resolve,
                           std::shared_ptr<JobLane> lane = nullptr);

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  PromiseWorker(Napi::Env env, const char* name, Job execute, Resolver resolve);
  // After the promise is settled: the lane's next job goes to the pool.
  void settled() noexcept;
  struct SettleGuard;
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<JobLane> lane_;
  Job execute_;
  Resolver resolve_;
  enum class Kind { Error, Range, Type, Load } kind_ = Kind::Error;
  std::string message_, file_, field_;
};

}  // namespace nm::napi
