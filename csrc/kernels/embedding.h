// Embedding rows: out[t, :] = row tokens[t] of a [rows, dim] table as
// float32, in any weight format of core/dtype.h: copied (f32), widened (f16 /
// bf16), dequantised block by block (Q8_0 / Q4_0; dim a multiple of 32;
// Q8_0 / Q4_0 also in panels) or with the separate scales (I8 / I4, value = scale ·
// q; rows or panels).
// The CUDA twin (cuda/kernels.h embedding_cuda) reads the Rows layout.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace nm {

struct EmbeddingArgs {
  const void* table = nullptr;
  DType dtype = DType::F32;
  WeightLayout layout = WeightLayout::Rows;  // I8 / I4 / Q8_0 / Q4_0 tables may be packed in panels
  const float* scales = nullptr;             // I8: [rows]; I4: [rows, ceil(dim / 128)] (panels: reordered)
  int64_t rows = 0;               // table rows (the vocabulary)
  int64_t dim = 0;                // row length
  const int32_t* tokens = nullptr;  // [n], each in [0, rows)
  int64_t n = 0;
  float* out = nullptr;           // [n, dim], dense
};

// Throws std::invalid_argument for a token outside [0, rows) or a table
// that the format cannot read (a Q8_0 / Q4_0 dim that 32 does not divide, I8
// / I4 without scales).
void embedding(const EmbeddingArgs& a);

}  // namespace nm
