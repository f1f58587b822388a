#include "napi/promise_worker.h"

#include <new>
#include <stdexcept>

#include "engine/model.h"

namespace nm::napi {

PromiseWorker::PromiseWorker(Napi::Env env, const char* name, Job execute, Resolver resolve)
    : Napi::AsyncWorker(env, name),
      deferred_(Napi::Promise::Deferred::New(env)),
      execute_(std::move(execute)),
      resolve_(std::move(resolve)) {}

void JobLane::submit(PromiseWorker* w) {
  if (busy_) {
    waiting_.push_back(w);
    return;
  }
  w->Queue();
  busy_ = true;
}

void JobLane::done() {
  if (waiting_.empty()) {
    busy_ = false;
    return;
  }
  PromiseWorker* w = waiting_.front();
  waiting_.pop_front();
  w->Queue();
}

Napi::Promise PromiseWorker::run(Napi::Env env, const char* name, Job execute, Resolver resolve,
                                 std::shared_ptr<JobLane> lane) {
  auto* w = new PromiseWorker(env, name, std::move(execute), std::move(resolve));
  Napi::Promise p = w->deferred_.Promise();
  w->lane_ = std::move(lane);
  // (the worker deletes itself after OnOK / OnError)
  if (w->lane_) w->lane_->submit(w);
  else w->Queue();
  return p;
}

void PromiseWorker::settled() noexcept {
  std::shared_ptr<JobLane> lane = std::move(lane_);
  if (!lane) return;
  try {
    lane->done();
  } catch (...) {
    // (napi_queue_async_work failed: nothing to do but leave the rest waiting)
  }
}

void PromiseWorker::Execute() {
  try {
    execute_();
  } catch (const engine::LoadError& e) {
    kind_ = Kind::Load; message_ = e.what(); file_ = e.file; field_ = e.field;
    SetError(message_);
  } catch (const std::out_of_range& e) {
    kind_ = Kind::Range; message_ = e.what();
    SetError(message_);
  } catch (const std::invalid_argument& e) {
    kind_ = Kind::Type; message_ = e.what();
    SetError(message_);
  } catch (const std::bad_alloc&) {
    kind_ = Kind::Range; message_ = "node-mamba: out of memory";
    SetError(message_);
  } catch (const std::exception& e) {
    message_ = std::string("node-mamba: ") + e.what();
    SetError(message_);
  } catch (...) {
    message_ = "node-mamba: unknown native error";
    SetError(message_);
  }
}

// Whatever OnOK / OnError do, the lane's next job goes to the pool after them.
struct PromiseWorker::SettleGuard {
  PromiseWorker& w;
  ~SettleGuard() { w.settled(); }
};

void PromiseWorker::OnOK() {
  SettleGuard guard{*this};
  Napi::Env env = Env();
  try {
    deferred_.Resolve(resolve_(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred_.Reject(Napi::Error::New(env, std::string("node-mamba: ") + e.what()).Value());
  }
  resolve_ = nullptr;  // release captured buffers now
}

void PromiseWorker::OnError(const Napi::Error&) {
  SettleGuard guard{*this};
  Napi::Env env = Env();
  Napi::Error err;
  switch (kind_) {
    case Kind::Range: err = Napi::RangeError::New(env, message_); break;
    case Kind::Type: err = Napi::TypeError::New(env, message_); break;
    default: err = Napi::Error::New(env, message_);
  }
  if (kind_ == Kind::Load) {
    err.Set("code", "ERR_MODEL_LOAD");
    err.Set("file", file_);
    err.Set("field", field_);
  }
  deferred_.Reject(err.Value());
}

}  // namespace nm::napi
