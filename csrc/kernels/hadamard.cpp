#include "kernels/hadamard.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void hadamard_rows(const HadamardArgs& a, const HadamardShape& s, float scale, int64_t r0, int64_t r1))
NM_DECLARE_ISA_FN(void hadamard_quantize_rows(const HadamardQuantArgs& a, const HadamardShape& s, float fold,
                                              float* scratch, int64_t r0, int64_t r1))

namespace {

// n = m·p with m in {1, 12, 40} and p a power of two (unique when it exists).
bool decompose(int64_t n, int* m, int64_t* p) {
  if (n <= 0) return false;
  for (int mm : {1, 12, 40}) {
    if (n % mm != 0) continue;
    const int64_t q = n / mm;
    if ((q & (q - 1)) == 0) {
      *m = mm;
      *p = q;
      return true;
    }
  }
  return false;
}

HadamardShape shape_of(int64_t n, bool transpose) {
  HadamardShape s;
  if (!decompose(n, &s.m, &s.p))
    throw std::invalid_argument("hadamard: unsupported size " + std::to_string(n) + " (need 2^k, 12*2^k or 40*2^k)");
  s.n = n;
  s.transpose = transpose;
  return s;
}

// Rows per task: a row costs about n·(log2 p + 21) additions (~1 µs at
// n = 1536 on AVX-512); a task below ~8 µs of work costs more to hand to
// another thread than it saves.
int64_t row_grain(const HadamardShape& s) {
  int64_t lg = 0;
  while ((int64_t(1) << lg) < s.p) ++lg;
  const int64_t work = s.n * (lg + (s.m == 1 ? 1 : s.m == 12 ? 12 : 21));
  const int64_t target = int64_t(1) << 18;
  return work >= target ? 1 : (target + work - 1) / work;
}

// n floats of the calling thread, reused across calls (64-byte aligned).
float* thread_scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if ((int64_t)buf.size() < n + 16) buf.resize((size_t)(n + 16));
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) / 64 * 64);
}

}  // namespace

bool hadamard_size_supported(int64_t n) {
  int m = 0;
  int64_t p = 0;
  return decompose(n, &m, &p);
}

void hadamard_transform(const HadamardArgs& a) {
  const HadamardShape s = shape_of(a.n, a.transpose);
  if (a.rows <= 0) return;
  const float scale = (float)(1.0 / std::sqrt((double)a.n));
  cpu::parallel_for(a.rows, row_grain(s), [&](int64_t r0, int64_t r1) {
    NM_ISA_CALL(hadamard_rows, a, s, scale, r0, r1);
  });
}

void hadamard_quantize(const HadamardQuantArgs& a) {
  const HadamardShape s = shape_of(a.n, false);
  if (a.rows <= 0) return;
  const float fold = (float)((double)a.inv_scale / std::sqrt((double)a.n));
  cpu::parallel_for(a.rows, row_grain(s), [&](int64_t r0, int64_t r1) {
    float* scratch = thread_scratch(a.n);
    NM_ISA_CALL(hadamard_quantize_rows, a, s, fold, scratch, r0, r1);
  });
}

}  // namespace nm
