// Runtime information and settings: ISA level, thread count, CUDA status.
#include <napi.h>

#include <algorithm>
#include <vector>

#include "cpu/ab_trial.h"
#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#include "gpu/cuda_status.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

// One variant's recorded step times (cpu/ab_trial.h): count, median and mean in microseconds.
Napi::Object trial_variant(Napi::Env env, std::vector<int64_t> ns) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("steps", (double)ns.size());
  double median = 0, mean = 0;
  if (!ns.empty()) {
    std::sort(ns.begin(), ns.end());
    const size_t h = ns.size() / 2;
    median = ns.size() % 2 ? (double)ns[h] : 0.5 * ((double)ns[h - 1] + (double)ns[h]);
    for (int64_t v : ns) mean += (double)v;
    mean /= (double)ns.size();
  }
  o.Set("medianUs", median / 1e3);
  o.Set("meanUs", mean / 1e3);
  return o;
}

Napi::Value runtime_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", cpu::isa_name(cpu::active_isa()));
  o.Set("detectedIsa", cpu::isa_name(cpu::detected_isa()));
  o.Set("threads", cpu::pool().size());
  o.Set("physicalCores", cpu::physical_core_count());
  o.Set("recomputedRanges", (double)cpu::pool().recomputed_ranges());
  o.Set("backgroundProducts", (double)cpu::pool().detached_calls());
  const cpu::AbTrialTimes trial = cpu::ab_trial_times();
  if (trial.block_steps > 0) {
    Napi::Object ab = Napi::Object::New(env);
    ab.Set("blockSteps", (double)trial.block_steps);
    ab.Set("warmupSteps", (double)trial.warmup_steps);
    ab.Set("a", trial_variant(env, trial.a_ns));
    ab.Set("b", trial_variant(env, trial.b_ns));
    o.Set("abTrial", ab);
  }
  const gpu::CudaStatus& cs = gpu::cuda_status();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", cs.compiled);
  cuda.Set("usable", cs.usable);
  if (!cs.usable) cuda.Set("reason", cs.reason);
  cuda.Set("driverVersion", cs.driver_version);
  cuda.Set("runtimeVersion", cs.runtime_version);
  Napi::Array devices = Napi::Array::New(env, cs.devices.size());
  for (size_t i = 0; i < cs.devices.size(); ++i) {
    const gpu::CudaDevice& d = cs.devices[i];
    Napi::Object dev = Napi::Object::New(env);
    dev.Set("index", d.index);
    dev.Set("name", d.name);
    dev.Set("computeCapability", std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor));
    dev.Set("totalBytes", (double)d.total_bytes);
    dev.Set("multiprocessors", d.multiprocessors);
    dev.Set("supported", d.supported);
    devices.Set((uint32_t)i, dev);
  }
  cuda.Set("devices", devices);
  o.Set("cuda", cuda);
  return o;
}

Napi::Value set_isa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(env, "node-mamba: setIsa: argument 'isa' must be 'scalar', 'avx2', 'avx512' or 'avx512vnni'");
  cpu::Isa isa;
  if (!cpu::parse_isa(info[0].As<Napi::String>().Utf8Value(), &isa))
    throw Napi::RangeError::New(env, "node-mamba: setIsa: argument 'isa' must be 'scalar', 'avx2', 'avx512' or 'avx512vnni'");
  return Napi::String::New(env, cpu::isa_name(cpu::set_isa_cap(isa)));
}

Napi::Value set_threads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber())
    throw Napi::TypeError::New(env, "node-mamba: setThreads: argument 'threads' must be an integer");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 1024) || d != (double)(int)d)
    throw Napi::RangeError::New(env, "node-mamba: setThreads: argument 'threads' must be an integer in [1, 1024]");
  cpu::pool().resize((int)d);
  return Napi::Number::New(env, cpu::pool().size());
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeInfo", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, runtime_info); }));
  exports.Set("setIsa", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, set_isa); }));
  exports.Set("setThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return guarded(i, set_threads); }));
}

}  // namespace nm::napi
