// The native module's export table. Each kernel family registers its own
// functions (napi/<family>_binding.cpp); nothing here computes.
#include <napi.h>

#include "napi/bindings.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  nm::napi::register_runtime(env, exports);
  nm::napi::register_norm(env, exports);
  nm::napi::register_conv1d(env, exports);
  nm::napi::register_linear(env, exports);
  nm::napi::register_qlinear(env, exports);
  nm::napi::register_moe(env, exports);
  nm::napi::register_selective_scan(env, exports);
  nm::napi::register_ssd(env, exports);
  nm::napi::register_attention(env, exports);
  nm::napi::register_hadamard(env, exports);
  nm::napi::register_model(env, exports);
  nm::napi::register_bench(env, exports);
  nm::napi::register_arith_peak(env, exports);
  nm::napi::register_sampling(env, exports);
  return exports;
}

NODE_API_MODULE(node_mamba, Init)
