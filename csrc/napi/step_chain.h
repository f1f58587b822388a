// Decode steps chained ahead of JavaScript (the model's stepChained, used by
// generate()). A chained step returns each sequence's next token, and at
// once, on the same native thread, runs the step after it with those tokens
// (speculatively) while the tokens travel to JavaScript and back. When
// JavaScript asks for exactly that step (the same sequences, tokens and
// sampler rows), it is already running or done: no thread has to wake, and
// the weights stream without the gap of a round trip between steps.
//
// The contract (kept by the batcher and generate(), which own the
// sequences): a sequence's next call after a chained step is another chained
// step with the token it returned, or freeing / resetting / restoring it. A
// sequence that stops asking was stepped once more than asked: the chain
// remembers it, and any other call on it (step, prefill, snapshot) is an
// Error until it is freed, reset or restored. Requests that match the
// running step only in part (a generation ended, another joined) take the
// matching rows' results from it and compute the others in a step of their
// own.
#pragma once
#include <napi.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/model.h"
#include "napi/sample_params.h"

namespace nm::napi {

// One batched sampled step: the sequences, their input tokens, and per row
// the sampler's parameters (with this step's draw u) and history.
struct ChainRows {
  std::vector<int32_t> slots, tokens;
  SampleRows rows;
};

class StepChain : public std::enable_shared_from_this<StepChain> {
 public:
  static std::shared_ptr<StepChain> create(Napi::Env env);
  ~StepChain();

  // The promise of the next tokens of `step` (an array of numbers, one per row; <0 as
  // the sampler reports a row it cannot sample). next_u: per row the draw of
  // the step after, which runs ahead with this step's tokens; NaN: that row
  // does not run ahead (its generation ends with this token). `logits`: the
  // model's reusable logits buffer.
  Napi::Promise request(Napi::Env env, std::shared_ptr<engine::Model> m, ChainRows step, std::vector<double> next_u,
                        std::shared_ptr<std::vector<float>> logits);
  // Throws an Error naming `method` when `slot` is in a step that runs ahead
  // or was stepped past its requests (JS thread).
  void check_unchained(const Napi::Env& env, int32_t slot, const char* method);
  // `slot` is being freed, reset or restored: the chain forgets it (JS thread).
  void release(int32_t slot);
  // The model is disposed (JS thread): no request follows; the chain lets
  // go of its JS-thread callback once the results on their way have arrived.
  // (A model collected without dispose() leaves it to the environment's
  // teardown: releasing it from a finalizer may race with that.)
  void close(Napi::Env env);

  // Counts, for tests and profiles: requests whose every row came from a
  // step run ahead (`hits`), requests served in part from one (`partial`),
  // and rows stepped when asked (`rows_stepped`).
  struct Stats {
    uint64_t hits = 0, partial = 0, rows_stepped = 0;
  };
  Stats stats();

 private:
  explicit StepChain(Napi::Env env);
  friend class ChainWorker;

  // The step that runs ahead.
  struct Ahead {
    ChainRows step;
    std::vector<int32_t> ids;      // its results, once done
    bool running = true;
    std::string error;             // it failed
    bool range_error = false;
    std::set<int32_t> released;    // rows freed / reset since: skipped
  };
  // A request for exactly the running step, waiting for it.
  struct Claim {
    uint64_t id;
    std::vector<size_t> perm;     // request row i is row perm[i] of the step run ahead
    std::vector<double> next_u;   // in the order of the step run ahead
  };
  struct Result {
    uint64_t id;
    std::vector<int32_t> ids;
    std::string error;
    bool range_error = false;
  };

  // Worker threads.
  void deliver(Result r);
  static ChainRows next_step(const ChainRows& s, const std::vector<int32_t>& ids, const std::vector<double>& next_u);
  // JS thread.
  uint64_t add_deferred(Napi::Env env, Napi::Promise::Deferred d);
  void settle(Napi::Env env, const Result& r);
  static void settle_now(Napi::Env env, Napi::Promise::Deferred& d, const Result& r);

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Ahead> ahead_;
  std::optional<Claim> claim_;
  // Sequences stepped once past their requests (a dropped row of a step run ahead).
  std::set<int32_t> advanced_;
  Stats stats_;

  // JS thread only.
  Napi::ThreadSafeFunction tsfn_;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> deferreds_;
  uint64_t next_id_ = 1;
  bool closing_ = false, released_ = false;
};

}  // namespace nm::napi
