#include "kernels/selective_scan.h"

#include <algorithm>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"
#include "kernels/ssm_q8.h"

namespace nm {

NM_DECLARE_ISA_FN(void selective_scan_units(const SelectiveScanArgs& a, int64_t u0, int64_t u1))
NM_DECLARE_ISA_FN(void selective_scan_q8_units(const SelectiveScanArgs& a, const Int8Operand& uq, int64_t u0, int64_t u1))
NM_DECLARE_ISA_FN(void selective_state_update_units(const SelectiveStateUpdateArgs& a, int64_t block, int64_t u0, int64_t u1))
NM_DECLARE_ISA_FN(void selective_state_update_q8_units(const SelectiveStateUpdateArgs& a, const Int8Operand& xq, int64_t block,
                                                       int64_t u0, int64_t u1))

// A task should cover at least this many (token x channel x state) updates
// (~2 cycles each) to be worth a thread wake-up.
static constexpr int64_t kMinWorkPerTask = 1 << 16;

namespace {

// Runs units(u0, u1) over the scan's work units (16 channels of one group,
// kScanBlock in selective_scan_impl.h) on the pool.
template <class Units>
void run_scan_units(const SelectiveScanArgs& a, Units&& units) {
  if (a.batch <= 0 || a.dim <= 0 || a.dstate <= 0 || a.ngroups <= 0) return;
  const int64_t block = 16, hd = a.dim / a.ngroups, bpg = (hd + block - 1) / block;
  const int64_t n = a.batch * a.ngroups * bpg;
  const int64_t work = (a.seqlen > 0 ? a.seqlen : 1) * block * a.dstate;
  const int64_t grain = (kMinWorkPerTask + work - 1) / work;
  // Dynamic chunks: a static split waits for whichever thread the machine
  // slowed (bench/NOTES.md).
  cpu::parallel_for_dynamic(n, cpu::balanced_chunk(n, grain), units);
}

}  // namespace

void selective_scan(const SelectiveScanArgs& a) {
  run_scan_units(a, [&](int64_t u0, int64_t u1) { NM_ISA_CALL(selective_scan_units, a, u0, u1); });
}

// The int8 form (ssm_q8.h): B and C (a few values per token) are dequantized
// once into scratch; u is dequantized by the scan as it loads it.
void selective_scan_q8(const SelectiveScanQ8Args& q) {
  const SelectiveScanArgs& f = q.scan;
  if (f.batch <= 0 || f.dim <= 0 || f.dstate <= 0 || f.ngroups <= 0) return;
  const int64_t Bt = f.batch, L = f.seqlen, GN = f.ngroups * f.dstate;
  thread_local std::vector<float> bc;
  if ((int64_t)bc.size() < 2 * Bt * L * GN) bc.resize((size_t)(2 * Bt * L * GN));
  float* Bm = bc.data();
  float* Cm = Bm + Bt * L * GN;
  for (int64_t b = 0; b < Bt; ++b) {
    dequantize_channels_int8(L, GN, q.B.q + b * q.B.batch_stride, q.B.token_stride, q.B.scale, Bm + b * L * GN, GN);
    dequantize_channels_int8(L, GN, q.C.q + b * q.C.batch_stride, q.C.token_stride, q.C.scale, Cm + b * L * GN, GN);
  }
  SelectiveScanArgs s = f;
  s.u = nullptr;
  s.B = Bm; s.B_batch_stride = L * GN; s.B_token_stride = GN;
  s.C = Cm; s.C_batch_stride = L * GN; s.C_token_stride = GN;
  run_scan_units(s, [&](int64_t u0, int64_t u1) { NM_ISA_CALL(selective_scan_q8_units, s, q.u, u0, u1); });
}

namespace {

// The update's units (rows of 64 per batch row) on the pool: units(u0, u1, block).
template <class Units>
void for_each_state_update_unit(const SelectiveStateUpdateArgs& a, const Units& units_fn) {
  if (a.batch <= 0 || a.nheads <= 0 || a.headdim <= 0 || a.dstate <= 0 || a.ngroups <= 0) return;
  const int64_t block = 64, rows = a.nheads * a.headdim, nblk = (rows + block - 1) / block;
  // One decode step's update is short (Mamba-1 at batch 1: 24 units of 1K
  // states, ~20 us) but serial work there leaves the other thread idle
  // (bench/NOTES.md), so the bar for a second task is lower than for the scan.
  const int64_t work = block * a.dstate;
  const int64_t grain = (kMinWorkPerTask / 8 + work - 1) / work;
  // Dynamic chunks: the call is as short as a thread's hand-off, and a
  // static split waits for the later one.
  const int64_t units = a.batch * nblk;
  cpu::parallel_for_dynamic(units, cpu::balanced_chunk(units, grain), [&](int64_t u0, int64_t u1) { units_fn(u0, u1, block); });
}

}  // namespace

void selective_state_update(const SelectiveStateUpdateArgs& a) {
  for_each_state_update_unit(a, [&](int64_t u0, int64_t u1, int64_t block) {
    NM_ISA_CALL(selective_state_update_units, a, block, u0, u1);
  });
}

// The int8 form (ssm_q8.h): B and C (a few values per row) dequantized in a
// pass first, x in the units as they read it.
void selective_state_update_q8(const SelectiveStateUpdateQ8Args& q) {
  const SelectiveStateUpdateArgs& f = q.upd;
  if (f.batch <= 0 || f.nheads <= 0 || f.headdim <= 0 || f.dstate <= 0 || f.ngroups <= 0) return;
  const int64_t Bt = f.batch, GN = f.ngroups * f.dstate;
  thread_local std::vector<float> bc;
  if ((int64_t)bc.size() < 2 * Bt * GN) bc.resize((size_t)(2 * Bt * GN));
  float* Bm = bc.data();
  float* Cm = Bm + Bt * GN;
  dequantize_channels_int8(Bt, GN, q.B.q, q.B.batch_stride, q.B.scale, Bm, GN);
  dequantize_channels_int8(Bt, GN, q.C.q, q.C.batch_stride, q.C.scale, Cm, GN);
  SelectiveStateUpdateArgs s = f;
  s.x = nullptr;
  s.B = Bm; s.B_batch_stride = GN;
  s.C = Cm; s.C_batch_stride = GN;
  for_each_state_update_unit(s, [&](int64_t u0, int64_t u1, int64_t block) {
    NM_ISA_CALL(selective_state_update_q8_units, s, q.x, block, u0, u1);
  });
}

}  // namespace nm
