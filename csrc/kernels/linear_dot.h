// GEMV with rounded activations on dot-product instructions (semantics in
// linear.h, "Rounded activations"): nm::avx512vnni in
// linear_dot_avx512vnni.cpp (AVX-512 + VNNI + BF16 flags), called by
// linear.cpp only at that level; nm::avx2dot in linear_dot_avx2.cpp (AVX2
// flags), Q4_0's int8 path at the AVX2 and AVX-512 levels. x86-64 only
// (NM_LINEAR_DOT is 0 elsewhere).
#pragma once
#include <cstdint>

#include "kernels/linear.h"

#if defined(__x86_64__) || defined(_M_X64)
#define NM_LINEAR_DOT 1
#else
#define NM_LINEAR_DOT 0
#endif

#if defined(__F16C__)
// Helpers of the dot-product units (compiled with F16C: both ISA units that
// include this; static, so no weak symbol in an ISA object).
#include <immintrin.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define NM_DOT_PREFETCH_L2(addr) __builtin_prefetch((const void*)(addr), 0, 2)
#else
#define NM_DOT_PREFETCH_L2(addr) ((void)(addr))
#endif

namespace nm::dot {
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
// The f16 at p (a Q8_0 / Q4_0 block's scale) as float.
static inline float half_at(const uint8_t* p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
}  // namespace nm::dot
#endif

namespace nm::avx512vnni {

// x quantized per 32-element block (ActRounding::Q8Block) in the layout the
// int8 GEMV reads: for each pair p of blocks (p < pairs = ceil(K / 64)) and
// each row m, a 192-byte record at base + (p * M + m) * kQ8Record:
//   bytes 0-63     q, int8, the pair's 64 quantized inputs (0 past K)
//   bytes 64-127   16 int32: -128 * (sum of each 4 consecutive q)
//   bytes 128-191  16 float scales: lanes 0-7 block 2p, lanes 8-15 block 2p + 1
// Rows of a pair are adjacent so that a tile reaches them through one pointer.
constexpr int64_t kQ8Record = 192;
struct Q8Rows {
  char* base = nullptr;  // 64-byte aligned
  int64_t M = 0, pairs = 0;
};

// Bytes of a Q8Rows buffer for M rows of K elements (carve with q8_rows_at;
// static: plain arithmetic, callable at any level, no weak symbol in an ISA
// object).
static inline int64_t q8_rows_bytes(int64_t M, int64_t K) { return M * ((K / kQuantBlock + 1) / 2) * kQ8Record; }
static inline Q8Rows q8_rows_at(void* buf, int64_t M, int64_t K) {  // buf 64-byte aligned
  Q8Rows r;
  r.base = static_cast<char*>(buf);
  r.M = M;
  r.pairs = (K / kQuantBlock + 1) / 2;
  return r;
}

// Quantizes rows [0, M) of x (stride xs; row m at x_rows[m] when given), K a
// multiple of 32.
void quantize_q8_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K, const Q8Rows& out);

// x (rows as quantize_q8_rows) rounded to bfloat16 (nearest even), zero past K, interleaved by chunks of
// 32: chunk c of row m at out + (c * M + m) * 32; M * bf16_row_elems(K)
// values in all. out 64-byte aligned.
int64_t bf16_row_elems(int64_t K);
void round_bf16_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K, uint16_t* out);

// Unit of weight rows linear.cpp splits N into (as linear_gemv_split_rows).
int64_t dot_split_rows(int64_t M, DType w_dtype);

// y[:, n0:n1] for all M rows of a: Q8_0 / Q4_0 weights against q (vpdpbusd),
// or BF16 weights against xb (vdpbf16ps; CPU must have AVX512_BF16).
void gemv_q8dot(const LinearArgs& a, const Q8Rows& q, int64_t n0, int64_t n1);
void gemv_bf16dot(const LinearArgs& a, const uint16_t* xb, int64_t n0, int64_t n1);

}  // namespace nm::avx512vnni

namespace nm::avx2dot {

// As nm::avx512vnni's, in the same Q8Rows records (q, corr, scales), with
// AVX2 instructions; the GEMV for Q4_0 weights only.
void quantize_q8_rows(const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K,
                      const avx512vnni::Q8Rows& out);
int64_t dot_split_rows(int64_t M);
void gemv_q4dot(const LinearArgs& a, const avx512vnni::Q8Rows& q, int64_t n0, int64_t n1);

}  // namespace nm::avx2dot
