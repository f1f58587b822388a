// JS entry points of the selective_scan kernels.
#include <napi.h>

#include "napi/bindings.h"
#include "napi/convert.h"

namespace nm::napi {

void register_selective_scan(Napi::Env env, Napi::Object exports) {}

}  // namespace nm::napi
