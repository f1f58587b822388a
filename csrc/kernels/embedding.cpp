#include "kernels/embedding.h"

#include <stdexcept>
#include <string>

#include "kernels/qlinear.h"

namespace nm {

void embedding(const EmbeddingArgs& a) {
  const bool quamba = dtype_info(a.dtype).linear == LinearKernel::Quamba;
  if (a.n < 0 || a.dim < 0 || (a.n > 0 && (!a.table || !a.tokens || !a.out)))
    throw std::invalid_argument("node-mamba: embedding: bad sizes or null pointers");
  if (dtype_info(a.dtype).scales == ScaleLayout::InBlock && a.dim % kQuantBlock != 0)
    throw std::invalid_argument(std::string("node-mamba: embedding: a ") + dtype_name(a.dtype) +
                                " table needs a row length that 32 divides");
  if (quamba && !a.scales) throw std::invalid_argument("node-mamba: embedding: an I8 / I4 table needs its scales");
  for (int64_t t = 0; t < a.n; ++t)
    if (a.tokens[t] < 0 || a.tokens[t] >= a.rows)
      throw std::invalid_argument("node-mamba: embedding: token " + std::to_string(a.tokens[t]) + " outside [0, " +
                                  std::to_string(a.rows) + ")");
  if (quamba || a.layout == WeightLayout::Panels) {  // I8 / I4 (rows or panels), Q8_0 / Q4_0 panels
    const int64_t stride = dtype_row_bytes(a.dtype, a.dim);
    for (int64_t t = 0; t < a.n; ++t)
      qweight_row_to_f32(a.table, a.dtype, stride, a.scales, a.tokens[t], a.dim, a.out + t * a.dim, a.layout);
  } else {
    for (int64_t t = 0; t < a.n; ++t)
      load_row_as_f32(a.table, a.dtype, (int64_t)a.tokens[t] * a.dim, a.dim, a.out + t * a.dim);
  }
}

}  // namespace nm
