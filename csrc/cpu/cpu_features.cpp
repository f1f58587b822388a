#include "cpu/cpu_features.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#define NM_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace nm::cpu {

namespace {

#if NM_X86
void cpuid(int leaf, int sub, uint32_t r[4]) {
#if defined(_MSC_VER)
  int regs[4];
  __cpuidex(regs, leaf, sub);
  for (int i = 0; i < 4; ++i) r[i] = (uint32_t)regs[i];
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

uint64_t xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
#endif
}
#endif

Isa detect() {
#if NM_X86
  uint32_t r[4];
  cpuid(0, 0, r);
  uint32_t max_leaf = r[0];
  if (max_leaf < 7) return Isa::Scalar;
  cpuid(1, 0, r);
  bool osxsave = (r[2] >> 27) & 1, fma = (r[2] >> 12) & 1, f16c = (r[2] >> 29) & 1,
       avx = (r[2] >> 28) & 1;
  if (!osxsave || !avx) return Isa::Scalar;
  uint64_t xcr0 = xgetbv0();
  bool ymm_os = (xcr0 & 0x6) == 0x6;
  bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  cpuid(7, 0, r);
  bool avx2 = (r[1] >> 5) & 1;
  bool avx512f = (r[1] >> 16) & 1, avx512dq = (r[1] >> 17) & 1, avx512bw = (r[1] >> 30) & 1,
       avx512vl = (r[1] >> 31) & 1;
  if (!(ymm_os && avx2 && fma && f16c)) return Isa::Scalar;
  const bool avx512vnni = (r[2] >> 11) & 1;
  if (zmm_os && avx512f && avx512dq && avx512bw && avx512vl) return avx512vnni ? Isa::Avx512Vnni : Isa::Avx512;
  return Isa::Avx2;
#else
  return Isa::Scalar;
#endif
}

bool detect_bf16() {
#if NM_X86
  uint32_t r[4];
  cpuid(0, 0, r);
  if (r[0] < 7) return false;
  cpuid(7, 0, r);
  if (r[0] < 1) return false;  // no sub-leaf 1
  cpuid(7, 1, r);
  return (r[0] >> 5) & 1;      // EAX bit 5: AVX512_BF16
#else
  return false;
#endif
}

Isa initial_cap() {
  const char* env = std::getenv("NODE_MAMBA_ISA");
  Isa cap = Isa::Avx512Vnni;
  if (env && *env) parse_isa(env, &cap);
  return cap;
}

std::atomic<int>& cap_ref() {
  static std::atomic<int> cap{(int)initial_cap()};
  return cap;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512Vnni: return "avx512vnni";
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

bool parse_isa(const std::string& name, Isa* out) {
  if (name == "scalar" || name == "portable") { *out = Isa::Scalar; return true; }
  if (name == "avx2") { *out = Isa::Avx2; return true; }
  if (name == "avx512") { *out = Isa::Avx512; return true; }
  if (name == "avx512vnni") { *out = Isa::Avx512Vnni; return true; }
  return false;
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

bool has_avx512_bf16() {
  static const bool bf16 = detected_isa() == Isa::Avx512Vnni && detect_bf16();
  return bf16;
}

Isa active_isa() {
  int cap = cap_ref().load(std::memory_order_relaxed);
  int det = (int)detected_isa();
  return (Isa)(cap < det ? cap : det);
}

Isa set_isa_cap(Isa cap) {
  cap_ref().store((int)cap, std::memory_order_relaxed);
  return active_isa();
}

}  // namespace nm::cpu
