// JS entry points of the ssd kernels.
#include <napi.h>

#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

void register_ssd(Napi::Env env, Napi::Object exports) {}

}  // namespace nm::napi
