// Runs a C++ job on libuv's thread pool and settles a Promise with its
// result, so long computations never block the JavaScript thread. The job's
// exceptions become JS errors here (none crosses the N-API boundary):
//   engine::LoadError  -> Error with code 'ERR_MODEL_LOAD', .file, .field
//   std::out_of_range  -> RangeError
//   std::invalid_argument -> TypeError
//   anything else      -> Error
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

namespace nm::napi {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;
  using Resolver = std::function<Napi::Value(Napi::Env)>;

  // Queues the job and returns its Promise.
  static Napi::Promise run(Napi::Env env, const char* name, Job execute, Resolver resolve);

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  PromiseWorker(Napi::Env env, const char* name, Job execute, Resolver resolve);
  Napi::Promise::Deferred deferred_;
  Job execute_;
  Resolver resolve_;
  enum class Kind { Error, Range, Type, Load } kind_ = Kind::Error;
  std::string message_, file_, field_;
};

}  // namespace nm::napi
