#include "kernels/ssd.h"

#include <algorithm>
#include <atomic>
#include <numeric>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void ssd_scan_task(const SsdChunkScanArgs& a, int64_t s, int64_t h0, int64_t h1,
                                     const SsdScratch& w))

namespace {
int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

void ssd_chunk_scan(const SsdChunkScanArgs& a) {
  if (a.nseq <= 0 || a.nheads <= 0) return;
  const int64_t P = a.headdim, N = a.dstate, G = a.ngroups, Hg = a.nheads / a.ngroups;

  // Sequences longest first, so that the long scans start early.
  std::vector<int64_t> order((size_t)a.nseq);
  std::iota(order.begin(), order.end(), int64_t(0));
  auto len = [&](int64_t s) { return (int64_t)a.cu_seqlens[s + 1] - a.cu_seqlens[s]; };
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return len(x) > len(y); });
  const int64_t maxlen = len(order[0]);
  const int64_t q = std::max<int64_t>(1, std::min<int64_t>(a.chunk_size, maxlen));

  // Tasks: (sequence, group, block of hb heads). Fewer, larger head blocks
  // share C·Bᵀ across more heads; split until there are about two tasks per
  // thread. Tiny calls (~< 64k multiply-adds) stay on the calling thread.
  const double work = (double)a.tokens * (double)a.nheads * (double)P * (double)N * 3.0;
  const int64_t threads = work < 65536.0 ? 1 : cpu::pool().size();
  const int64_t units = a.nseq * G;
  int64_t nb = std::min<int64_t>(Hg, std::max<int64_t>(1, ceil_div(2 * threads, units)));
  const int64_t hb = ceil_div(Hg, nb);
  nb = ceil_div(Hg, hb);
  const int64_t ntasks = units * nb;
  const int nalloc = (int)std::max<int64_t>(1, std::min<int64_t>(threads, ntasks));

  SsdScratch proto;
  proto.q = q;
  proto.ldq = round16(q);
  proto.ldp = round16(P);
  proto.ldn = round16(N);
  const int64_t sz_bt = N * proto.ldq, sz_qq = q * proto.ldq, sz_qp = q * proto.ldp,
                sz_qn = q * proto.ldn, sz_st = hb * N * proto.ldp;
  const int64_t per_thread = round16(sz_bt + 2 * sz_qq + 3 * sz_qp + sz_qn + 2 * proto.ldq + sz_st);
  // Zero-filled: padding lanes are never written and must stay finite.
  std::vector<float> buf((size_t)(per_thread * nalloc + 16), 0.0f);
  float* base = buf.data();
  while (reinterpret_cast<uintptr_t>(base) % 64 != 0) ++base;

  std::atomic<int64_t> next{0};
  cpu::pool().run(nalloc, [&](int ith, int) {
    SsdScratch w = proto;
    float* p = base + (int64_t)ith * per_thread;
    w.bt = p; p += sz_bt;
    w.cb = p; p += sz_qq;
    w.g = p; p += sz_qq;
    w.xs = p; p += sz_qp;
    w.u = p; p += sz_qp;
    w.y = p; p += sz_qp;
    w.cs = p; p += sz_qn;
    w.dtv = p; p += proto.ldq;
    w.cum = p; p += proto.ldq;
    w.st = p;
    for (;;) {
      const int64_t k = next.fetch_add(1);
      if (k >= ntasks) break;
      const int64_t s = order[(size_t)(k / (G * nb))];
      const int64_t g = (k / nb) % G, b = k % nb;
      const int64_t h0 = g * Hg + b * hb, h1 = std::min(h0 + hb, (g + 1) * Hg);
      NM_ISA_CALL(ssd_scan_task, a, s, h0, h1, w);
    }
  });
}

}  // namespace nm
