// Per-thread math of the tiled paged attention for prefill ("tiles",
// cuda/attention.cu), shared with the host emulation (cuda/check).
// Semantics: kernels/attention.h; the warp-per-query kernel (decode) is
// cuda/attention_math.cuh.
//
// A block holds kAttnTileQ consecutive query tokens of one head (the tokens
// of each sequence they belong to, one sequence after another) and walks
// that sequence's keys in tiles of kAttnTileK positions, as flash attention
// does (Dao et al., arXiv 2205.14135, algorithm 1): the scaled queries, then
// each tile's K and V rows, are copied once into shared memory (rows padded
// to a multiple of 4 floats, K rows 4 more so that the lanes' 16-byte reads
// of different rows fall in different banks) and read by every query of the
// block: kAttnTileQ times fewer cache reads than one warp per query.
// Warp w owns queries w * kAttnWarpQ .. + kAttnWarpQ of the block. Per tile:
//   1. lane k scores key k of the tile against each of the warp's queries
//      (fmaf in element order; -inf past the query's causal limit);
//   2. per query, the online softmax over the warp (butterflies: max, then
//      Σ p): m' = max(m, max_k s), corr = exp(m - m') (0 while m = -inf),
//      p_k = exp(s_k - m') (0 for -inf), l = l corr + Σ p, o = o corr;
//      lane k leaves p_k in shared memory;
//   3. lane l adds Σ_k p_k v_k[d] for its elements d = l, l + 32, ..
//      (key order).
// out = o / l. The CPU kernel takes other blocks of keys (one max per
// block) and sums in another order: equal up to float32 rounding.
#pragma once
#include "attention_math.cuh"

namespace nm::cuda {

constexpr int kAttnTileWarps = 4;
constexpr int kAttnWarpQ = 8;                              // queries per warp
constexpr int kAttnTileQ = kAttnTileWarps * kAttnWarpQ;    // queries per block: 32
constexpr int kAttnTileK = 32;                             // keys per tile: one per lane
constexpr int64_t kAttnTileMaxDim = 128;                   // head_dim the tiles take
constexpr int kAttnTilePerLane = (int)(kAttnTileMaxDim / 32);

// Which kernel paged_attention_cuda runs: `requested` 1 (a warp per query)
// or 2 (tiles) when allowed, else tiles for head_dim <= kAttnTileMaxDim
// when the sequences average at least kAttnTileMinQueries queries (a
// prefill; decode's single queries would each take a block), else a warp
// per query. 0: a request this shape does not allow (tiles above
// kAttnTileMaxDim) or an unknown one.
constexpr int64_t kAttnTileMinQueries = 8;
NM_HD int attention_method(const PagedAttentionArgs& a, int requested) {
  const bool tiles_ok = a.cache.head_dim <= kAttnTileMaxDim;
  if (requested == 1) return 1;
  if (requested == 2) return tiles_ok ? 2 : 0;
  if (requested != 0) return 0;
  return tiles_ok && a.tokens >= kAttnTileMinQueries * a.nseq ? 2 : 1;
}

// Shared-memory rows: head_dim padded to a multiple of 4; K rows 4 more.
NM_HD int64_t attn_tile_dp(int64_t head_dim) { return (head_dim + 3) / 4 * 4; }
NM_HD int64_t attn_tile_ks(int64_t head_dim) { return attn_tile_dp(head_dim) + 4; }

// Floats of shared memory: Q [kAttnTileQ][dp], K [kAttnTileK][ks],
// V [kAttnTileK][dp], P [warps][kAttnWarpQ][kAttnTileK].
NM_HD int64_t attn_tile_smem_floats(int64_t head_dim) {
  const int64_t dp = attn_tile_dp(head_dim);
  return kAttnTileQ * dp + kAttnTileK * attn_tile_ks(head_dim) + kAttnTileK * dp +
         kAttnTileWarps * kAttnWarpQ * kAttnTileK;
}

struct AttnTileSmem {
  float *q, *k, *v, *p;
};

NM_HD AttnTileSmem attn_tile_smem(float* base, int64_t head_dim) {
  const int64_t dp = attn_tile_dp(head_dim);
  AttnTileSmem s;
  s.q = base;
  s.k = s.q + kAttnTileQ * dp;
  s.v = s.k + kAttnTileK * attn_tile_ks(head_dim);
  s.p = s.v + kAttnTileK * dp;
  return s;
}

// The block's queries of sequence s: tokens [lo, hi) of [t0, t0 +
// kAttnTileQ); token t sees key positions [0, first_npos + (t - lo)); keys:
// positions [0, kend) cover all of them.
struct AttnTileSeq {
  int64_t lo, hi, first_npos, kend;
};

NM_HD AttnTileSeq attn_tile_seq(const PagedAttentionArgs& a, int64_t s, int64_t t0, int64_t t1) {
  const int64_t c0 = a.cu_seqlens_q[s], c1 = a.cu_seqlens_q[s + 1];
  AttnTileSeq q;
  q.lo = t0 > c0 ? t0 : c0;
  q.hi = t1 < c1 ? t1 : c1;
  // Query i of the sequence sees kv_len - q_len + i + 1 positions.
  q.first_npos = (int64_t)a.kv_lens[s] - (c1 - c0) + (q.lo - c0) + 1;
  q.kend = q.hi > q.lo ? q.first_npos + (q.hi - 1 - q.lo) : 0;
  return q;
}

// Element i of the block's query rows (thread-strided over kAttnTileQ * dp):
// scale * q for the sequence's tokens, 0 elsewhere and in the padding.
NM_HD void attn_tile_load_q(const PagedAttentionArgs& a, int64_t h, int64_t t0, const AttnTileSeq& q, int64_t i,
                            float* qs) {
  const int64_t hd = a.cache.head_dim, dp = attn_tile_dp(hd), t = t0 + i / dp, d = i % dp;
  qs[i] = t >= q.lo && t < q.hi && d < hd ? mul_rn(a.scale, a.q[t * a.q_stride_tok + h * a.q_stride_head + d]) : 0.0f;
}

// Element i of the tile's K and V rows (thread-strided over kAttnTileK * dp):
// key position k0 + i / dp of sequence s, kv head hk; 0 past kend and in
// the padding.
NM_HD void attn_tile_load_kv(const PagedAttentionArgs& a, int64_t s, int64_t hk, int64_t k0, int64_t kend, int64_t i,
                             const AttnTileSmem& sm) {
  const PagedKvCache& c = a.cache;
  const int64_t hd = c.head_dim, dp = attn_tile_dp(hd), row = i / dp, d = i % dp, pos = k0 + row;
  float kv = 0.0f, vv = 0.0f;
  if (pos < kend && d < hd) {
    const int64_t page = a.block_table[s * a.block_table_stride + pos / c.page_size];
    const int64_t j = kv_index(c, page, pos % c.page_size, hk, d);
    kv = kv_load(c, c.k, j), vv = kv_load(c, c.v, j);
  }
  sm.k[row * attn_tile_ks(hd) + d] = kv;
  sm.v[row * dp + d] = vv;
}

// Step 1: query row `qrow` of the block against the tile's key `key`
// (fmaf in element order; 16-byte shared-memory reads on the device).
NM_HD float attn_tile_score(const AttnTileSmem& sm, int64_t head_dim, int qrow, int key) {
  const int64_t dp = attn_tile_dp(head_dim);
  const float* q = sm.q + qrow * dp;
  const float* k = sm.k + key * attn_tile_ks(head_dim);
  float acc = 0.0f;
  for (int64_t d = 0; d < dp; d += 4) {
#if defined(__CUDA_ARCH__)
    const float4 qv = *reinterpret_cast<const float4*>(q + d), kv = *reinterpret_cast<const float4*>(k + d);
    acc = fmaf(qv.x, kv.x, acc), acc = fmaf(qv.y, kv.y, acc), acc = fmaf(qv.z, kv.z, acc), acc = fmaf(qv.w, kv.w, acc);
#else
    for (int e = 0; e < 4; ++e) acc = fmaf(q[d + e], k[d + e], acc);
#endif
  }
  return acc;
}

// One lane's running state of the warp's queries: the softmax max and sum
// (the same in every lane) and its elements of the outputs.
struct AttnTileLane {
  float m[kAttnWarpQ], l[kAttnWarpQ], o[kAttnWarpQ][kAttnTilePerLane];
};

NM_HD void attn_tile_lane_init(AttnTileLane& w) {
  for (int qi = 0; qi < kAttnWarpQ; ++qi) {
    w.m[qi] = -INFINITY, w.l[qi] = 0.0f;
    for (int j = 0; j < kAttnTilePerLane; ++j) w.o[qi][j] = 0.0f;
  }
}

// Step 1's score for lane `key` and query qi of warp `warp`, -inf where the
// query is not the sequence's or the key is past its causal limit.
NM_HD float attn_tile_lane_score(const PagedAttentionArgs& a, const AttnTileSmem& sm, const AttnTileSeq& q,
                                 int64_t t0, int64_t k0, int warp, int qi, int key) {
  const int qrow = warp * kAttnWarpQ + qi;
  const int64_t t = t0 + qrow;
  if (t < q.lo || t >= q.hi || k0 + key >= q.first_npos + (t - q.lo)) return -INFINITY;
  return attn_tile_score(sm, a.cache.head_dim, qrow, key);
}

// Step 2 for query qi, given the warp's max of the scores: the new max and
// the correction of the old sums; p of a score.
NM_HD float attn_tile_new_max(const AttnTileLane& w, int qi, float tile_max) {
  return tile_max > w.m[qi] ? tile_max : w.m[qi];
}
NM_HD float attn_tile_corr(const AttnTileLane& w, int qi, float m_new) {
  return w.m[qi] == -INFINITY ? 0.0f : expf(w.m[qi] - m_new);
}
NM_HD float attn_tile_p(float score, float m_new) { return score == -INFINITY ? 0.0f : expf(score - m_new); }

// Step 2's update of query qi with its correction and the warp's Σ p.
NM_HD void attn_tile_rescale(AttnTileLane& w, int qi, float m_new, float corr, float psum) {
  w.l[qi] = fmaf(w.l[qi], corr, psum);
  w.m[qi] = m_new;
  for (int j = 0; j < kAttnTilePerLane; ++j) w.o[qi][j] = mul_rn(w.o[qi][j], corr);
}

// Step 3 for lane `lane` of warp `warp`: keys [0, nk) of the tile.
NM_HD void attn_tile_lane_pv(const PagedAttentionArgs& a, const AttnTileSmem& sm, int warp, int lane, int nk,
                             AttnTileLane& w) {
  const int64_t hd = a.cache.head_dim, dp = attn_tile_dp(hd);
  const float* p = sm.p + warp * kAttnWarpQ * kAttnTileK;
  for (int k = 0; k < nk; ++k) {
    float v[kAttnTilePerLane];
NM_UNROLL
    for (int j = 0; j < kAttnTilePerLane; ++j) {
      const int64_t d = lane + 32 * j;
      v[j] = d < hd ? sm.v[k * dp + d] : 0.0f;
    }
NM_UNROLL
    for (int qi = 0; qi < kAttnWarpQ; ++qi) {
      const float pk = p[qi * kAttnTileK + k];
NM_UNROLL
      for (int j = 0; j < kAttnTilePerLane; ++j) w.o[qi][j] = fmaf(pk, v[j], w.o[qi][j]);
    }
  }
}

// The lane's elements of the outputs of the warp's queries that are the
// sequence's.
NM_HD void attn_tile_lane_store(const PagedAttentionArgs& a, const AttnTileSeq& q, int64_t t0, int64_t h, int warp,
                                int lane, const AttnTileLane& w) {
  for (int qi = 0; qi < kAttnWarpQ; ++qi) {
    const int64_t t = t0 + warp * kAttnWarpQ + qi;
    if (t < q.lo || t >= q.hi) continue;
    float* out = a.out + t * a.out_stride_tok + h * a.out_stride_head;
    for (int j = 0; j < kAttnTilePerLane; ++j) {
      const int64_t d = lane + 32 * j;
      if (d < a.cache.head_dim) out[d] = w.l[qi] > 0.0f ? w.o[qi][j] / w.l[qi] : 0.0f;
    }
  }
}

}  // namespace nm::cuda
