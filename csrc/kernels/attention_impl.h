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
#include <math.h>

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

}  // namespace

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

    // Scores, four rows at a time (rows past M are zero queries).
    for (int64_t r0 = 0; r0 < Mp; r0 += 4) {
      const int64_t nj = nv(at_min(r0 + 3, M - 1));  // positions grow with r
      const float *qa = w.qs + r0 * ldd, *qb = qa + ldd, *qc = qb + ldd, *qd = qc + ldd;
      float* p = w.p + r0 * bk;
      for (int64_t j = 0; j < nj; ++j) {
        const float* kr = w.kbuf + j * ldd;
        VF s0 = VF::zero(), s1 = VF::zero(), s2 = VF::zero(), s3 = VF::zero();
        int64_t d = 0;
        for (; d < dfull; d += W) {
          const VF kv = VF::load(kr + d);
          s0 = fmadd(VF::load(qa + d), kv, s0);
          s1 = fmadd(VF::load(qb + d), kv, s1);
          s2 = fmadd(VF::load(qc + d), kv, s2);
          s3 = fmadd(VF::load(qd + d), kv, s3);
        }
        if (tail) {
          const VF kv = VF::load_partial(kr + d, tail);
          s0 = fmadd(VF::load(qa + d), kv, s0);
          s1 = fmadd(VF::load(qb + d), kv, s1);
          s2 = fmadd(VF::load(qc + d), kv, s2);
          s3 = fmadd(VF::load(qd + d), kv, s3);
        }
        p[j] = reduce_sum(s0);
        p[bk + j] = reduce_sum(s1);
        p[2 * bk + j] = reduce_sum(s2);
        p[3 * bk + j] = reduce_sum(s3);
      }
    }

    // Online softmax per row.
    for (int64_t r = 0; r < Mp; ++r) {
      float* p = w.p + r * bk;
      const int64_t n = nv(r);
      if (n == 0) {
        for (int64_t j = 0; j < nk; ++j) p[j] = 0.0f;
        w.corr[r] = 1.0f;
        continue;
      }
      float mx = p[0];
      for (int64_t j = 1; j < n; ++j) mx = p[j] > mx ? p[j] : mx;
      const float m_new = mx > w.m[r] ? mx : w.m[r];
      const VF vm = VF::set1(m_new);
      VF sum = VF::zero();
      int64_t j = 0;
      for (; j + W <= n; j += W) {
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

    // o = o * corr + P · V, four rows at a time, VF over head_dim.
    for (int64_t r0 = 0; r0 < Mp; r0 += 4) {
      const int64_t nj = nv(at_min(r0 + 3, M - 1));
      const float *pa = w.p + r0 * bk, *pb = pa + bk, *pc = pb + bk, *pd = pc + bk;
      float *oa = w.o + r0 * ldd, *ob = oa + ldd, *oc = ob + ldd, *od = oc + ldd;
      const VF ca = VF::set1(w.corr[r0]), cb = VF::set1(w.corr[r0 + 1]), cc = VF::set1(w.corr[r0 + 2]),
               cd = VF::set1(w.corr[r0 + 3]);
      for (int64_t d = 0; d < D; d += W) {
        const bool full = d < dfull;
        VF a0 = VF::load(oa + d) * ca, a1 = VF::load(ob + d) * cb, a2 = VF::load(oc + d) * cc,
           a3 = VF::load(od + d) * cd;
        for (int64_t j = 0; j < nj; ++j) {
          const float* vr = w.vbuf + j * ldd;
          const VF vv = full ? VF::load(vr + d) : VF::load_partial(vr + d, tail);
          a0 = fmadd(VF::set1(pa[j]), vv, a0);
          a1 = fmadd(VF::set1(pb[j]), vv, a1);
          a2 = fmadd(VF::set1(pc[j]), vv, a2);
          a3 = fmadd(VF::set1(pd[j]), vv, a3);
        }
        a0.store(oa + d);
        a1.store(ob + d);
        a2.store(oc + d);
        a3.store(od + d);
      }
    }
  }

  // out = o / l.
  for (int64_t r = 0; r < M; ++r) {
    const int64_t tq = q0 + i0 + r / hpg, h = g * hpg + r % hpg;
    float* dst = a.out + tq * a.out_stride_tok + h * a.out_stride_head;
    const float* o = w.o + r * ldd;
    const VF inv = VF::set1(1.0f / w.l[r]);
    int64_t d = 0;
    for (; d < dfull; d += W) (VF::load(o + d) * inv).store(dst + d);
    if (tail) (VF::load(o + d) * inv).store_partial(dst + d, tail);
  }
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
