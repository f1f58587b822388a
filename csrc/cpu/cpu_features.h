// Which instruction-set level the CPU kernels use, chosen once at load time.
#pragma once
#include <string>

namespace nm::cpu {

// Avx512Vnni is AVX-512 plus the VNNI int8 dot product (vpdpbusd); only the
// linear kernel's reduced-precision GEMV has code for it (linear.h), every
// other kernel runs its avx512 copy at that level.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3 };

const char* isa_name(Isa isa);

// Highest level this CPU (and OS) supports.
Isa detected_isa();

// Level the kernels use now: min(detected, cap). The cap starts from the
// environment variable NODE_MAMBA_ISA (scalar | avx2 | avx512 | avx512vnni)
// if set.
Isa active_isa();

// Cap the dispatch at `cap` (never above what the CPU supports). Returns the
// level now active. Tests use this to force the lower paths.
Isa set_isa_cap(Isa cap);

// Whether the CPU has AVX512_BF16 (vdpbf16ps). Used only at the Avx512Vnni
// level (a cap below it turns it off too).
bool has_avx512_bf16();

// Parse "scalar" / "avx2" / "avx512" / "avx512vnni"; false on anything else.
bool parse_isa(const std::string& name, Isa* out);

}  // namespace nm::cpu
