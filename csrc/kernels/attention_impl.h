// Per-level bodies of paged attention and RoPE (see attention.h for the
// semantics and kernels/simd/README.md for how this file is compiled).
//
// paged_attention_task: one work item = one sequence, one kv head, queries
// [i0, i1) of the sequence. Its rows are (query, head of the kv head's group)
// pairs, row r = qi * hpg + hh, so the group's heads share every key and
// value row read (and its f16 conversion). Keys are processed in blocks of
// bk positions; per block and row:
//   scores  p[r, j] = (scale * q_r) · k_j               (VF over head_dim)
//   online softmax: m' = max(m, max_j p), corr = exp(m - m'),
//                   p[r, j] = exp(p[r, j] - m'), l = l * corr + Σ_j p
//   o_r = o_r * corr + Σ_j p[r, j] v_j                  (VF over head_dim)
// Causality: row r (position pos_r) uses only the keys j <= pos_r, a prefix
// of the block, so no mask is applied: entries past the prefix are zeroed.
// Finally out_r = o_r / l.
//
// paged_attention_decode_task: one query position (attention.h
// AttnDecodeItem), its rows read K and V in place. Both bodies share the
// block steps (at_scores_rows, at_softmax_row, at_pv_rows), so a query
// computes the same float32 operations in the same order on either.
#include <math.h>

#include <type_traits>

#include "kernels/attention.h"

namespace nm {
namespace NM_ISA {

namespace {

inline int64_t at_min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t at_max(int64_t a, int64_t b) { return a > b ? a : b; }

// float32 copy of n binary16 values (padded destination row).
inline void at_f16_row(const uint16_t* src, int64_t n, float* dst) {
  int64_t d = 0;
  for (; d + VF::W <= n; d += VF::W) VF::load_f16(src + d).store(dst + d);
  if (d < n) VF::load_f16_partial(src + d, (int)(n - d)).store(dst + d);
}


// Online softmax of row r's scores p[0, n) of a block of nk keys (keys
// [n, nk) masked): p <- exp(p - m'), with the row's running max m, sum l and
// the block's correction exp(m - m') updated in w.
inline void at_softmax_row(float* p, int64_t n, int64_t nk, const AttnScratch& w, int64_t r) {
  const int W = VF::W;
  if (n == 0) {
    for (int64_t j = 0; j < nk; ++j) p[j] = 0.0f;
    w.corr[r] = 1.0f;
    return;
  }
  // (max is exact in any order: lanes first, then across them)
  float mx = p[0];
  int64_t j = 0;
  if (n >= W) {
    VF vmx = VF::load(p);
    for (j = W; j + W <= n; j += W) vmx = vmax(vmx, VF::load(p + j));
    alignas(64) float lanes[VF::W];
    vmx.store(lanes);
    for (int i = 0; i < W; ++i) mx = lanes[i] > mx ? lanes[i] : mx;
  }
  for (; j < n; ++j) mx = p[j] > mx ? p[j] : mx;
  const float m_new = mx > w.m[r] ? mx : w.m[r];
  const VF vm = VF::set1(m_new);
  VF sum = VF::zero();
  for (j = 0; j + W <= n; j += W) {
    const VF e = vexp(VF::load(p + j) - vm);
    e.store(p + j);
    sum = sum + e;
  }
  if (j < n) {
    const int rem = (int)(n - j);
    vexp(VF::load_partial(p + j, rem) - vm).store_partial(p + j, rem);
    sum = sum + VF::load_partial(p + j, rem);
  }
  for (j = n; j < nk; ++j) p[j] = 0.0f;
  const float corr = w.m[r] == -INFINITY ? 0.0f : expf(w.m[r] - m_new);
  w.corr[r] = corr;
  w.l[r] = w.l[r] * corr + reduce_sum(sum);
  w.m[r] = m_new;
}

// Scaled query rows into w.qs (rows past M zero) and the accumulators reset.
inline void at_load_queries(const PagedAttentionArgs& a, int64_t s, int64_t g, int64_t i0, int64_t M, int64_t Mp,
                            const AttnScratch& w) {
  const int W = VF::W;
  const int64_t D = a.cache.head_dim, ldd = w.ldd, hpg = a.n_heads / a.cache.n_kv_heads;
  const int64_t dfull = D / W * W;
  const int tail = (int)(D - dfull);
  const int64_t q0 = a.cu_seqlens_q[s];
  const VF vscale = VF::set1(a.scale);
  for (int64_t r = 0; r < Mp; ++r) {
    float* qs = w.qs + r * ldd;
    float* o = w.o + r * ldd;
    if (r < M) {
      const int64_t tq = q0 + i0 + r / hpg, h = g * hpg + r % hpg;
      const float* src = a.q + tq * a.q_stride_tok + h * a.q_stride_head;
      int64_t d = 0;
      for (; d < dfull; d += W) (VF::load(src + d) * vscale).store(qs + d);
      if (tail) (VF::load_partial(src + d, tail) * vscale).store(qs + d);
    } else {
      for (int64_t d = 0; d < ldd; d += W) VF::zero().store(qs + d);
    }
    for (int64_t d = 0; d < ldd; d += W) VF::zero().store(o + d);
    w.m[r] = -INFINITY;
    w.l[r] = 0.0f;
  }
}

// out rows [0, M) = o / l.
inline void at_store_out(const PagedAttentionArgs& a, int64_t s, int64_t g, int64_t i0, int64_t M,
                         const AttnScratch& w) {
  const int W = VF::W;
  const int64_t D = a.cache.head_dim, hpg = a.n_heads / a.cache.n_kv_heads;
  const int64_t dfull = D / W * W;
  const int tail = (int)(D - dfull);
  const int64_t q0 = a.cu_seqlens_q[s];
  for (int64_t r = 0; r < M; ++r) {
    const int64_t tq = q0 + i0 + r / hpg, h = g * hpg + r % hpg;
    float* dst = a.out + tq * a.out_stride_tok + h * a.out_stride_head;
    const float* o = w.o + r * w.ldd;
    const VF inv = VF::set1(1.0f / w.l[r]);
    int64_t d = 0;
    for (; d < dfull; d += W) (VF::load(o + d) * inv).store(dst + d);
    if (tail) (VF::load(o + d) * inv).store_partial(dst + d, tail);
  }
}

// A cache row (one position of one kv head) as float32 vectors, in place.
template <bool F16>
inline VF at_row(const void* row, int64_t d) {
  if constexpr (F16) return VF::load_f16(static_cast<const uint16_t*>(row) + d);
  else return VF::load(static_cast<const float*>(row) + d);
}
template <bool F16>
inline VF at_row_partial(const void* row, int64_t d, int n) {
  if constexpr (F16) return VF::load_f16_partial(static_cast<const uint16_t*>(row) + d, n);
  else return VF::load_partial(static_cast<const float*>(row) + d, n);
}

// Rows r0 .. r0 + NR - 1 against the nk keys whose rows (cache rows in
// place, or a general item's scratch copies) are krow[j]: p[r, j] = q_r · k_j.
// Each key row is read once for the NR rows, and W keys' dot products are
// summed across lanes together (reduce_sum_rows: the sums reduce_sum gives).
// CH > 0: the head dimension is CH whole vectors (the loop unrolled, the
// queries held in registers where they fit); 0: any head dimension.
template <bool F16, int NR, int CH>
void at_scores_rows(const float* qs, int64_t ldd, int64_t D, const void* const* krow, int64_t nk, float* p,
                    int64_t bk) {
  const int W = VF::W;
  const int64_t dfull = CH > 0 ? (int64_t)CH * W : D / W * W;
  const int tail = CH > 0 ? 0 : (int)(D - dfull);
  constexpr bool kHold = CH > 0 && NR * CH <= (VF::W >= 16 ? 16 : 8);
  VF qv[kHold ? NR : 1][kHold ? CH : 1];
  if constexpr (kHold)
    for (int r = 0; r < NR; ++r)
      for (int c = 0; c < CH; ++c) qv[r][c] = VF::load(qs + r * ldd + c * W);
  VF acc[NR][VF::W];
  for (int64_t j0 = 0; j0 < nk; j0 += W) {
    const int nj = (int)at_min(W, nk - j0);
    for (int jj = 0; jj < nj; ++jj) {
      const void* kr = krow[j0 + jj];
      VF sr[NR];
      for (int r = 0; r < NR; ++r) sr[r] = VF::zero();
      if constexpr (CH > 0) {
        for (int c = 0; c < CH; ++c) {
          const VF kv = at_row<F16>(kr, c * W);
          for (int r = 0; r < NR; ++r)
            sr[r] = fmadd(kHold ? qv[kHold ? r : 0][kHold ? c : 0] : VF::load(qs + r * ldd + c * W), kv, sr[r]);
        }
      } else {
        int64_t d = 0;
        for (; d < dfull; d += W) {
          const VF kv = at_row<F16>(kr, d);
          for (int r = 0; r < NR; ++r) sr[r] = fmadd(VF::load(qs + r * ldd + d), kv, sr[r]);
        }
        if (tail) {
          const VF kv = at_row_partial<F16>(kr, d, tail);
          for (int r = 0; r < NR; ++r) sr[r] = fmadd(VF::load(qs + r * ldd + d), kv, sr[r]);
        }
      }
      for (int r = 0; r < NR; ++r) acc[r][jj] = sr[r];
    }
    for (int jj = nj; jj < W; ++jj)
      for (int r = 0; r < NR; ++r) acc[r][jj] = VF::zero();
    for (int r = 0; r < NR; ++r) reduce_sum_rows(acc[r]).store_partial(p + r * bk + j0, nj);
  }
}

// at_scores_rows on the chunk count of the head dimension.
template <bool F16, int NR>
void at_scores(const float* qs, int64_t ldd, int64_t D, const void* const* krow, int64_t nk, float* p, int64_t bk) {
  const int64_t W = VF::W;
  if (D == 2 * W) at_scores_rows<F16, NR, 2>(qs, ldd, D, krow, nk, p, bk);
  else if (D == 4 * W) at_scores_rows<F16, NR, 4>(qs, ldd, D, krow, nk, p, bk);
  else if (D == 8 * W) at_scores_rows<F16, NR, 8>(qs, ldd, D, krow, nk, p, bk);
  else at_scores_rows<F16, NR, 0>(qs, ldd, D, krow, nk, p, bk);
}

// o_r[d0 + c·W ...] = o_r · corr_r + Σ_j p[r, j] v_j[...] for NR rows and C
// vector chunks of the head dimension from d0 (TAIL: the one chunk holds the
// last `tail` lanes), value rows read in place. The NR·C accumulators are
// independent chains (one chain per row would wait on each multiply-add's
// latency); each sees the same multiply-adds in the same order as the
// general path's.
template <bool F16, int NR, int C, bool TAIL>
void at_pv_chunks(float* o, int64_t ldd, int64_t d0, int tail, const void* const* vrow, int64_t nk, const float* p,
                  int64_t bk, const float* corr) {
  const int W = VF::W;
  VF acc[NR][C];
  for (int r = 0; r < NR; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = VF::load(o + r * ldd + d0 + c * W) * VF::set1(corr[r]);
  for (int64_t j = 0; j < nk; ++j) {
    VF vv[C];
    for (int c = 0; c < C; ++c)
      vv[c] = TAIL ? at_row_partial<F16>(vrow[j], d0 + c * W, tail) : at_row<F16>(vrow[j], d0 + c * W);
    for (int r = 0; r < NR; ++r) {
      const VF pj = VF::set1(p[r * bk + j]);
      for (int c = 0; c < C; ++c) acc[r][c] = fmadd(pj, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int c = 0; c < C; ++c) acc[r][c].store(o + r * ldd + d0 + c * W);
}

// o_r = o_r · corr_r + Σ_j p[r, j] v_j for rows r0 .. r0 + NR - 1: the head
// dimension in passes of up to kPvAccumulators / NR chunks.
template <bool F16, int NR>
void at_pv_rows(float* o, int64_t ldd, int64_t D, const void* const* vrow, int64_t nk, const float* p, int64_t bk,
                const float* corr) {
  const int W = VF::W;
  constexpr int kPvAccumulators = VF::W >= 16 ? 16 : 8;  // of 32 / 16 vector registers
  constexpr int kMax = kPvAccumulators / NR;
  const int64_t full = D / W;
  const int tail = (int)(D - full * W);
  // Chunks per pass: the largest of 8, 4, 2, 1 that fits kMax and what is left.
  auto pass = [&](auto chunks, int64_t& c) {
    constexpr int C = decltype(chunks)::value;
    at_pv_chunks<F16, NR, C, false>(o, ldd, c * W, 0, vrow, nk, p, bk, corr);
    c += C;
  };
  for (int64_t c = 0; c < full;) {
    const int64_t left = full - c;
    if (kMax >= 8 && left >= 8) pass(std::integral_constant<int, (kMax >= 8 ? 8 : 1)>{}, c);
    else if (kMax >= 4 && left >= 4) pass(std::integral_constant<int, (kMax >= 4 ? 4 : 1)>{}, c);
    else if (kMax >= 2 && left >= 2) pass(std::integral_constant<int, (kMax >= 2 ? 2 : 1)>{}, c);
    else pass(std::integral_constant<int, 1>{}, c);
  }
  if (tail) at_pv_chunks<F16, NR, 1, true>(o, ldd, full * W, tail, vrow, nk, p, bk, corr);
}

// f(std::integral_constant<int, nr>) for a row count 1 <= nr <= 4.
template <class F>
void at_rows_of(int64_t nr, F&& f) {
  switch (nr) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

// Scratch rows from r0 on (a view of w for one kv head's rows).
inline AttnScratch at_rows_from(const AttnScratch& w, int64_t r0) {
  AttnScratch v = w;
  v.qs += r0 * w.ldd;
  v.o += r0 * w.ldd;
  v.p += r0 * w.bk;
  v.m += r0;
  v.l += r0;
  v.corr += r0;
  return v;
}

// A decode work item (attention.h AttnDecodeItem): one query position,
// whose rows (the query heads of kv heads [g0, g1)) all see every key of
// the item's range, so no row is masked. Key blocks start at k0 and are
// processed in order, each block for every kv head in turn: a block's cache
// slots (all heads of a position side by side) are read once, in place.
// Per head and block the sums and their order are the general path's
// (which copies each key block into scratch and sums each score across
// lanes alone): over the whole key range the outputs are equal bit for bit.
template <bool F16>
void paged_attention_decode(const PagedAttentionArgs& a, const AttnDecodeItem& it, const AttnScratch& w) {
  const PagedKvCache& c = a.cache;
  const int64_t D = c.head_dim, ldd = w.ldd, bk = w.bk, hpg = a.n_heads / c.n_kv_heads;
  const int32_t* bt = a.block_table + it.s * a.block_table_stride;
  const int64_t esz = F16 ? 2 : 4;
  for (int64_t g = it.g0; g < it.g1; ++g) at_load_queries(a, it.s, g, it.i0, hpg, hpg, at_rows_from(w, (g - it.g0) * hpg));

  // Slot offsets (bytes, head 0) of this key block and of the next one.
  int64_t slots[2][kAttnKeyBlock];
  const void* krow[kAttnKeyBlock];
  const void* vrow[kAttnKeyBlock];
  // The item's heads of a slot: bytes [head0, head0 + span).
  const int64_t head0 = it.g0 * c.head_stride * esz, span = ((it.g1 - it.g0 - 1) * c.head_stride + D) * esz;
  auto block_slots = [&](int64_t k0, int64_t n, int64_t* slot) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t pos = k0 + j;
      slot[j] = ((int64_t)bt[pos / c.page_size] * c.page_stride + (pos % c.page_size) * c.slot_stride) * esz;
    }
  };
  int cur = 0;
  block_slots(it.k0, at_min(bk, it.k1 - it.k0), slots[cur]);
  for (int64_t k0 = it.k0; k0 < it.k1; k0 += bk, cur ^= 1) {
    const int64_t nk = at_min(bk, it.k1 - k0);
    const int64_t* slot = slots[cur];
    // The next block's slots, prefetched (its pages need not follow this
    // block's in memory: a block table in any order), a share before each
    // head's pass rather than all at once.
    const int64_t next_n = at_min(it.k1, k0 + nk + bk) - (k0 + nk);
    const int64_t* next = slots[cur ^ 1];
    if (next_n > 0) block_slots(k0 + nk, next_n, slots[cur ^ 1]);
    auto prefetch_next = [&](int64_t part, int64_t parts) {
      for (int64_t j = next_n * part / parts; j < next_n * (part + 1) / parts; ++j) {
        const char* kp = static_cast<const char*>(c.k) + next[j] + head0;
        const char* vp = static_cast<const char*>(c.v) + next[j] + head0;
        for (int64_t b = 0; b < span; b += 64) {
          __builtin_prefetch(kp + b, 0, 3);
          __builtin_prefetch(vp + b, 0, 3);
        }
      }
    };
    for (int64_t g = it.g0; g < it.g1; ++g) {
      if (next_n > 0) prefetch_next(g - it.g0, it.g1 - it.g0);
      const AttnScratch v = at_rows_from(w, (g - it.g0) * hpg);
      const int64_t head = g * c.head_stride * esz;
      for (int64_t j = 0; j < nk; ++j) {
        krow[j] = static_cast<const char*>(c.k) + slot[j] + head;
        vrow[j] = static_cast<const char*>(c.v) + slot[j] + head;
      }
      for (int64_t r0 = 0; r0 < hpg; r0 += 4)
        at_rows_of(at_min(4, hpg - r0), [&](auto nr) {
          at_scores<F16, decltype(nr)::value>(v.qs + r0 * ldd, ldd, D, krow, nk, v.p + r0 * bk, bk);
        });
      for (int64_t r = 0; r < hpg; ++r) at_softmax_row(v.p + r * bk, nk, nk, v, r);
      for (int64_t r0 = 0; r0 < hpg; r0 += 4)
        at_rows_of(at_min(4, hpg - r0), [&](auto nr) {
          at_pv_rows<F16, decltype(nr)::value>(v.o + r0 * ldd, ldd, D, vrow, nk, v.p + r0 * bk, bk, v.corr + r0);
        });
    }
  }

  const int64_t rows = (it.g1 - it.g0) * hpg;
  if (!it.partial) {
    for (int64_t g = it.g0; g < it.g1; ++g) at_store_out(a, it.s, g, it.i0, hpg, at_rows_from(w, (g - it.g0) * hpg));
    return;
  }
  // One key range of several: each row's running max, sum and unnormalised
  // output (paged_attention merges the ranges).
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = it.partial + r * (D + 2);
    dst[0] = w.m[r];
    dst[1] = w.l[r];
    for (int64_t d = 0; d < D; ++d) dst[2 + d] = w.o[r * ldd + d];
  }
}

}  // namespace

void paged_attention_decode_task(const PagedAttentionArgs& a, const AttnDecodeItem& it, const AttnScratch& w) {
  if (a.cache.dtype == DType::F16) paged_attention_decode<true>(a, it, w);
  else paged_attention_decode<false>(a, it, w);
}

void paged_attention_task(const PagedAttentionArgs& a, int64_t s, int64_t g, int64_t i0, int64_t i1,
                          const AttnScratch& w) {
  const PagedKvCache& c = a.cache;
  const int64_t D = c.head_dim, ldd = w.ldd, bk = w.bk, hpg = a.n_heads / c.n_kv_heads;
  const int W = VF::W;
  const int64_t dfull = D / W * W;
  const int tail = (int)(D - dfull);
  const int64_t q0 = a.cu_seqlens_q[s], qlen = a.cu_seqlens_q[s + 1] - q0;
  const int64_t pos0 = (int64_t)a.kv_lens[s] - qlen;  // position of query 0
  const int64_t M = (i1 - i0) * hpg, Mp = (M + 3) / 4 * 4;
  const int32_t* bt = a.block_table + s * a.block_table_stride;
  auto row_pos = [&](int64_t r) { return pos0 + i0 + r / hpg; };

  // Scaled queries; accumulators.
  at_load_queries(a, s, g, i0, M, Mp, w);

  const int64_t kend = pos0 + i1;  // last query's position + 1
  for (int64_t k0 = 0; k0 < kend; k0 += bk) {
    const int64_t nk = at_min(bk, kend - k0);
    // Key / value rows of the block, copied (f16: converted) into contiguous
    // scratch: in the cache a kv head's rows are n_kv_heads * head_dim apart
    // (4 KB for 8 × 128 f32), which aliases in L1 when read in place. The next
    // block's rows are prefetched (each row is in its own 4 KB page once the
    // stride is that large, where the hardware prefetchers stop).
    const int64_t esz = c.dtype == DType::F16 ? 2 : 4;
    const int64_t nk_next = at_min(bk, kend - k0 - nk);
    for (int64_t j = 0; j < nk; ++j) {
      if (j < nk_next) {
        const int64_t pn = k0 + nk + j;
        const int64_t offn = (int64_t)bt[pn / c.page_size] * c.page_stride + (pn % c.page_size) * c.slot_stride +
                             g * c.head_stride;
        const char* kn = static_cast<const char*>(c.k) + offn * esz;
        const char* vn = static_cast<const char*>(c.v) + offn * esz;
        for (int64_t b = 0; b < D * esz; b += 64) {
          __builtin_prefetch(kn + b, 0, 2);
          __builtin_prefetch(vn + b, 0, 2);
        }
      }
      const int64_t pos = k0 + j;
      const int64_t off = (int64_t)bt[pos / c.page_size] * c.page_stride + (pos % c.page_size) * c.slot_stride +
                          g * c.head_stride;
      float* kd = w.kbuf + j * ldd;
      float* vd = w.vbuf + j * ldd;
      if (c.dtype == DType::F16) {
        at_f16_row(static_cast<const uint16_t*>(c.k) + off, D, kd);
        at_f16_row(static_cast<const uint16_t*>(c.v) + off, D, vd);
      } else {
        const float* ks = static_cast<const float*>(c.k) + off;
        const float* vs = static_cast<const float*>(c.v) + off;
        int64_t d = 0;
        for (; d < dfull; d += W) {
          VF::load(ks + d).store(kd + d);
          VF::load(vs + d).store(vd + d);
        }
        if (tail) {
          VF::load_partial(ks + d, tail).store(kd + d);
          VF::load_partial(vs + d, tail).store(vd + d);
        }
      }
    }
    // Valid keys of row r in this block: [0, nv(r)).
    auto nv = [&](int64_t r) { return r < M ? at_max(0, at_min(nk, row_pos(r) + 1 - k0)) : int64_t(0); };

    // Scores, four rows at a time (rows past M are zero queries), W keys'
    // sums across lanes together (at_scores).
    const void* krow[kAttnKeyBlock];
    for (int64_t j = 0; j < nk; ++j) krow[j] = w.kbuf + j * ldd;
    for (int64_t r0 = 0; r0 < Mp; r0 += 4)
      at_scores<false, 4>(w.qs + r0 * ldd, ldd, D, krow, nv(at_min(r0 + 3, M - 1)), w.p + r0 * bk, bk);  // positions grow with r

    // Online softmax per row.
    for (int64_t r = 0; r < Mp; ++r) at_softmax_row(w.p + r * bk, nv(r), nk, w, r);

    // o = o * corr + P · V, four rows at a time (at_pv_rows: the rows'
    // accumulators over several vectors of head_dim at once).
    const void* vrow[kAttnKeyBlock];
    for (int64_t j = 0; j < nk; ++j) vrow[j] = w.vbuf + j * ldd;
    for (int64_t r0 = 0; r0 < Mp; r0 += 4)
      at_pv_rows<false, 4>(w.o + r0 * ldd, ldd, D, vrow, nv(at_min(r0 + 3, M - 1)), w.p + r0 * bk, bk, w.corr + r0);
  }

  // out = o / l.
  at_store_out(a, s, g, i0, M, w);
}

// dst[0, n) = src[0, n) as binary16, rounded to nearest even (a K or V row
// into an f16 cache: kv_cache_append).
void f32_row_to_f16(const float* src, int64_t n, uint16_t* dst) {
  int64_t d = 0;
  for (; d + VF::W <= n; d += VF::W) VF::load(src + d).store_f16(dst + d);
  if (d < n) VF::load_partial(src + d, (int)(n - d)).store_f16_partial(dst + d, (int)(n - d));
}

// RoPE on tokens [t0, t1); cs is scratch of rotary_dim floats (cos, then sin),
// inv_freq [rotary_dim / 2].
void rope_rows(const RopeArgs& a, const float* inv_freq, int64_t t0, int64_t t1, float* cs) {
  const int64_t half = a.rotary_dim / 2;
  const int W = VF::W;
  float* cosv = cs;
  float* sinv = cs + half;
  for (int64_t t = t0; t < t1; ++t) {
    const float fpos = (float)a.positions[t];
    for (int64_t i = 0; i < half; ++i) {
      const float ang = inv_freq[i] * fpos;  // rounded to float32, as HF
      cosv[i] = (float)cos((double)ang);
      sinv[i] = (float)sin((double)ang);
    }
    for (int64_t h = 0; h < a.n_heads; ++h) {
      float* x1 = a.x + t * a.x_stride_tok + h * a.x_stride_head;
      float* x2 = x1 + half;
      int64_t i = 0;
      for (; i + W <= half; i += W) {
        const VF u = VF::load(x1 + i), v = VF::load(x2 + i), co = VF::load(cosv + i), si = VF::load(sinv + i);
        (u * co - v * si).store(x1 + i);
        (v * co + u * si).store(x2 + i);
      }
      if (i < half) {
        const int n = (int)(half - i);
        const VF u = VF::load_partial(x1 + i, n), v = VF::load_partial(x2 + i, n),
                 co = VF::load_partial(cosv + i, n), si = VF::load_partial(sinv + i, n);
        (u * co - v * si).store_partial(x1 + i, n);
        (v * co + u * si).store_partial(x2 + i, n);
      }
    }
  }
}

}  // namespace NM_ISA
}  // namespace nm
