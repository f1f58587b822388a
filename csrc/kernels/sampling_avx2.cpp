// sampling kernels compiled for the avx2 level (see kernels/simd/README.md).
#define NM_ISA avx2
#include "kernels/simd/simd_avx2.h"
#include "kernels/sampling_impl.h"
