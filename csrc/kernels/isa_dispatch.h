// Declaring and calling the per-level copies of a kernel
// (nm::scalar::f, nm::avx2::f, nm::avx512::f; see kernels/simd/README.md).
#pragma once
#include "cpu/cpu_features.h"

#define NM_DECLARE_ISA_FN(decl) \
  namespace scalar { decl; }    \
  namespace avx2 { decl; }      \
  namespace avx512 { decl; }

// Calls the copy of `fn` for the active level.
#define NM_ISA_CALL(fn, ...)                                   \
  do {                                                         \
    switch (::nm::cpu::active_isa()) {                         \
      case ::nm::cpu::Isa::Avx512Vnni:                         \
      case ::nm::cpu::Isa::Avx512: ::nm::avx512::fn(__VA_ARGS__); break; \
      case ::nm::cpu::Isa::Avx2: ::nm::avx2::fn(__VA_ARGS__); break;     \
      default: ::nm::scalar::fn(__VA_ARGS__); break;           \
    }                                                          \
  } while (0)
