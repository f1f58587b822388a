// sampling kernels compiled for the scalar level (see kernels/simd/README.md).
#define NM_ISA scalar
#include "kernels/simd/simd_scalar.h"
#include "kernels/sampling_impl.h"
