// One registration function per binding file.
#pragma once
#include <napi.h>

namespace nm::napi {
void register_runtime(Napi::Env env, Napi::Object exports);          // runtime_binding.cpp
void register_norm(Napi::Env env, Napi::Object exports);             // norm_binding.cpp
void register_conv1d(Napi::Env env, Napi::Object exports);           // conv1d_binding.cpp
void register_linear(Napi::Env env, Napi::Object exports);
void register_moe(Napi::Env env, Napi::Object exports);              // moe_binding.cpp
void register_qlinear(Napi::Env env, Napi::Object exports);          // qlinear_binding.cpp
void register_selective_scan(Napi::Env env, Napi::Object exports);   // selective_scan_binding.cpp
void register_ssd(Napi::Env env, Napi::Object exports);              // ssd_binding.cpp
void register_attention(Napi::Env env, Napi::Object exports);        // attention_binding.cpp
void register_hadamard(Napi::Env env, Napi::Object exports);         // hadamard_binding.cpp
void register_model(Napi::Env env, Napi::Object exports);           // model_binding.cpp
void register_bench(Napi::Env env, Napi::Object exports);           // bench_binding.cpp
void register_arith_peak(Napi::Env env, Napi::Object exports);      // arith_peak_binding.cpp
void register_sampling(Napi::Env env, Napi::Object exports);        // sampling_binding.cpp
}  // namespace nm::napi
