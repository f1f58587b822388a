// Out-of-line parts of the weight-format table (core/dtype.h).
#include "core/dtype.h"

#include <stdexcept>
#include <string>

namespace nm {

void throw_unknown_dtype(DType t) {
  throw std::invalid_argument("node-mamba: unknown weight format id " + std::to_string((int32_t)t));
}

void throw_unreadable_dtype(DType t) {
  throw std::invalid_argument(std::string("node-mamba: weight format ") + dtype_info(t).name +
                              " has separate scales and cannot be read element by element");
}

bool dtype_from_name(const char* name, DType* out) {
  for (const DTypeInfo& f : kDTypeTable) {
    if (std::string(f.name) == name) {
      *out = f.type;
      return true;
    }
  }
  return false;
}

}  // namespace nm
