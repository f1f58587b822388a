// JS entry points of the linear kernels.
#include <napi.h>

#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

void register_linear(Napi::Env env, Napi::Object exports) {}

}  // namespace nm::napi
