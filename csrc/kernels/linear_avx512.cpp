// linear kernels compiled for the avx512 level (see kernels/simd/README.md).
// GCC 12 reports a false -Wuninitialized inside _mm512_reduce_add_ps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#define NM_ISA avx512
#define NM_LINEAR_LANES 16  // enables the in-register transpose in linear_impl.h
#include "kernels/simd/simd_avx512.h"
#include "kernels/linear_impl.h"
