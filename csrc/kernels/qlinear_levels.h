// The per-level entry points of the qlinear kernels (qlinear_impl.h, one
// copy per ISA level) and the choice of the active level's copy: shared by
// the callers that prepare their inputs (qlinear.cpp, ggml_panels.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/cpu_features.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"

namespace nm {

#define NM_QLINEAR_DECLS                                                                               \
  void qlinear_rows(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* scratch); \
  bool qlinear_quantize_row(const float* x, int64_t K, float inv, int8_t* q);                          \
  bool qlinear_wide_i8();                                                                              \
  int qlinear_u4_lanes();                                                                              \
  void q8_block_quantize_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t m0, int64_t m1, int64_t K,   \
                          int8_t* q, float* d, int32_t* sum);
namespace scalar { NM_QLINEAR_DECLS }
#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 { NM_QLINEAR_DECLS }
namespace avx512 { NM_QLINEAR_DECLS }
namespace avx512vnni { NM_QLINEAR_DECLS }
#endif
#undef NM_QLINEAR_DECLS

// Per-thread scratch of `count` T reused across calls (64-byte aligned).
template <typename T>
T* scratch(std::vector<char>& buf, int64_t count) {
  const int64_t bytes = count * (int64_t)sizeof(T) + 64;
  if ((int64_t)buf.size() < bytes) buf.resize((size_t)bytes);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<T*>((p + 63) / 64 * 64);
}

// Weight rows [n0, n1) for every input row, at the active level.
inline void qlinear_rows_for_level(const QLinearArgs& a, const QInput& in, int64_t n0, int64_t n1, uint8_t* scratch) {
  switch (cpu::active_isa()) {
#if defined(__x86_64__) || defined(_M_X64)
    case cpu::Isa::Avx512Vnni: avx512vnni::qlinear_rows(a, in, n0, n1, scratch); break;
    case cpu::Isa::Avx512: avx512::qlinear_rows(a, in, n0, n1, scratch); break;
    case cpu::Isa::Avx2: avx2::qlinear_rows(a, in, n0, n1, scratch); break;
#endif
    default: scalar::qlinear_rows(a, in, n0, n1, scratch); break;
  }
}

// q8_block_quantize_rows at the active level.
inline void q8_block_quantize_rows_for_level(const float* x, int64_t xs, const int32_t* x_rows, int64_t m0, int64_t m1,
                                         int64_t K, int8_t* q, float* d, int32_t* sum) {
  switch (cpu::active_isa()) {
#if defined(__x86_64__) || defined(_M_X64)
    case cpu::Isa::Avx512Vnni: avx512vnni::q8_block_quantize_rows(x, xs, x_rows, m0, m1, K, q, d, sum); break;
    case cpu::Isa::Avx512: avx512::q8_block_quantize_rows(x, xs, x_rows, m0, m1, K, q, d, sum); break;
    case cpu::Isa::Avx2: avx2::q8_block_quantize_rows(x, xs, x_rows, m0, m1, K, q, d, sum); break;
#endif
    default: scalar::q8_block_quantize_rows(x, xs, x_rows, m0, m1, K, q, d, sum); break;
  }
}

}  // namespace nm
