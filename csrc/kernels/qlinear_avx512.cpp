// qlinear compiled for the avx512 level (512-bit vpmaddubsw / vpmaddwd, no
// VNNI; see qlinear_x86_ops.h).
#if defined(__x86_64__) || defined(_M_X64)
// GCC 12 reports a false -Wuninitialized inside _mm512_reduce_add_ps (as in
// qlinear_avx512vnni.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#define NM_QLINEAR_NS avx512
#define NM_QLINEAR_512
#include "kernels/qlinear_x86_ops.h"
#include "kernels/qlinear_impl.h"
#endif
