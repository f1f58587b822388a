#include "kernels/attention.h"

#include <math.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"

namespace nm {

NM_DECLARE_ISA_FN(void paged_attention_task(const PagedAttentionArgs& a, int64_t s, int64_t g, int64_t i0,
                                            int64_t i1, const AttnScratch& w))
NM_DECLARE_ISA_FN(void paged_attention_decode_task(const PagedAttentionArgs& a, const AttnDecodeItem& it,
                                                   const AttnScratch& w))
NM_DECLARE_ISA_FN(void f32_row_to_f16(const float* src, int64_t n, uint16_t* dst))
NM_DECLARE_ISA_FN(void rope_rows(const RopeArgs& a, const float* inv_freq, int64_t t0, int64_t t1, float* cs))

namespace {
int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The target rows (queries × heads of a kv head) per general work item.
constexpr int64_t kTargetRows = 32;
// A decode query's keys, in ranges of this many positions merged after
// (flash-decoding): more items than kv heads for long contexts, and each
// reads its positions' cache slots whole. The boundaries are fixed
// multiples, so a sequence's output never depends on the batch, the thread
// count or the other sequences; up to this many keys it is the unsplit sum.
constexpr int64_t kDecodeKeyRange = 512;
}  // namespace

void kv_cache_append(const KvCacheAppendArgs& a) {
  if (a.nseq <= 0 || a.tokens <= 0) return;
  const PagedKvCache& c = a.cache;
  const int64_t D = c.head_dim, Hk = c.n_kv_heads;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, Hk * D));
  cpu::parallel_for(a.tokens, grain, [&](int64_t t0, int64_t t1) {
    // Sequence of token t0: the last s with cu_seqlens[s] <= t0.
    int64_t s = std::upper_bound(a.cu_seqlens, a.cu_seqlens + a.nseq + 1, (int32_t)t0) - a.cu_seqlens - 1;
    for (int64_t t = t0; t < t1; ++t) {
      while (t >= a.cu_seqlens[s + 1]) ++s;
      const int64_t pos = (int64_t)a.start_pos[s] + (t - a.cu_seqlens[s]);
      const int64_t page = a.block_table[s * a.block_table_stride + pos / c.page_size];
      const int64_t base = page * c.page_stride + (pos % c.page_size) * c.slot_stride;
      for (int64_t h = 0; h < Hk; ++h) {
        const float* kr = a.k + t * a.k_stride_tok + h * a.k_stride_head;
        const float* vr = a.v + t * a.v_stride_tok + h * a.v_stride_head;
        const int64_t off = base + h * c.head_stride;
        if (c.dtype == DType::F16) {
          NM_ISA_CALL(f32_row_to_f16, kr, D, static_cast<uint16_t*>(c.k) + off);
          NM_ISA_CALL(f32_row_to_f16, vr, D, static_cast<uint16_t*>(c.v) + off);
        } else {
          std::memcpy(static_cast<float*>(c.k) + off, kr, (size_t)D * sizeof(float));
          std::memcpy(static_cast<float*>(c.v) + off, vr, (size_t)D * sizeof(float));
        }
      }
    }
  });
}

void paged_attention(const PagedAttentionArgs& a) {
  if (a.nseq <= 0 || a.tokens <= 0) return;
  const int64_t Hk = a.cache.n_kv_heads, hpg = a.n_heads / Hk, D = a.cache.head_dim, H = a.n_heads;
  const int64_t nthreads = cpu::pool().size();
  // Queries per general item: about kTargetRows rows (queries × group heads).
  const int64_t bq = std::max<int64_t>(1, kTargetRows / hpg);

  // General items (several queries of a sequence, one kv head), and decode
  // items (a sequence with one query: attention.h AttnDecodeItem).
  struct Item {
    int64_t s, g, i0, i1;
    double cost;
    int64_t decode;  // index in ditems, or -1
  };
  std::vector<Item> items;
  std::vector<AttnDecodeItem> ditems;
  std::vector<int64_t> prow;  // per decode item: its first partial row, or -1
  double work = 0.0;  // score and output products, 2 per key, row and element
  int64_t ranges = 0;
  for (int64_t s = 0; s < a.nseq; ++s)
    if (a.cu_seqlens_q[s + 1] - a.cu_seqlens_q[s] == 1) ranges += ceil_div(a.kv_lens[s], kDecodeKeyRange);
  // Few key ranges: an item per kv head, so that every thread has one.
  const int64_t heads_per_item = ranges >= 2 * nthreads ? Hk : 1;
  struct Merge {
    int64_t s, ranges;
    size_t first;  // partial row of its range 0, head 0
  };
  std::vector<Merge> merges;
  size_t partial_rows = 0;
  for (int64_t s = 0; s < a.nseq; ++s) {
    const int64_t qlen = (int64_t)a.cu_seqlens_q[s + 1] - a.cu_seqlens_q[s];
    const int64_t pos0 = (int64_t)a.kv_lens[s] - qlen;
    if (qlen == 1) {
      const int64_t L = a.kv_lens[s], nr = ceil_div(L, kDecodeKeyRange);
      if (nr > 1) merges.push_back({s, nr, partial_rows});
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t g0 = 0; g0 < Hk; g0 += heads_per_item) {
          AttnDecodeItem d;
          d.s = s; d.i0 = 0;
          d.k0 = r * kDecodeKeyRange; d.k1 = std::min(L, d.k0 + kDecodeKeyRange);
          d.g0 = g0; d.g1 = std::min(Hk, g0 + heads_per_item);
          prow.push_back(nr > 1 ? (int64_t)partial_rows + r * H + g0 * hpg : -1);  // d.partial once allocated
          const double cost = (double)(d.k1 - d.k0) * (double)((d.g1 - d.g0) * hpg);
          items.push_back({s, d.g0, 0, 1, cost, (int64_t)ditems.size()});
          ditems.push_back(d);
          work += cost * (double)D * 2.0;
        }
      if (nr > 1) partial_rows += (size_t)(nr * H);
      continue;
    }
    for (int64_t i0 = 0; i0 < qlen; i0 += bq) {
      const int64_t i1 = std::min(qlen, i0 + bq);
      const double cost = (double)(i1 - i0) * (double)(pos0 + i1);  // queries × keys (upper bound)
      for (int64_t g = 0; g < Hk; ++g) {
        if (i1 - i0 == 1) {  // one query (hpg >= kTargetRows): the decode body over its whole causal range
          AttnDecodeItem d;
          d.s = s; d.i0 = i0; d.k0 = 0; d.k1 = pos0 + i1; d.g0 = g; d.g1 = g + 1;
          items.push_back({s, g, i0, i1, cost * (double)hpg, (int64_t)ditems.size()});
          ditems.push_back(d);
          prow.push_back(-1);
        } else {
          items.push_back({s, g, i0, i1, cost * (double)hpg, -1});
        }
      }
      work += cost * (double)(Hk * hpg) * (double)D * 2.0;
    }
  }
  if (items.empty()) return;
  // Costliest first, so the long items start early.
  std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.cost > y.cost; });
  // The split ranges' partial rows: the calling thread's buffer, reused
  // across calls and not zeroed (every row is written by its item before the
  // merge reads it); a fresh one per call cost an allocation, a zero fill and
  // page faults (1 MB a call at 8 sequences of 16K keys).
  // (Tasks on other threads reach it through this pointer: a thread_local
  // named in a task would be that thread's own.)
  thread_local std::vector<float> partial_buf;
  if (partial_buf.size() < partial_rows * (size_t)(D + 2)) partial_buf.resize(partial_rows * (size_t)(D + 2));
  float* const partial = partial_buf.data();
  for (size_t i = 0; i < ditems.size(); ++i)
    if (prow[i] >= 0) ditems[i].partial = partial + (size_t)prow[i] * (size_t)(D + 2);

  // Tiny calls (~< 64k multiply-adds) stay on the calling thread.
  const int64_t threads = work < 65536.0 ? 1 : nthreads;
  const int64_t ntasks = (int64_t)items.size();
  const int nalloc = (int)std::max<int64_t>(1, std::min<int64_t>(threads, ntasks));

  bool general = false;
  int64_t rows = 4;
  for (const Item& it : items) {
    if (it.decode >= 0) rows = std::max(rows, (ditems[(size_t)it.decode].g1 - ditems[(size_t)it.decode].g0) * hpg);
    else general = true, rows = std::max(rows, (it.i1 - it.i0) * hpg);
  }
  AttnScratch proto;
  proto.ldd = round16(D);
  proto.bk = kAttnKeyBlock;
  proto.rows_pad = ceil_div(rows, 4) * 4;
  const int64_t R = proto.rows_pad, ldd = proto.ldd, bk = proto.bk;
  // (the key and value blocks only for general items, which copy them)
  const int64_t per_thread = round16(2 * R * ldd + R * bk + 3 * R + (general ? 2 * bk * ldd : 0));
  // The calling thread's buffer, reused across calls (a fresh one of this
  // size came from new pages every call). Zero-filled for general items:
  // their padding lanes are never written and must stay finite (the decode
  // body writes every lane it reads).
  thread_local std::vector<float> buf;
  const size_t need = (size_t)(per_thread * nalloc + 16);
  if (buf.size() < need) buf.resize(need);
  if (general) std::fill(buf.begin(), buf.begin() + (std::ptrdiff_t)need, 0.0f);
  float* base = buf.data();
  while (reinterpret_cast<uintptr_t>(base) % 64 != 0) ++base;

  std::atomic<int64_t> next{0};
  cpu::pool().run(nalloc, [&](int ith, int) {
    AttnScratch w = proto;
    float* p = base + (int64_t)ith * per_thread;
    w.qs = p; p += R * ldd;
    w.o = p; p += R * ldd;
    w.p = p; p += R * bk;
    w.m = p; p += R;
    w.l = p; p += R;
    w.corr = p; p += R;
    if (general) {
      w.kbuf = p; p += bk * ldd;
      w.vbuf = p;
    }
    for (;;) {
      const int64_t k = next.fetch_add(1);
      if (k >= ntasks) break;
      const Item& it = items[(size_t)k];
      if (it.decode >= 0) NM_ISA_CALL(paged_attention_decode_task, a, ditems[(size_t)it.decode], w);
      else NM_ISA_CALL(paged_attention_task, a, it.s, it.g, it.i0, it.i1, w);
    }
  });

  // Key ranges merged in order (flash-decoding): m = max_r m_r,
  // l = Σ_r l_r e^(m_r - m), out = Σ_r o_r e^(m_r - m) / l.
  const int64_t ps = D + 2;
  cpu::parallel_for((int64_t)merges.size() * H, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, D)), [&](int64_t b, int64_t e) {
    std::vector<float> acc((size_t)D);
    for (int64_t i = b; i < e; ++i) {
      const Merge& mg = merges[(size_t)(i / H)];
      const int64_t h = i % H;
      const float* row0 = partial + (mg.first + (size_t)h) * (size_t)ps;
      float m = -INFINITY;
      for (int64_t r = 0; r < mg.ranges; ++r) m = std::max(m, row0[r * H * ps]);
      float l = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t r = 0; r < mg.ranges; ++r) {
        const float* pr = row0 + r * H * ps;
        const float f = expf(pr[0] - m);
        l += pr[1] * f;
        for (int64_t d = 0; d < D; ++d) acc[(size_t)d] += pr[2 + d] * f;
      }
      const int64_t tq = a.cu_seqlens_q[mg.s];
      float* dst = a.out + tq * a.out_stride_tok + h * a.out_stride_head;
      const float inv = 1.0f / l;
      for (int64_t d = 0; d < D; ++d) dst[d] = acc[(size_t)d] * inv;
    }
  });
}

namespace {

// The interleaved pairing (attention.h RopeArgs), portable: a small share of
// an attention layer's time, as the vector form of rope_rows is.
void rope_rows_interleaved(const RopeArgs& a, const float* inv_freq, int64_t t0, int64_t t1, float* cs) {
  const int64_t half = a.rotary_dim / 2;
  float* cosv = cs;
  float* sinv = cs + half;
  for (int64_t t = t0; t < t1; ++t) {
    const float fpos = (float)a.positions[t];
    for (int64_t i = 0; i < half; ++i) {
      const float ang = inv_freq[i] * fpos;
      cosv[i] = (float)cos((double)ang);
      sinv[i] = (float)sin((double)ang);
    }
    for (int64_t h = 0; h < a.n_heads; ++h) {
      float* x = a.x + t * a.x_stride_tok + h * a.x_stride_head;
      for (int64_t i = 0; i < half; ++i) {
        const float u = x[2 * i], v = x[2 * i + 1];
        x[2 * i] = u * cosv[i] - v * sinv[i];
        x[2 * i + 1] = v * cosv[i] + u * sinv[i];
      }
    }
  }
}

}  // namespace

void rope(const RopeArgs& a) {
  if (a.tokens <= 0 || a.n_heads <= 0 || a.rotary_dim < 2) return;
  const int64_t half = a.rotary_dim / 2;
  // inv_freq[i] = 1 / theta^(2i / rotary_dim): in double, then float32.
  std::vector<float> inv_freq((size_t)half);
  for (int64_t i = 0; i < half; ++i)
    inv_freq[(size_t)i] = (float)(1.0 / pow(a.theta, (double)(2 * i) / (double)a.rotary_dim));
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, a.n_heads * a.rotary_dim));
  cpu::parallel_for(a.tokens, grain, [&](int64_t t0, int64_t t1) {
    std::vector<float> cs((size_t)(2 * half + 16), 0.0f);
    if (a.interleaved) rope_rows_interleaved(a, inv_freq.data(), t0, t1, cs.data());
    else NM_ISA_CALL(rope_rows, a, inv_freq.data(), t0, t1, cs.data());
  });
}

}  // namespace nm
