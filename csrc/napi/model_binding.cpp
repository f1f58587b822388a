// JS surface of the engine: loadModel() and the NativeModel object
// (lib/model/ wraps it). Arguments are checked here, on the JS thread; the
// work runs in PromiseWorkers holding a shared_ptr to the model, so
// dispose() frees the model as soon as no job is in flight. A model's jobs
// go through its JobLane: one at a time on libuv's pool, the rest waiting
// without a thread (napi/promise_worker.h).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu/threadpool.h"
#include "engine/backend.h"
#include "engine/forward.h"
#include "engine/load_args.h"
#include "engine/model.h"
#include "engine/step_tokens.h"
#include "kernels/moe.h"
#include "napi/bindings.h"
#include "napi/convert.h"
#include "napi/promise_worker.h"
#include "napi/sample_params.h"
#include "napi/step_chain.h"

namespace nm::napi {

namespace {

using engine::Model;

DType parse_dtype(const ArgReader& r, const Napi::Value& v, const std::string& what) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  DType t;
  if (dtype_from_name(s.c_str(), &t)) return t;
  std::string names;
  for (int32_t i = 0; i < kDTypeCount; ++i) names += (i ? ", '" : "'") + std::string(kDTypeTable[i].name) + "'";
  r.type_error(what, "must be one of " + names + (s.empty() ? "" : ", got '" + s + "'"));
}

int64_t int_field(const ArgReader& r, const Napi::Object& o, const char* key, const std::string& what, int64_t min,
                  int64_t max) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) r.type_error(what, "must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d)
    r.range_error(what, "must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return (int64_t)d;
}

// Copies an Int32Array argument (the caller may change it while a job runs).
std::vector<int32_t> copy_int32(const ArgReader& r, const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    r.type_error(name, "must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// A decode step's slots (distinct, at least one) and one token per slot in
// the vocabulary, from arguments 0 and 1 (step, stepChained).
void read_step_rows(const ArgReader& r, const Napi::CallbackInfo& info, int64_t V, std::vector<int32_t>& slots,
                    std::vector<int32_t>& tokens) {
  slots = copy_int32(r, info[0], "slots");
  tokens = copy_int32(r, info[1], "tokens");
  if (slots.size() != tokens.size()) r.range_error("tokens", "must have one token per slot");
  if (slots.empty()) r.range_error("slots", "must not be empty");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      r.range_error("tokens", "holds id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                  ", outside the vocabulary [0, " + std::to_string(V) + ")");
  std::vector<int32_t> sorted = slots;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) r.range_error("slots", "must be distinct");
}

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::FunctionReference* ctor;

  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "NativeModel", {
      InstanceMethod<&NativeModel::Info>("info"),
      InstanceMethod<&NativeModel::AllocSequence>("allocSequence"),
      InstanceMethod<&NativeModel::FreeSequence>("freeSequence"),
      InstanceMethod<&NativeModel::ResetSequence>("resetSequence"),
      InstanceMethod<&NativeModel::Prefill>("prefill"),
      InstanceMethod<&NativeModel::Step>("step"),
      InstanceMethod<&NativeModel::StepChained>("stepChained"),
      InstanceMethod<&NativeModel::Snapshot>("snapshot"),
      InstanceMethod<&NativeModel::Restore>("restore"),
      InstanceMethod<&NativeModel::Calibrate>("calibrate"),
      InstanceMethod<&NativeModel::Dispose>("dispose"),
    });
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    exports.Set("NativeModel", f);
  }

  NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    // Only loadModel() creates these, passing the model through an External.
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "node-mamba: NativeModel is created by loadModel()");
    model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
  }

 private:
  std::shared_ptr<Model> model_;
  // This model's jobs, one at a time on libuv's pool (napi/promise_worker.h).
  std::shared_ptr<JobLane> lane_ = std::make_shared<JobLane>();

  // A job of this model: every one goes through its lane.
  Napi::Promise job(Napi::Env env, const char* name, PromiseWorker::Job execute, PromiseWorker::Resolver resolve) {
    return PromiseWorker::run(env, name, std::move(execute), std::move(resolve), lane_);
  }
  // Greedy and sampled steps' logits (step(..., 'greedy' | 'sample')): one buffer per model, reused
  // (steps hold the compute mutex); freed with the last in-flight step.
  std::shared_ptr<std::vector<float>> greedy_logits_ = std::make_shared<std::vector<float>>();
  // Steps run ahead of JavaScript (stepChained); created with the first.
  std::shared_ptr<StepChain> chain_;

  // Refuses a call on a sequence that stepChained stepped ahead.
  void check_unchained(const Napi::Env& env, int32_t slot, const char* method) {
    if (chain_) chain_->check_unchained(env, slot, method);
  }
  // The sequence's state is being replaced or freed: the chain forgets it.
  void release_chained(int32_t slot) {
    if (chain_) chain_->release(slot);
  }

  std::shared_ptr<Model> live(const Napi::Env& env, const char* method) {
    if (!model_) {
      Napi::Error e = Napi::Error::New(env, std::string("node-mamba: ") + method + ": model has been disposed");
      e.Set("code", "ERR_DISPOSED");
      throw e;
    }
    return model_;
  }

  static int32_t slot_arg(const Napi::CallbackInfo& info, const char* method) {
    ArgReader r{info.Env(), Napi::Object::New(info.Env()), method};
    if (info.Length() < 1 || !info[0].IsNumber()) r.type_error("slot", "must be an integer");
    double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 2147483647.0) || d != (double)(int32_t)d) r.range_error("slot", "must be a sequence slot");
    return (int32_t)d;
  }

  static void check_slot(Model& m, int32_t slot) { engine::check_live_slots(m, &slot, 1); }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto m = live(info.Env(), "info");
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("weightBytes", (double)m->weight_bytes());
    o.Set("decodeBytes", (double)m->decode_bytes());
    o.Set("stateBytes", (double)m->state_floats() * 4);
    o.Set("kvBytesPerToken", (double)(m->snapshot_bytes(1) - m->snapshot_bytes(0)));
    o.Set("backend", m->backend().name());
    const engine::RecorderStats g = m->backend().graph_stats();
    Napi::Object graphs = Napi::Object::New(info.Env());
    graphs.Set("captures", (double)g.captures);
    graphs.Set("replays", (double)g.replays);
    graphs.Set("fallbacks", (double)g.fallbacks);
    graphs.Set("launchesPerStep", (double)g.launches_per_step);
    o.Set("decodeGraphs", graphs);
    // stepChained's counts (napi/step_chain.h StepChain::Stats).
    const StepChain::Stats cs = chain_ ? chain_->stats() : StepChain::Stats{};
    Napi::Object chain = Napi::Object::New(info.Env());
    chain.Set("hits", (double)cs.hits);
    chain.Set("partial", (double)cs.partial);
    chain.Set("rowsStepped", (double)cs.rows_stepped);
    o.Set("chainedSteps", chain);
    return o;
  }

  Napi::Value AllocSequence(const Napi::CallbackInfo& info) {
    auto m = live(info.Env(), "allocSequence");
    auto slot = std::make_shared<int32_t>(-1);
    return job(info.Env(), "node-mamba:allocSequence",
        [m, slot] { engine::ComputeLock lk(*m); *slot = m->alloc_slot(); },
        [slot](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *slot); });
  }

  Napi::Value FreeSequence(const Napi::CallbackInfo& info) {
    int32_t slot = slot_arg(info, "freeSequence");
    release_chained(slot);
    if (!model_) return info.Env().Undefined();  // freeing after dispose is a no-op
    auto m = model_;
    return job(info.Env(), "node-mamba:freeSequence",
        [m, slot] { engine::ComputeLock lk(*m); m->free_slot(slot); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  Napi::Value ResetSequence(const Napi::CallbackInfo& info) {
    int32_t slot = slot_arg(info, "resetSequence");
    auto m = live(info.Env(), "resetSequence");
    release_chained(slot);
    return job(info.Env(), "node-mamba:resetSequence",
        [m, slot] {
          engine::ComputeLock lk(*m);
          check_slot(*m, slot);
          m->reset_slot(slot);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // prefill(slot, tokens: Int32Array, logits: 'none' | 'last' | 'all') -> Promise<Float32Array | undefined>;
  // prefill(slot, tokens, 'sample', params, history?, historyOffsets?) -> Promise<Int32Array [1]>: the
  //   token drawn from the last token's logits, as step(..., 'sample') draws it (the logits stay native)
  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int32_t slot = slot_arg(info, "prefill");
    auto m = live(env, "prefill");
    check_unchained(env, slot, "prefill");
    ArgReader r{env, Napi::Object::New(env), "prefill"};
    std::vector<int32_t> tokens = copy_int32(r, info[1], "tokens");
    const int64_t V = m->config().vocab;
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || tokens[i] >= V)
        r.range_error("tokens", "holds id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                    ", outside the vocabulary [0, " + std::to_string(V) + ")");
    std::string mode_s = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "last";
    if (mode_s == "sample") {
      if (tokens.empty()) r.range_error("tokens", "must not be empty when a token is sampled");
      auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
      auto rows = std::make_shared<SampleRows>(read_sample_rows(r, arg(3), arg(4), arg(5), 1, V));
      auto toks = std::make_shared<std::vector<int32_t>>(std::move(tokens));
      auto id = std::make_shared<int32_t>(0);
      return job(env, "node-mamba:prefill",
          [m, slot, toks, rows, id] {
            *id = engine::prefill_token(*m, slot, toks->data(), (int64_t)toks->size(), rows->params[0]);
          },
          [id](Napi::Env env) -> Napi::Value {
            Napi::Int32Array a = Napi::Int32Array::New(env, 1);
            a[0] = *id;
            return a;
          });
    }
    engine::LogitsMode mode = mode_s == "all" ? engine::LogitsMode::All
                              : mode_s == "none" ? engine::LogitsMode::None : engine::LogitsMode::Last;
    if (mode_s != "all" && mode_s != "none" && mode_s != "last") r.type_error("logits", "must be 'none', 'last', 'all' or 'sample'");
    if (mode == engine::LogitsMode::All) checked_product(r, "logits", {(int64_t)tokens.size(), V});
    if (tokens.empty() && mode != engine::LogitsMode::None) r.range_error("tokens", "must not be empty when logits are requested");
    auto out = std::make_shared<HostBuffer>();
    auto toks = std::make_shared<std::vector<int32_t>>(std::move(tokens));
    return job(env, "node-mamba:prefill",
        [m, slot, toks, mode, out, V] {
          engine::ComputeLock lk(*m);
          check_slot(*m, slot);
          int64_t n = (int64_t)toks->size();
          out->allocate(sizeof(float) * (mode == engine::LogitsMode::All ? (size_t)(n * V) : mode == engine::LogitsMode::Last ? (size_t)V : 0));
          engine::prefill(*m, slot, toks->data(), n, mode, out->as<float>());
        },
        [out, mode](Napi::Env env) -> Napi::Value {
          if (mode == engine::LogitsMode::None) return env.Undefined();
          return adopt_f32(env, *out);
        });
  }

  // step(slots: Int32Array, tokens: Int32Array, output?: 'logits' | 'greedy' | 'sample', params?: Float64Array,
  //      history?: Int32Array, historyOffsets?: Int32Array)
  //   -> Promise<Float32Array [batch, vocab]>; with 'greedy' Promise<Int32Array [batch]> of each
  //      row's most likely next token (engine/greedy.h; -1: NaN or no finite logit); with
  //      'sample' the token drawn from each row with its params and history (kernels/sampling.h,
  //      napi/sample_params.h; -1: a NaN, -2: no finite logit)
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "step");
    ArgReader r{env, Napi::Object::New(env), "step"};
    const int64_t V = m->config().vocab;
    auto slots = std::make_shared<std::vector<int32_t>>();
    auto tokens = std::make_shared<std::vector<int32_t>>();
    read_step_rows(r, info, V, *slots, *tokens);
    for (int32_t s : *slots) check_unchained(env, s, "step");
    std::string output = "logits";
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (!info[2].IsString()) r.type_error("output", "must be 'logits', 'greedy' or 'sample'");
      output = info[2].As<Napi::String>().Utf8Value();
      if (output != "logits" && output != "greedy" && output != "sample")
        r.type_error("output", "must be 'logits', 'greedy' or 'sample'");
    }
    if (output != "logits") {
      // The logits stay in native memory (reused: no fresh pages, nothing
      // for V8 to collect); only the ids come back.
      auto rows = std::make_shared<SampleRows>();
      auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
      if (output == "sample") *rows = read_sample_rows(r, arg(3), arg(4), arg(5), (int64_t)slots->size(), V);
      auto ids = std::make_shared<std::vector<int32_t>>(slots->size());
      auto logits = greedy_logits_;
      return job(env, "node-mamba:step",
          [m, slots, tokens, ids, logits, rows] {
            engine::step_tokens(*m, slots->data(), tokens->data(), (int64_t)slots->size(),
                                rows->params.empty() ? nullptr : rows->params.data(), *logits, ids->data());
          },
          [ids](Napi::Env env) -> Napi::Value {
            Napi::Int32Array a = Napi::Int32Array::New(env, ids->size());
            std::memcpy(a.Data(), ids->data(), ids->size() * sizeof(int32_t));
            return a;
          });
    }
    auto out = std::make_shared<HostBuffer>();
    return job(env, "node-mamba:step",
        [m, slots, tokens, out, V] {
          engine::ComputeLock lk(*m);
          for (int32_t s : *slots) check_slot(*m, s);
          out->allocate(sizeof(float) * slots->size() * (size_t)V);
          engine::decode_step(*m, slots->data(), tokens->data(), (int64_t)slots->size(), out->as<float>());
        },
        [out](Napi::Env env) -> Napi::Value { return adopt_f32(env, *out); });
  }

  // stepChained(slots: Int32Array, tokens: Int32Array, params: Float64Array, history?, historyOffsets?,
  //             nextU: Float64Array [batch]) -> Promise<number[] [batch]>
  //   step(..., 'sample') whose next step runs ahead with the tokens it returns (napi/step_chain.h):
  //   nextU[i] is row i's draw for that step (NaN: row i does not run ahead). Each sequence's next
  //   call must be stepChained with the token returned, or freeing / resetting / restoring it.
  Napi::Value StepChained(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "stepChained");
    ArgReader r{env, Napi::Object::New(env), "stepChained"};
    const int64_t V = m->config().vocab;
    ChainRows step;
    read_step_rows(r, info, V, step.slots, step.tokens);
    const size_t B = step.slots.size();
    auto arg = [&](size_t i) { return info.Length() > i ? info[i] : env.Undefined(); };
    step.rows = read_sample_rows(r, arg(2), arg(3), arg(4), (int64_t)B, V);
    Napi::Value nu = arg(5);
    if (!nu.IsTypedArray() || nu.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      r.type_error("nextU", "must be a Float64Array");
    Napi::Float64Array na = nu.As<Napi::Float64Array>();
    if (na.ElementLength() != B) r.range_error("nextU", "must hold one draw per slot");
    std::vector<double> next_u(na.Data(), na.Data() + B);
    for (size_t i = 0; i < B; ++i)
      if (!std::isnan(next_u[i]) && !(next_u[i] >= 0.0 && next_u[i] < 1.0))
        r.range_error("nextU", "must hold draws in [0, 1) or NaN (at index " + std::to_string(i) + ")");
    if (!chain_) chain_ = StepChain::create(env);
    return chain_->request(env, m, std::move(step), std::move(next_u), greedy_logits_);
  }

  // snapshot(slot) -> Promise<{ state: Uint8Array, position }> (engine/model.h Model::snapshot)
  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    int32_t slot = slot_arg(info, "snapshot");
    auto m = live(info.Env(), "snapshot");
    check_unchained(info.Env(), slot, "snapshot");
    auto out = std::make_shared<std::vector<uint8_t>>();
    auto pos = std::make_shared<int64_t>(0);
    return job(info.Env(), "node-mamba:snapshot",
        [m, slot, out, pos] {
          engine::ComputeLock lk(*m);
          check_slot(*m, slot);
          *out = m->snapshot(slot);
          *pos = m->position(slot);
        },
        [out, pos](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          Napi::Uint8Array a = Napi::Uint8Array::New(env, out->size());
          std::memcpy(a.Data(), out->data(), out->size());
          o.Set("state", a);
          o.Set("position", (double)*pos);
          return o;
        });
  }

  // restore(slot, state: Uint8Array, position) -> Promise<void>
  Napi::Value Restore(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int32_t slot = slot_arg(info, "restore");
    auto m = live(env, "restore");
    ArgReader r{env, Napi::Object::New(env), "restore"};
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      r.type_error("state", "must be a Uint8Array from snapshot()");
    if (info.Length() < 3 || !info[2].IsNumber()) r.type_error("position", "must be an integer");
    const double pd = info[2].As<Napi::Number>().DoubleValue();
    if (!(pd >= 0 && pd <= 9007199254740991.0) || pd != (double)(int64_t)pd) r.range_error("position", "must be an integer >= 0");
    Napi::Uint8Array a = info[1].As<Napi::Uint8Array>();
    auto data = std::make_shared<std::vector<uint8_t>>(a.Data(), a.Data() + a.ElementLength());
    const int64_t position = (int64_t)pd;
    release_chained(slot);
    return job(env, "node-mamba:restore",
        [m, slot, data, position] {
          engine::ComputeLock lk(*m);
          check_slot(*m, slot);
          m->restore(slot, data->data(), data->size(), position);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  // calibrate(tokens: Int32Array, percentile: number in [0, 1], withHead: boolean, gram?: boolean)
  //   -> Promise<{ names, absmax, quantiles, grams?, channels: [{ name, absmax: Float32Array, quantiles }] }>:
  // one calibration sample through a fresh sequence (engine/forward.h
  // ActivationObserver); quantiles[i] holds one value per 512-token chunk;
  // with gram, grams[i] is the layer's Σ xᵀx, a Float64Array [K, K].
  Napi::Value Calibrate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env, "calibrate");
    ArgReader r{env, Napi::Object::New(env), "calibrate"};
    std::vector<int32_t> tokens = copy_int32(r, info[0], "tokens");
    const int64_t V = m->config().vocab;
    if (tokens.empty()) r.range_error("tokens", "must not be empty");
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || tokens[i] >= V)
        r.range_error("tokens", "holds id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                    ", outside the vocabulary [0, " + std::to_string(V) + ")");
    const double pct = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0.0;
    if (!(pct >= 0.0 && pct <= 1.0)) r.range_error("percentile", "must be a number in [0, 1]");
    // The head runs (all logits computed) only when its input is wanted.
    const bool with_head = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    const bool gram = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    auto obs = std::make_shared<engine::ActivationObserver>();
    obs->percentile = pct;
    obs->gram = gram;
    auto toks = std::make_shared<std::vector<int32_t>>(std::move(tokens));
    return job(env, "node-mamba:calibrate",
        [m, toks, obs, with_head, V] {
          engine::ComputeLock lk(*m);
          const int32_t slot = m->alloc_slot();
          try {
            engine::ObserverScope scope(obs.get());
            const int64_t n = (int64_t)toks->size();
            std::vector<float> logits(with_head ? (size_t)(n * V) : 0);
            engine::prefill(*m, slot, toks->data(), n, with_head ? engine::LogitsMode::All : engine::LogitsMode::None,
                            logits.data());
          } catch (...) {
            m->free_slot(slot);
            throw;
          }
          m->free_slot(slot);
        },
        [m, obs](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          const auto layers = m->linear_layers();
          Napi::Array names = Napi::Array::New(env), absmax = Napi::Array::New(env), quant = Napi::Array::New(env);
          Napi::Array grams = Napi::Array::New(env);
          uint32_t i = 0;
          for (const auto& [name, w] : layers) {
            auto it = obs->taps.find(w);
            if (it == obs->taps.end()) continue;
            names.Set(i, name);
            absmax.Set(i, (double)it->second.absmax);
            Napi::Array q = Napi::Array::New(env, it->second.quantiles.size());
            for (size_t k = 0; k < it->second.quantiles.size(); ++k) q.Set((uint32_t)k, (double)it->second.quantiles[k]);
            quant.Set(i, q);
            if (obs->gram) {
              const std::vector<double>& g = it->second.gram;
              Napi::Float64Array ga = Napi::Float64Array::New(env, g.size());
              std::copy(g.begin(), g.end(), ga.Data());
              grams.Set(i, ga);
            }
            ++i;
          }
          o.Set("names", names);
          o.Set("absmax", absmax);
          o.Set("quantiles", quant);
          // The SSM path's channel taps (forward.h ChannelStats).
          Napi::Array channels = Napi::Array::New(env, obs->channels.size());
          uint32_t k = 0;
          for (const auto& [name, st] : obs->channels) {
            Napi::Object c = Napi::Object::New(env);
            c.Set("name", name);
            Napi::Float32Array a = Napi::Float32Array::New(env, st.absmax.size());
            std::copy(st.absmax.begin(), st.absmax.end(), a.Data());
            c.Set("absmax", a);
            Napi::Array q = Napi::Array::New(env, st.quantiles.size());
            for (size_t j = 0; j < st.quantiles.size(); ++j) q.Set((uint32_t)j, (double)st.quantiles[j]);
            c.Set("quantiles", q);
            channels.Set(k++, c);
          }
          o.Set("channels", channels);
          if (obs->gram) o.Set("grams", grams);
          return o;
        });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();  // freed now, or when the last in-flight job ends
    if (chain_) chain_->close(info.Env());
    greedy_logits_ = std::make_shared<std::vector<float>>();
    return info.Env().Undefined();
  }
};

Napi::FunctionReference* NativeModel::ctor = nullptr;

// The model half of loadModel's argument object (engine/load_args.h) as
// the engine's parser reads it: a failure is a JS TypeError / RangeError
// naming the key.
class NapiLoadArgs final : public engine::LoadArgs {
 public:
  explicit NapiLoadArgs(const ArgReader& r) : r_(r) {}
  bool has(const char* key) const override { return r_.has(key); }
  int64_t integer(const char* key, int64_t min, int64_t max) const override { return r_.integer(key, min, max); }
  double number(const char* key) const override {
    if (!r_.obj.Get(key).IsNumber()) r_.type_error(key, "must be a number");
    return r_.number_or(key, 0.0);
  }
  bool boolean(const char* key) const override { return r_.boolean_or(key, false); }
  std::string text(const char* key) const override {
    Napi::Value v = r_.obj.Get(key);
    if (!v.IsString()) r_.type_error(key, "must be a string");
    return v.As<Napi::String>().Utf8Value();
  }
  // layers: [{ mixer, ffn }] (their names checked by the parser).
  bool layers(std::vector<std::pair<std::string, std::string>>& out) const override {
    if (!r_.has("layers")) return false;
    Napi::Value v = r_.obj.Get("layers");
    if (!v.IsArray()) r_.type_error("layers", "must be an array of { mixer, ffn } objects");
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsObject()) r_.type_error("layers[" + std::to_string(i) + "]", "must be a { mixer, ffn } object");
      Napi::Object o = e.As<Napi::Object>();
      out.emplace_back(o.Get("mixer").IsString() ? o.Get("mixer").As<Napi::String>().Utf8Value() : "",
                       o.Get("ffn").IsString() ? o.Get("ffn").As<Napi::String>().Utf8Value() : "");
    }
    return true;
  }
  [[noreturn]] void type_error(const std::string& key, const std::string& what) const override { r_.type_error(key, what); }
  [[noreturn]] void range_error(const std::string& key, const std::string& what) const override { r_.range_error(key, what); }

 private:
  const ArgReader& r_;
};

// loadModel({ arch, dModel, ..., files: string[], tensors: [{ name, file, offset, nbytes, dtype, shape }] })
Napi::Value load_model(const Napi::CallbackInfo& info) {
  ArgReader r = reader(info, "loadModel");
  Napi::Env env = r.env;
  const engine::ModelConfig cfg = engine::parse_model_config(NapiLoadArgs(r));
  const int64_t big = int64_t(1) << 31;
  if (r.has("threads")) cpu::pool().resize((int)r.integer("threads", 1, 1024));

  Napi::Value fv = r.obj.Get("files");
  if (!fv.IsArray()) r.type_error("files", "must be an array of paths");
  Napi::Array fa = fv.As<Napi::Array>();
  std::vector<std::string> files;
  for (uint32_t i = 0; i < fa.Length(); ++i) {
    Napi::Value v = fa.Get(i);
    if (!v.IsString()) r.type_error("files", "must hold strings");
    files.push_back(v.As<Napi::String>().Utf8Value());
  }
  Napi::Value tv = r.obj.Get("tensors");
  if (!tv.IsArray()) r.type_error("tensors", "must be an array");
  Napi::Array ta = tv.As<Napi::Array>();
  std::vector<engine::TensorSource> tensors;
  for (uint32_t i = 0; i < ta.Length(); ++i) {
    Napi::Value v = ta.Get(i);
    if (!v.IsObject()) r.type_error("tensors", "must hold objects");
    Napi::Object o = v.As<Napi::Object>();
    engine::TensorSource t;
    if (!o.Get("name").IsString()) r.type_error("tensors[" + std::to_string(i) + "].name", "must be a string");
    t.name = o.Get("name").As<Napi::String>().Utf8Value();
    const std::string what = "tensors[" + t.name + "]";
    t.file = (int32_t)int_field(r, o, "file", what + ".file", 0, (int64_t)files.size() - 1);
    t.offset = (uint64_t)int_field(r, o, "offset", what + ".offset", 0, int64_t(1) << 53);
    t.nbytes = (uint64_t)int_field(r, o, "nbytes", what + ".nbytes", 0, int64_t(1) << 53);
    t.dtype = parse_dtype(r, o.Get("dtype"), what + ".dtype");
    Napi::Value sv = o.Get("shape");
    if (!sv.IsArray()) r.type_error(what + ".shape", "must be an array");
    Napi::Array sa = sv.As<Napi::Array>();
    if (sa.Length() > 8) r.range_error(what + ".shape", "has too many dimensions");
    for (uint32_t k = 0; k < sa.Length(); ++k) {
      Napi::Value dv = sa.Get(k);
      if (!dv.IsNumber()) r.type_error(what + ".shape", "must hold integers");
      double d = dv.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d <= (double)big) || d != (double)(int64_t)d) r.range_error(what + ".shape", "must hold sizes in [0, 2^31]");
      t.shape.push_back((int64_t)d);
    }
    tensors.push_back(std::move(t));
  }

  // backend: 'cpu' (default) | 'cpu-device-emulation' (the tests' check of the device seam) | 'cuda'
  // (a CUDA build; engine/backend.h).
  constexpr std::pair<const char*, engine::BackendKind> kBackends[] = {
      {"cpu", engine::BackendKind::Cpu},
      {"cpu-device-emulation", engine::BackendKind::DeviceEmulation},
      {"cuda", engine::BackendKind::Cuda}};
  const engine::BackendKind backend = read_choice(r, "backend", kBackends);

  auto model = std::make_shared<std::shared_ptr<Model>>();
  return PromiseWorker::run(env, "node-mamba:loadModel",
      [cfg, files, tensors, model, backend] { *model = Model::load(cfg, files, tensors, backend); },
      [model](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<std::shared_ptr<Model>>::New(env, model.get());
        Napi::Object o = NativeModel::ctor->New({ext});
        return o;
      });
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  NativeModel::Init(env, exports);
  exports.Set("loadModel", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, load_model); }));
}

}  // namespace nm::napi
