// linear kernels compiled for the avx2 level (see kernels/simd/README.md).
#define NM_ISA avx2
#define NM_LINEAR_LANES 8  // enables the in-register transpose in linear_impl.h
#include "kernels/simd/simd_avx2.h"
#include "kernels/linear_impl.h"
