#include "kernels/linear.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void linear_gemv(const LinearArgs& a, int64_t n0, int64_t n1))
NM_DECLARE_ISA_FN(void linear_gemm(const LinearArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* scratch))
NM_DECLARE_ISA_FN(void linear_gemv_split_rows(int64_t M, int64_t* rows))
NM_DECLARE_ISA_FN(void linear_gemm_geometry(int64_t* mr, int64_t* nr, int64_t* scratch_floats))

namespace {

void run_gemv(const LinearArgs& a) {
  // Work is split over units of weight rows that keep the impl's tiles
  // whole: one tile (R rows) when all M input rows form one chunk, else a
  // group of kGemvGroup (24) rows, whose rows stay in L2 for every chunk.
  // Splitting by tiles evens out small N (x_proj, N = 80: 40 + 40 rows
  // instead of 48 + 32 with 24-row groups). A task should stream at least
  // ~16K weights (or do ~64K FMAs) to be worth a thread wake-up: at 64K,
  // dt_proj [1536x48] (74K weights) ran on one thread, 1.4-1.7x slower
  // than on two (bench/NOTES.md).
  int64_t unit = 24;
  NM_ISA_CALL(linear_gemv_split_rows, a.M, &unit);
  const int64_t units = (a.N + unit - 1) / unit;
  const int64_t per_unit = unit * std::max<int64_t>(a.K, 1) * std::max<int64_t>(a.M, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / per_unit);
  cpu::parallel_for(units, grain, [&](int64_t u0, int64_t u1) {
    NM_ISA_CALL(linear_gemv, a, u0 * unit, std::min(a.N, u1 * unit));
  });
}

void run_gemm(const LinearArgs& a) {
  int64_t mr = 1, nr = 1, scratch_floats = 0;
  NM_ISA_CALL(linear_gemm_geometry, &mr, &nr, &scratch_floats);
  const int64_t strips = (a.N + nr - 1) / nr, mtiles = (a.M + mr - 1) / mr;
  // Below ~1M FMAs one thread is faster than waking another.
  const double fmas = (double)a.M * (double)a.N * (double)std::max<int64_t>(a.K, 1);
  const int64_t max_tasks = fmas < double(1 << 20) ? 1 : std::min<int64_t>(strips * mtiles, 1 << 16);
  const int64_t want = std::min<int64_t>(max_tasks, cpu::pool().size());
  // Per-thread scratch, each slice 64-byte aligned.
  const int64_t slice = (scratch_floats + 15) / 16 * 16;
  std::vector<float> scratch((size_t)(slice * want + 16));
  float* base = scratch.data();
  base += (16 - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % 16) % 16;
  cpu::pool().run((int)want, [&](int ith, int nth) {
    // Split N across threads while there are enough column strips, and M
    // as well when N is narrow.
    const int64_t tn = std::min<int64_t>(nth, strips);
    const int64_t tm = std::min<int64_t>(std::max<int64_t>(1, nth / tn), mtiles);
    if (ith >= tn * tm) return;
    const int64_t in = ith % tn, im = ith / tn;
    const int64_t n0 = std::min(a.N, strips * in / tn * nr), n1 = std::min(a.N, strips * (in + 1) / tn * nr);
    const int64_t m0 = std::min(a.M, mtiles * im / tm * mr), m1 = std::min(a.M, mtiles * (im + 1) / tm * mr);
    if (n0 < n1 && m0 < m1) NM_ISA_CALL(linear_gemm, a, m0, m1, n0, n1, base + slice * ith);
  });
}

}  // namespace

void linear(const LinearArgs& a, LinearAlgo algo) {
  if (a.M <= 0 || a.N <= 0) return;
  if (algo == LinearAlgo::Auto) algo = a.M <= kLinearGemvMaxRows ? LinearAlgo::Gemv : LinearAlgo::Gemm;
  if (algo == LinearAlgo::Gemv) run_gemv(a);
  else run_gemm(a);
}

}  // namespace nm
