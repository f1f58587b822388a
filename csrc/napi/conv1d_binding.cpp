// JS entry points of the conv1d kernels.
#include <napi.h>

#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

void register_conv1d(Napi::Env env, Napi::Object exports) {}

}  // namespace nm::napi
