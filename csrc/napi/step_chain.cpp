#include "napi/step_chain.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <thread>
#include <utility>

#include "engine/step_tokens.h"

namespace nm::napi {

namespace {

bool same_row(const ChainRows& a, size_t j, const ChainRows& b, size_t i) {
  if (a.slots[j] != b.slots[i] || a.tokens[j] != b.tokens[i]) return false;
  const SampleParams& x = a.rows.params[j];
  const SampleParams& y = b.rows.params[i];
  if (x.temperature != y.temperature || x.top_k != y.top_k || x.top_p != y.top_p || x.min_p != y.min_p ||
      x.repetition_penalty != y.repetition_penalty || x.u != y.u || x.history_len != y.history_len)
    return false;
  return x.history_len == 0 || std::equal(x.history, x.history + x.history_len, y.history);
}

// Whether `req` asks for exactly the rows of `ahead`, in any order: perm[i]
// is the row of `ahead` that request row i is.
bool match_rows(const ChainRows& ahead, const ChainRows& req, std::vector<size_t>& perm) {
  const size_t n = req.slots.size();
  if (ahead.slots.size() != n) return false;
  perm.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const size_t j = (size_t)(std::find(ahead.slots.begin(), ahead.slots.end(), req.slots[i]) - ahead.slots.begin());
    if (j == n || !same_row(ahead, j, req, i)) return false;
    perm[i] = j;
  }
  return true;  // slots are distinct in both, so perm is a permutation
}

// Per request row, the value of its row in the step run ahead.
template <class T>
std::vector<T> in_request_order(const std::vector<T>& v, const std::vector<size_t>& perm) {
  std::vector<T> o(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) o[i] = v[perm[i]];
  return o;
}

// The rows idx of s, in that order (their histories copied).
ChainRows subset(const ChainRows& s, const std::vector<size_t>& idx) {
  ChainRows o;
  std::vector<size_t> off;
  for (size_t i : idx) {
    const SampleParams& p = s.rows.params[i];
    o.slots.push_back(s.slots[i]);
    o.tokens.push_back(s.tokens[i]);
    o.rows.params.push_back(p);
    off.push_back(o.rows.history.size());
    if (p.history_len > 0) o.rows.history.insert(o.rows.history.end(), p.history, p.history + p.history_len);
  }
  for (size_t k = 0; k < o.rows.params.size(); ++k) o.rows.params[k].history = o.rows.history.data() + off[k];
  return o;
}

size_t find_slot(const std::vector<int32_t>& slots, int32_t slot) {
  return (size_t)(std::find(slots.begin(), slots.end(), slot) - slots.begin());
}

// Steps the rows of s and samples each: ids, one per row; the caller holds
// the model's compute lock.
void run_rows_locked(engine::Model& m, const ChainRows& s, std::vector<float>& logits, std::vector<int32_t>& ids) {
  ids.assign(s.slots.size(), kSampleNaN);
  engine::step_tokens_locked(m, s.slots.data(), s.tokens.data(), (int64_t)s.slots.size(), s.rows.params.data(),
                             logits, ids.data());
}

}  // namespace

// Serves a request that did not find its step running ahead (id != 0), then
// runs ahead as long as JavaScript asks for each step before it ends.
class ChainWorker : public Napi::AsyncWorker {
 public:
  ChainWorker(Napi::Env env, std::shared_ptr<StepChain> chain, std::shared_ptr<engine::Model> m,
              std::shared_ptr<std::vector<float>> logits, uint64_t id, ChainRows step, std::vector<double> next_u)
      : Napi::AsyncWorker(env, "node-mamba:stepChained"), c_(std::move(chain)), m_(std::move(m)),
        logits_(std::move(logits)), id_(id), step_(std::move(step)), next_u_(std::move(next_u)) {}

  void Execute() override {
    // Errors reach JavaScript through deliver(); nothing escapes.
    try {
      if (id_ == 0 || serve()) run_ahead();
    } catch (...) {
      // Out of memory building a step: the step run ahead is dropped, and a
      // request waiting for it fails.
      std::optional<StepChain::Claim> claim;
      {
        std::lock_guard<std::mutex> lk(c_->mu_);
        if (c_->ahead_) {
          for (int32_t s : c_->ahead_->step.slots)
            if (!c_->ahead_->released.count(s)) c_->advanced_.insert(s);
          c_->ahead_.reset();
        }
        claim.swap(c_->claim_);
        c_->cv_.notify_all();
      }
      if (claim) c_->deliver(StepChain::Result{claim->id, {}, "node-mamba: stepChained: out of memory", true});
    }
  }
  void OnOK() override {}
  void OnError(const Napi::Error&) override {}

 private:
  static void failed(StepChain::Result& r, std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::out_of_range& x) {
      r.error = x.what();
      r.range_error = true;
    } catch (const std::exception& x) {
      r.error = std::string("node-mamba: ") + x.what();
    } catch (...) {
      r.error = "node-mamba: unknown native error";
    }
  }

  // The request: rows the step run ahead computed come from it, the others
  // are stepped now; true when a step then runs ahead.
  bool serve() {
    StepChain& c = *c_;
    const size_t n = step_.slots.size();
    StepChain::Result r{id_, std::vector<int32_t>(n, kSampleNaN), "", false};
    std::vector<char> have(n, 0);
    {
      std::unique_lock<std::mutex> lk(c.mu_);
      c.cv_.wait(lk, [&] { return !c.ahead_ || !c.ahead_->running; });
      if (c.ahead_) {
        const StepChain::Ahead& a = *c.ahead_;
        for (size_t j = 0; j < a.step.slots.size(); ++j) {
          const int32_t s = a.step.slots[j];
          if (a.released.count(s)) continue;
          const size_t i = find_slot(step_.slots, s);
          if (i == n || step_.tokens[i] != a.step.tokens[j] || !a.error.empty()) {
            // Its generation ended (or the step failed): stepped past its requests.
            c.advanced_.insert(s);
            if (i < n && r.error.empty()) {
              r.error = !a.error.empty() ? a.error : "node-mamba: stepChained: sequence slot " + std::to_string(s) +
                                                         " was stepped ahead with another token";
              r.range_error = !a.error.empty() && a.range_error;
            }
            continue;
          }
          r.ids[i] = a.ids[j];
          have[i] = 1;
        }
        c.ahead_.reset();
      }
      size_t served = 0;
      for (size_t i = 0; i < n; ++i) served += have[i] ? 1 : 0;
      if (served > 0) ++c.stats_.partial;
      c.stats_.rows_stepped += n - served;
      for (size_t i = 0; i < n && r.error.empty(); ++i)
        if (!have[i] && c.advanced_.count(step_.slots[i]))
          r.error = "node-mamba: stepChained: sequence slot " + std::to_string(step_.slots[i]) +
                    " was stepped past its requests (free, reset or restore it)";
    }
    if (r.error.empty()) {
      std::vector<size_t> todo;
      for (size_t i = 0; i < n; ++i)
        if (!have[i]) todo.push_back(i);
      if (!todo.empty()) {
        try {
          std::vector<int32_t> ids;
          const ChainRows rows = subset(step_, todo);
          engine::ComputeLock compute(*m_);
          run_rows_locked(*m_, rows, *logits_, ids);
          for (size_t k = 0; k < todo.size(); ++k) r.ids[todo[k]] = ids[k];
        } catch (...) {
          failed(r, std::current_exception());
        }
      }
    }
    bool ahead = false;
    if (r.error.empty()) {
      std::lock_guard<std::mutex> lk(c.mu_);
      ChainRows next = StepChain::next_step(step_, r.ids, next_u_);
      if (!next.slots.empty()) {
        c.ahead_.emplace();
        c.ahead_->step = std::move(next);
        ahead = true;
      }
    }
    // After the step ahead is in place: the request for it may come at once.
    c.deliver(std::move(r));
    return ahead;
  }

  void run_ahead() {
    for (;;) {
      std::optional<StepChain::Result> out = step_ahead();
      if (!out) return;
      c_->deliver(std::move(*out));
    }
  }

  // Runs the step ahead once: the result for the request that claimed it
  // while it ran, which then runs the next one ahead (nullopt: none did yet,
  // or no step runs ahead).
  std::optional<StepChain::Result> step_ahead() {
    StepChain& c = *c_;
    // Jobs waiting for the model (a prefill, a free) go first.
    while (m_->compute_waiters() > 0) std::this_thread::yield();
    // The rows are read under the compute lock: a sequence released after
    // that is freed or replaced (jobs under the same lock) only once this
    // step is done, so the step never runs on a slot another sequence took.
    engine::ComputeLock compute(*m_);
    ChainRows s;
    {
      std::lock_guard<std::mutex> lk(c.mu_);
      if (!c.ahead_ || !c.ahead_->running) return std::nullopt;
      std::vector<size_t> keep;
      for (size_t j = 0; j < c.ahead_->step.slots.size(); ++j)
        if (!c.ahead_->released.count(c.ahead_->step.slots[j])) keep.push_back(j);
      s = subset(c.ahead_->step, keep);
    }
    StepChain::Result err{0, {}, "", false};
    std::vector<int32_t> ids;
    try {
      run_rows_locked(*m_, s, *logits_, ids);
    } catch (...) {
      failed(err, std::current_exception());
    }
    std::lock_guard<std::mutex> lk(c.mu_);
    StepChain::Ahead& a = *c.ahead_;
    a.ids.assign(a.step.slots.size(), kSampleNaN);
    for (size_t k = 0; k < s.slots.size() && k < ids.size(); ++k) a.ids[find_slot(a.step.slots, s.slots[k])] = ids[k];
    a.error = err.error;
    a.range_error = err.range_error;
    c.cv_.notify_all();
    if (!c.claim_) {
      a.running = false;
      return std::nullopt;
    }
    StepChain::Claim claim = std::move(*c.claim_);
    c.claim_.reset();
    StepChain::Result out{claim.id, in_request_order(a.ids, claim.perm), a.error, a.range_error};
    if (!a.error.empty()) {
      for (int32_t slot : a.step.slots)
        if (!a.released.count(slot)) c.advanced_.insert(slot);
      c.ahead_.reset();
      return out;
    }
    // Rows released while the step ran (their results still go to the
    // request that claimed them) do not run ahead.
    std::vector<double> next_u = std::move(claim.next_u);
    for (size_t j = 0; j < a.step.slots.size() && j < next_u.size(); ++j)
      if (a.released.count(a.step.slots[j])) next_u[j] = std::nan("");
    ChainRows next = StepChain::next_step(a.step, a.ids, next_u);
    if (next.slots.empty()) {
      c.ahead_.reset();
    } else {
      a.step = std::move(next);
      a.ids.clear();
      a.released.clear();
    }
    return out;
  }

  std::shared_ptr<StepChain> c_;
  std::shared_ptr<engine::Model> m_;
  std::shared_ptr<std::vector<float>> logits_;
  uint64_t id_;
  ChainRows step_;
  std::vector<double> next_u_;
};

StepChain::StepChain(Napi::Env env) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                        "node-mamba:stepChained", 0, 1);
  tsfn_.Unref(env);
}

StepChain::~StepChain() = default;

void StepChain::close(Napi::Env) {
  closing_ = true;
  if (deferreds_.empty() && !released_) {
    released_ = true;
    tsfn_.Release();
  }
}

std::shared_ptr<StepChain> StepChain::create(Napi::Env env) { return std::shared_ptr<StepChain>(new StepChain(env)); }

ChainRows StepChain::next_step(const ChainRows& s, const std::vector<int32_t>& ids, const std::vector<double>& next_u) {
  std::vector<size_t> keep;
  for (size_t i = 0; i < s.slots.size(); ++i)
    if (i < next_u.size() && !std::isnan(next_u[i]) && ids[i] >= 0) keep.push_back(i);
  ChainRows o;
  std::vector<size_t> off;
  for (size_t i : keep) {
    SampleParams p = s.rows.params[i];
    o.slots.push_back(s.slots[i]);
    o.tokens.push_back(ids[i]);
    p.u = next_u[i];
    off.push_back(o.rows.history.size());
    // The penalty's history grows by the token the row just took.
    if (p.history_len > 0) o.rows.history.insert(o.rows.history.end(), p.history, p.history + p.history_len);
    if (p.repetition_penalty != 1.0) {
      o.rows.history.push_back(ids[i]);
      p.history_len += 1;
    }
    o.rows.params.push_back(p);
  }
  for (size_t k = 0; k < o.rows.params.size(); ++k) o.rows.params[k].history = o.rows.history.data() + off[k];
  return o;
}

Napi::Promise StepChain::request(Napi::Env env, std::shared_ptr<engine::Model> m, ChainRows step,
                                 std::vector<double> next_u, std::shared_ptr<std::vector<float>> logits) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  Napi::Promise p = d.Promise();
  std::unique_lock<std::mutex> lk(mu_);
  std::vector<size_t> perm;
  if (ahead_ && ahead_->released.empty() && !claim_ && match_rows(ahead_->step, step, perm)) {
    ++stats_.hits;
    std::vector<double> next_u_ahead(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) next_u_ahead[perm[i]] = next_u[i];
    if (ahead_->running) {
      claim_ = Claim{add_deferred(env, d), std::move(perm), std::move(next_u_ahead)};
      return p;
    }
    // Done, and waiting for this request.
    Ahead a = std::move(*ahead_);
    ahead_.reset();
    if (!a.error.empty()) {
      for (int32_t s : a.step.slots) advanced_.insert(s);
      lk.unlock();
      settle_now(env, d, Result{0, {}, a.error, a.range_error});
      return p;
    }
    ChainRows next = next_step(a.step, a.ids, next_u_ahead);
    const bool run = !next.slots.empty();
    if (run) {
      ahead_.emplace();
      ahead_->step = std::move(next);
    }
    lk.unlock();
    settle_now(env, d, Result{0, in_request_order(a.ids, perm), "", false});
    if (run) (new ChainWorker(env, shared_from_this(), std::move(m), std::move(logits), 0, {}, {}))->Queue();
    return p;
  }
  lk.unlock();
  const uint64_t id = add_deferred(env, d);
  (new ChainWorker(env, shared_from_this(), std::move(m), std::move(logits), id, std::move(step), std::move(next_u)))
      ->Queue();
  return p;
}

void StepChain::check_unchained(const Napi::Env& env, int32_t slot, const char* method) {
  std::lock_guard<std::mutex> lk(mu_);
  const bool ahead = ahead_ && find_slot(ahead_->step.slots, slot) < ahead_->step.slots.size() &&
                     !ahead_->released.count(slot);
  if (ahead || advanced_.count(slot))
    throw Napi::Error::New(env, std::string("node-mamba: ") + method + ": sequence slot " + std::to_string(slot) +
                                    " was stepped ahead by stepChained (generate()); free, reset or restore it first");
}

StepChain::Stats StepChain::stats() {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void StepChain::release(int32_t slot) {
  std::lock_guard<std::mutex> lk(mu_);
  advanced_.erase(slot);
  if (ahead_ && find_slot(ahead_->step.slots, slot) < ahead_->step.slots.size()) ahead_->released.insert(slot);
}

uint64_t StepChain::add_deferred(Napi::Env env, Napi::Promise::Deferred d) {
  const uint64_t id = next_id_++;
  if (deferreds_.empty()) tsfn_.Ref(env);  // results on their way keep the process alive
  deferreds_.emplace(id, std::move(d));
  return id;
}

void StepChain::deliver(Result r) {
  auto* payload = new std::pair<std::shared_ptr<StepChain>, Result>(shared_from_this(), std::move(r));
  const napi_status st = tsfn_.NonBlockingCall(
      payload, [](Napi::Env env, Napi::Function, std::pair<std::shared_ptr<StepChain>, Result>* p) {
        if (env != nullptr) p->first->settle(env, p->second);
        delete p;
      });
  if (st != napi_ok) delete payload;
}

void StepChain::settle_now(Napi::Env env, Napi::Promise::Deferred& d, const Result& r) {
  if (!r.error.empty()) {
    d.Reject((r.range_error ? Napi::RangeError::New(env, r.error) : Napi::Error::New(env, r.error)).Value());
    return;
  }
  // A plain array: a few rows, once per token (an Int32Array would allocate a backing store each time).
  Napi::Array a = Napi::Array::New(env, r.ids.size());
  for (size_t i = 0; i < r.ids.size(); ++i) a.Set((uint32_t)i, Napi::Number::New(env, r.ids[i]));
  d.Resolve(a);
}

void StepChain::settle(Napi::Env env, const Result& r) {
  auto it = deferreds_.find(r.id);
  if (it == deferreds_.end()) return;
  Napi::Promise::Deferred d = std::move(it->second);
  deferreds_.erase(it);
  if (deferreds_.empty()) {
    tsfn_.Unref(env);
    if (closing_ && !released_) {
      released_ = true;
      tsfn_.Release();
    }
  }
  Napi::HandleScope scope(env);
  settle_now(env, d, r);
}

}  // namespace nm::napi
