// Runtime information and settings: ISA level, thread count, CUDA status.
#include <napi.h>

#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#include "gpu/cuda_status.h"
#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

namespace {

Napi::Value runtime_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", cpu::isa_name(cpu::active_isa()));
  o.Set("detectedIsa", cpu::isa_name(cpu::detected_isa()));
  o.Set("threads", cpu::pool().size());
  o.Set("physicalCores", cpu::physical_core_count());
  o.Set("recomputedRanges", (double)cpu::pool().recomputed_ranges());
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
