// Per-thread math of the CUDA attention kernels (cuda/attention.cu), shared
// with the host emulation (cuda/check). Semantics: kernels/attention.h.
//
// kv_cache_append: thread per (token, kv head, element).
// paged_attention: a warp per (query token, head, key range); lane l holds the head's
// elements d = l, l + 32, ... (head_dim <= 32 * kAttnMaxPerLane) of the
// scaled query (scale * q, as the CPU) and of the running output. Keys are
// visited one at a time in position order: the lanes' partial dot products
// (fmaf in d order) meet in a butterfly (every lane gets the same sum:
// tree_sum_host on the host), then the online softmax m' = max(m, s),
// corr = exp(m - m') (0 while m = -inf), p = exp(s - m'), l = l corr + p,
// o = o corr + p v; out = o / l. The CPU kernel takes the keys in blocks
// (one max per block): equal up to float32 rounding.
// The method-1 kernel runs a block of kAttnSplitWarps warps per (query
// token, head): warp w takes the contiguous keys [npos·w/W, npos·(w+1)/W)
// with the lane math above, then the warps' states meet in shared memory
// (attn_split_finish: m = max_w m_w, f_w = exp(m_w - m), out = Σ f_w o_w /
// Σ f_w l_w): long contexts at few queries (decode) keep the GPU busy.
// rope: thread per (token, head, rotation pair), the CPU's float32 angle and
// double cos / sin, products and sums rounded one by one (no contraction).
// A first version for correctness: one key per step (a flash-style tiled
// kernel on the tensor cores comes later).
#pragma once
#include "kernels/attention.h"
#include "math_common.cuh"

namespace nm::cuda {

constexpr int kAttnLanes = 32;
constexpr int kAttnMaxPerLane = 8;  // head_dim <= 256


NM_HD int64_t kv_index(const PagedKvCache& c, int64_t page, int64_t slot, int64_t head, int64_t d) {
  return page * c.page_stride + slot * c.slot_stride + head * c.head_stride + d;
}

NM_HD float kv_load(const PagedKvCache& c, const void* base, int64_t i) {
  return c.dtype == DType::F16 ? half_bits_to_float(static_cast<const uint16_t*>(base)[i])
                               : static_cast<const float*>(base)[i];
}

NM_HD void kv_store(const PagedKvCache& c, void* base, int64_t i, float v) {
  if (c.dtype == DType::F16) static_cast<uint16_t*>(base)[i] = float_to_half_bits(v);
  else static_cast<float*>(base)[i] = v;
}

// Token t, kv head hk, element d of K and V into their slots.
NM_HD void kv_append_point(const KvCacheAppendArgs& a, int64_t t, int64_t hk, int64_t d) {
  const PagedKvCache& c = a.cache;
  const int64_t s = sequence_of(a.cu_seqlens, a.nseq, t);
  const int64_t pos = (int64_t)a.start_pos[s] + (t - a.cu_seqlens[s]);
  const int64_t page = a.block_table[s * a.block_table_stride + pos / c.page_size];
  const int64_t i = kv_index(c, page, pos % c.page_size, hk, d);
  kv_store(c, c.k, i, a.k[t * a.k_stride_tok + hk * a.k_stride_head + d]);
  kv_store(c, c.v, i, a.v[t * a.v_stride_tok + hk * a.v_stride_head + d]);
}

// One lane's view of a (query token, head) pair.
struct AttnLane {
  float q[kAttnMaxPerLane], o[kAttnMaxPerLane];
  float m, l;
  int64_t s, hk, npos;  // sequence, kv head, keys 0 .. npos - 1
};

NM_HD void attn_lane_begin(const PagedAttentionArgs& a, int64_t t, int64_t h, int lane, AttnLane& w) {
  const PagedKvCache& c = a.cache;
  w.s = sequence_of(a.cu_seqlens_q, a.nseq, t);
  const int64_t qlen = (int64_t)a.cu_seqlens_q[w.s + 1] - a.cu_seqlens_q[w.s];
  const int64_t i = t - a.cu_seqlens_q[w.s];
  w.npos = (int64_t)a.kv_lens[w.s] - qlen + i + 1;
  w.hk = h / (a.n_heads / c.n_kv_heads);
  const float* q = a.q + t * a.q_stride_tok + h * a.q_stride_head;
NM_UNROLL
  for (int j = 0; j < kAttnMaxPerLane; ++j) {
    const int64_t d = lane + kAttnLanes * j;
    w.q[j] = d < c.head_dim ? mul_rn(a.scale, q[d]) : 0.0f;
    w.o[j] = 0.0f;
  }
  w.m = -INFINITY, w.l = 0.0f;
}

// The lane's partial (scale q) · k_pos.
NM_HD float attn_lane_score(const PagedAttentionArgs& a, const AttnLane& w, int64_t pos, int lane) {
  const PagedKvCache& c = a.cache;
  const int64_t page = a.block_table[w.s * a.block_table_stride + pos / c.page_size];
  const int64_t base = kv_index(c, page, pos % c.page_size, w.hk, 0);
  float acc = 0.0f;
NM_UNROLL
  for (int j = 0; j < kAttnMaxPerLane; ++j) {
    const int64_t d = lane + kAttnLanes * j;
    if (d < c.head_dim) acc = fmaf(w.q[j], kv_load(c, c.k, base + d), acc);
  }
  return acc;
}

// The online-softmax step with the key's full score.
NM_HD void attn_lane_update(const PagedAttentionArgs& a, AttnLane& w, int64_t pos, int lane, float score) {
  const PagedKvCache& c = a.cache;
  const float m_new = score > w.m ? score : w.m;
  const float corr = w.m == -INFINITY ? 0.0f : expf(w.m - m_new);
  const float p = expf(score - m_new);
  w.l = fmaf(w.l, corr, p);
  w.m = m_new;
  const int64_t page = a.block_table[w.s * a.block_table_stride + pos / c.page_size];
  const int64_t base = kv_index(c, page, pos % c.page_size, w.hk, 0);
NM_UNROLL
  for (int j = 0; j < kAttnMaxPerLane; ++j) {
    const int64_t d = lane + kAttnLanes * j;
    if (d < c.head_dim) w.o[j] = fmaf(p, kv_load(c, c.v, base + d), mul_rn(w.o[j], corr));
  }
}

constexpr int kAttnSplitWarps = 8;

// Keys [p0, p1) of warp w of kAttnSplitWarps over keys [0, npos).
NM_HD void attn_split_range(int64_t npos, int w, int64_t& p0, int64_t& p1) {
  p0 = npos * w / kAttnSplitWarps;
  p1 = npos * (w + 1) / kAttnSplitWarps;
}

// The split warps' states (shared memory on the device).
struct AttnSplitSmem {
  float m[kAttnSplitWarps], l[kAttnSplitWarps];
  float o[kAttnSplitWarps][kAttnLanes * kAttnMaxPerLane];  // [warp][j * 32 + lane]
};

// Lane `lane` of warp w stages its state (the warp's lanes share m and l).
NM_HD void attn_split_stage(const AttnLane& w, int warp, int lane, AttnSplitSmem& sm) {
  if (lane == 0) sm.m[warp] = w.m, sm.l[warp] = w.l;
NM_UNROLL
  for (int j = 0; j < kAttnMaxPerLane; ++j) sm.o[warp][j * kAttnLanes + lane] = w.o[j];
}

// Lane `lane`'s elements of out[t, h] from the staged states, warps in order
// (a warp with no keys: m = -inf, weight 0).
NM_HD void attn_split_finish(const PagedAttentionArgs& a, const AttnSplitSmem& sm, int64_t t, int64_t h, int lane) {
  float m = -INFINITY;
  for (int w = 0; w < kAttnSplitWarps; ++w) m = sm.m[w] > m ? sm.m[w] : m;
  float f[kAttnSplitWarps], l = 0.0f;
  for (int w = 0; w < kAttnSplitWarps; ++w) {
    f[w] = sm.m[w] == -INFINITY ? 0.0f : expf(sm.m[w] - m);
    l = fmaf(sm.l[w], f[w], l);
  }
  float* out = a.out + t * a.out_stride_tok + h * a.out_stride_head;
NM_UNROLL
  for (int j = 0; j < kAttnMaxPerLane; ++j) {
    const int64_t d = lane + kAttnLanes * j;
    if (d >= a.cache.head_dim) continue;
    float o = 0.0f;
    for (int w = 0; w < kAttnSplitWarps; ++w) o = fmaf(sm.o[w][j * kAttnLanes + lane], f[w], o);
    out[d] = l > 0.0f ? o / l : 0.0f;
  }
}

// RoPE of token t, head h, pair i (of rotary_dim / 2), in place.
NM_HD void rope_point(const RopeArgs& a, int64_t t, int64_t h, int64_t i) {
  const int64_t half = a.rotary_dim / 2;
  const float inv_freq = (float)(1.0 / pow(a.theta, (double)(2 * i) / (double)a.rotary_dim));
  const float ang = mul_rn(inv_freq, (float)a.positions[t]);
  const float co = (float)cos((double)ang), si = (float)sin((double)ang);
  float* x = a.x + t * a.x_stride_tok + h * a.x_stride_head;
  float* x1 = a.interleaved ? x + 2 * i : x + i;
  float* x2 = a.interleaved ? x + 2 * i + 1 : x + i + half;
  const float u = *x1, v = *x2;
  *x1 = add_rn(mul_rn(u, co), -mul_rn(v, si));
  *x2 = add_rn(mul_rn(v, co), mul_rn(u, si));
}

}  // namespace nm::cuda
