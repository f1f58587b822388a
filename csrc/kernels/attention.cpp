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
NM_DECLARE_ISA_FN(void rope_rows(const RopeArgs& a, const float* inv_freq, int64_t t0, int64_t t1, float* cs))

namespace {
int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Key positions per block and the target rows (queries × heads of a kv head)
// per work item.
constexpr int64_t kKeyBlock = 64;
constexpr int64_t kTargetRows = 32;
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
          uint16_t* kd = static_cast<uint16_t*>(c.k) + off;
          uint16_t* vd = static_cast<uint16_t*>(c.v) + off;
          for (int64_t d = 0; d < D; ++d) {
            kd[d] = f32_to_f16(kr[d]);
            vd[d] = f32_to_f16(vr[d]);
          }
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
  const int64_t Hk = a.cache.n_kv_heads, hpg = a.n_heads / Hk, D = a.cache.head_dim;
  // Queries per item: about kTargetRows rows (queries × group heads).
  const int64_t bq = std::max<int64_t>(1, kTargetRows / hpg);

  struct Item {
    int64_t s, g, i0, i1;
    double cost;
  };
  std::vector<Item> items;
  double total = 0.0;
  for (int64_t s = 0; s < a.nseq; ++s) {
    const int64_t qlen = (int64_t)a.cu_seqlens_q[s + 1] - a.cu_seqlens_q[s];
    const int64_t pos0 = (int64_t)a.kv_lens[s] - qlen;
    for (int64_t i0 = 0; i0 < qlen; i0 += bq) {
      const int64_t i1 = std::min(qlen, i0 + bq);
      const double cost = (double)(i1 - i0) * (double)(pos0 + i1);  // queries × keys (upper bound)
      for (int64_t g = 0; g < Hk; ++g) items.push_back({s, g, i0, i1, cost});
      total += cost * (double)Hk;
    }
  }
  if (items.empty()) return;
  // Costliest first, so the long items start early.
  std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.cost > y.cost; });

  // Tiny calls (~< 64k multiply-adds) stay on the calling thread.
  const double work = total * (double)hpg * (double)D * 2.0;
  const int64_t threads = work < 65536.0 ? 1 : cpu::pool().size();
  const int64_t ntasks = (int64_t)items.size();
  const int nalloc = (int)std::max<int64_t>(1, std::min<int64_t>(threads, ntasks));

  AttnScratch proto;
  proto.ldd = round16(D);
  proto.bk = kKeyBlock;
  proto.rows_pad = ceil_div(bq * hpg, 4) * 4;
  const int64_t R = proto.rows_pad, ldd = proto.ldd, bk = proto.bk;
  const int64_t per_thread = round16(2 * R * ldd + R * bk + 3 * R + 2 * bk * ldd);
  // Zero-filled: padding lanes are never written and must stay finite. The
  // calling thread's buffer, reused across calls (a fresh one of this size
  // came from new pages every call).
  thread_local std::vector<float> buf;
  const size_t need = (size_t)(per_thread * nalloc + 16);
  if (buf.size() < need) buf.resize(need);
  std::fill(buf.begin(), buf.begin() + (std::ptrdiff_t)need, 0.0f);
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
    w.kbuf = p; p += bk * ldd;
    w.vbuf = p;
    for (;;) {
      const int64_t k = next.fetch_add(1);
      if (k >= ntasks) break;
      const Item& it = items[(size_t)k];
      NM_ISA_CALL(paged_attention_task, a, it.s, it.g, it.i0, it.i1, w);
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
