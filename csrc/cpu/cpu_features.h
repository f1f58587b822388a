// Which instruction-set level the CPU kernels use, chosen once at load time.
#pragma once
#include <string>

namespace nm::cpu {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);

// Highest level this CPU (and OS) supports.
Isa detected_isa();

// Level the kernels use now: min(detected, cap). The cap starts from the
// environment variable NODE_MAMBA_ISA (scalar | avx2 | avx512) if set.
Isa active_isa();

// Cap the dispatch at `cap` (never above what the CPU supports). Returns the
// level now active. Tests use this to force the lower paths.
Isa set_isa_cap(Isa cap);

// Parse "scalar" / "avx2" / "avx512"; returns false on anything else.
bool parse_isa(const std::string& name, Isa* out);

}  // namespace nm::cpu
