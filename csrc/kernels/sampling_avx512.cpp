// sampling kernels compiled for the avx512 level (see kernels/simd/README.md).
#define NM_ISA avx512
#include "kernels/simd/simd_avx512.h"
#include "kernels/sampling_impl.h"
