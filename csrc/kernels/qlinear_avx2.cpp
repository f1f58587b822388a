// qlinear compiled for the avx2 level (vpmaddubsw / vpmaddwd; see qlinear_x86_ops.h).
#if defined(__x86_64__) || defined(_M_X64)
#define NM_QLINEAR_NS avx2
#include "kernels/qlinear_x86_ops.h"
#include "kernels/qlinear_impl.h"
#endif
