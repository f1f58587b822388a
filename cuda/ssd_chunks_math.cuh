// Per-lane math of the CUDA Mamba-2 SSD prefill in chunked matrix form on
// the tensor cores ("chunks", cuda/ssd.cu), shared with the host emulation
// (cuda/check). Semantics: kernels/ssd.h; the recurrence kernel that devices
// before sm_80 and shapes past these limits run is cuda/ssd_math.cuh.
//
// The packed sequences are cut into chunks of kSsdQ tokens that restart at
// every sequence start (as the CPU's, kernels/ssd.h): chunk j of the table
// (ssd_chunk_table) is chunk k of sequence s. With cum_t the inclusive sum
// of dt A over the chunk's tokens (ssd_minimal_discrete, Dao and Gu, arXiv
// 2405.21060, section 6), per (chunk, head):
//   1. state kernel: the chunk's end state from zero,
//        S[p][n] = Σ_t B[t][n] exp(cum_end - cum_t) dt_t x[t][p]
//      (M = n rows, N = p columns, K = t), and its decay exp(cum_end);
//   2. passing kernel, per (sequence, head, p, n), in chunk order:
//        H_0 = initial state (or 0), H_{k+1} = decay_k H_k + S_k;
//      H_k replaces S_k in the workspace; the last one is the final state;
//   3. output kernel: y = exp(cum_t) (C H_k)[t][p] + Σ_{s<=t} (C Bᵀ)[t][s]
//      exp(cum_t - cum_s) dt_s x[s][p]; then + D x, gated by silu(z).
// Every product runs on mma.sync m16n8k8 with tf32 inputs in three terms
// (3xTF32: a b ≈ a_hi b_lo + a_lo b_hi + a_hi b_hi, a_hi = tf32(a), a_lo =
// tf32(a - a_hi); about 21 significant bits of each input), so the result
// equals the CPU's float32 matrix form up to float32 rounding. Operands sit
// in shared memory with leading dimensions chosen so that a fragment's 32
// scalar reads fall in 32 banks: ≡ 4 (mod 8) where a lane's row is its
// group g (address g ld + t4), an odd multiple of 8 where it is its t4
// (address t4 ld + g).
#pragma once
#include "ssd_math.cuh"

namespace nm::cuda {

constexpr int kSsdQ = 64;                // tokens per chunk
constexpr int kSsdChunkWarps = kSsdQ / 16;  // one m16 row of tiles per warp
constexpr int kSsdChunkThreads = 32 * kSsdChunkWarps;
constexpr int64_t kSsdChunkMaxP = 128;   // headdim the chunks take
constexpr int kSsdChunkMaxPTiles = (int)(kSsdChunkMaxP / 8);
constexpr int kSsdQTiles = kSsdQ / 8;

// ------------------------------------------------------------ tf32 terms

// cvt.rna.tf32.f32 (nearest, ties away from zero; the low 13 bits zero),
// in integer operations so that device and host round alike. NaN stays NaN.
NM_HD uint32_t tf32_bits(float v) {
  const uint32_t b = float_to_bits(v);
  if ((b & 0x7f800000u) == 0x7f800000u) return (b & 0x7fffffu) ? (b | 0x400000u) & 0xffffe000u : b;
  return (b + 0x1000u) & 0xffffe000u;
}

struct Tf32Pair {
  uint32_t hi, lo;
};
NM_HD Tf32Pair tf32_split(float v) {
  const uint32_t hi = tf32_bits(v);
  return {hi, tf32_bits(v - bits_to_float(hi))};
}

// Fragments of mma.m16n8k8 with tf32 inputs for lane l (g = l / 4, t4 =
// l % 4): A element i at (row g + 8 (i & 1), column t4 + 4 (i >> 1)), B
// element i at (row t4 + 4 i, column g), accumulator q at (row g + 8 (q >> 1),
// column 2 t4 + (q & 1)).
NM_HD int tf32_a_row(int l, int i) { return l / 4 + 8 * (i & 1); }
NM_HD int tf32_a_col(int l, int i) { return l % 4 + 4 * (i >> 1); }
NM_HD int tf32_b_row(int l, int i) { return l % 4 + 4 * i; }
NM_HD int tf32_b_col(int l) { return l / 4; }
NM_HD int tf32_c_row(int l, int q) { return l / 4 + 8 * (q >> 1); }
NM_HD int tf32_c_col(int l, int q) { return 2 * (l % 4) + (q & 1); }

// A shared-memory operand: element (r, c) at p[r * sr + c * sc].
struct SmemMat {
  const float* p;
  int64_t sr, sc;
};

// Lane l's A fragment of the 16 x 8 tile at (m0, k0), split.
NM_HD void tf32_frag_a(const SmemMat& A, int m0, int k0, int l, uint32_t (&hi)[4], uint32_t (&lo)[4]) {
NM_UNROLL
  for (int i = 0; i < 4; ++i) {
    const Tf32Pair t = tf32_split(A.p[(m0 + tf32_a_row(l, i)) * A.sr + (k0 + tf32_a_col(l, i)) * A.sc]);
    hi[i] = t.hi, lo[i] = t.lo;
  }
}

// Lane l's B fragment of the 8 x 8 tile at (k0, n0), split.
NM_HD void tf32_frag_b(const SmemMat& B, int k0, int n0, int l, uint32_t (&hi)[2], uint32_t (&lo)[2]) {
NM_UNROLL
  for (int i = 0; i < 2; ++i) {
    const Tf32Pair t = tf32_split(B.p[(k0 + tf32_b_row(l, i)) * B.sr + (n0 + tf32_b_col(l)) * B.sc]);
    hi[i] = t.hi, lo[i] = t.lo;
  }
}

// ------------------------------------------------------------ layout

NM_HD int64_t ssd_round8(int64_t v) { return (v + 7) / 8 * 8; }
// Leading dimensions for reads at g ld + t4 (≡ 4 mod 8) and at t4 ld + g
// (an odd multiple of 8), for rows of at least `cols` floats.
NM_HD int64_t ssd_ld_g(int64_t cols) { return ssd_round8(cols) + 4; }
NM_HD int64_t ssd_ld_t(int64_t cols) {
  const int64_t r = ssd_round8(cols);
  return (r / 8) % 2 == 1 ? r : r + 8;
}

// Shared memory of the two block kernels, in floats from the start:
// output kernel: C [Q][ldn], B [Q][ldn] sharing its room with H [pp][ldn]
// (H[p][n], the B operand of C H), G [Q][ldq], X [Q][ldx], dt [Q], cum [Q];
// state kernel: B [Q][ldb] (the A operand Bᵀ), WX [Q][ldx], dt, cum.
struct SsdChunkLayout {
  int64_t np, pp;          // dstate padded to 16, headdim padded to 8
  int64_t ldn, ldq, ldx;   // output kernel
  int64_t ldb, ldw;        // state kernel
  int64_t c, bh, g, x, dt, cum, out_floats;
  int64_t sb, sw, sdt, scum, state_floats;
};

NM_HD SsdChunkLayout ssd_chunk_layout(const SsdChunkScanArgs& a) {
  SsdChunkLayout L;
  L.np = (a.dstate + 15) / 16 * 16, L.pp = ssd_round8(a.headdim);
  L.ldn = ssd_ld_g(L.np), L.ldq = ssd_ld_g(kSsdQ), L.ldx = ssd_ld_t(L.pp);
  const int64_t bh_rows = L.pp > kSsdQ ? L.pp : kSsdQ;
  L.c = 0, L.bh = L.c + kSsdQ * L.ldn, L.g = L.bh + bh_rows * L.ldn, L.x = L.g + kSsdQ * L.ldq;
  L.dt = L.x + kSsdQ * L.ldx, L.cum = L.dt + kSsdQ, L.out_floats = L.cum + kSsdQ;
  L.ldb = ssd_ld_t(L.np), L.ldw = ssd_ld_t(L.pp);
  L.sb = 0, L.sw = L.sb + kSsdQ * L.ldb, L.sdt = L.sw + kSsdQ * L.ldw, L.scum = L.sdt + kSsdQ;
  L.state_floats = L.scum + kSsdQ;
  return L;
}

// Whether the chunks take this shape (headdim, heads) with `smem_limit`
// bytes of shared memory per block (the device's opt-in limit; the
// emulation assumes sm_90's, kSsdEmulatedSmem).
constexpr int64_t kSsdEmulatedSmem = 232448;
NM_HD bool ssd_chunks_apply(const SsdChunkScanArgs& a, int64_t smem_limit) {
  if (a.headdim > kSsdChunkMaxP || a.nheads > 65535) return false;  // heads are gridDim.y
  const SsdChunkLayout L = ssd_chunk_layout(a);
  return 4 * (L.out_floats > L.state_floats ? L.out_floats : L.state_floats) <= smem_limit;
}

// ------------------------------------------------------------ chunks

// Chunks before sequence s: table[s] (table[nseq] in all), each sequence
// ceil(len / kSsdQ) of them (none for an empty one). One thread.
NM_HD void ssd_chunk_table(const SsdChunkScanArgs& a, int32_t* table) {
  int64_t n = 0;
  table[0] = 0;
  for (int64_t s = 0; s < a.nseq; ++s) {
    n += ((int64_t)a.cu_seqlens[s + 1] - a.cu_seqlens[s] + kSsdQ - 1) / kSsdQ;
    table[s + 1] = (int32_t)n;
  }
}

// An upper bound of table[nseq] known on the host: Σ ceil(len_s / Q) <=
// tokens / Q + nseq.
NM_HD int64_t ssd_chunks_max(const SsdChunkScanArgs& a) { return (a.tokens + kSsdQ - 1) / kSsdQ + a.nseq; }

// Workspace: H / S [chunks_max][nheads][headdim][dstate], decay
// [chunks_max][nheads], then the int32 table [nseq + 1].
NM_HD int64_t ssd_chunks_state_floats(const SsdChunkScanArgs& a) {
  return ssd_chunks_max(a) * a.nheads * a.headdim * a.dstate;
}
NM_HD int64_t ssd_chunks_workspace_bytes(const SsdChunkScanArgs& a) {
  return 4 * (ssd_chunks_state_floats(a) + ssd_chunks_max(a) * a.nheads + a.nseq + 1);
}

struct SsdChunkWs {
  float* h;
  float* decay;
  int32_t* table;
};
NM_HD SsdChunkWs ssd_chunk_ws(const SsdChunkScanArgs& a, void* ws) {
  float* f = static_cast<float*>(ws);
  float* decay = f + ssd_chunks_state_floats(a);
  return {f, decay, reinterpret_cast<int32_t*>(decay + ssd_chunks_max(a) * a.nheads)};
}

struct SsdChunk {
  int64_t s, t0, len;
  bool first;  // the sequence's first chunk
};

// Chunk j of the table; false past the last.
NM_HD bool ssd_chunk_at(const SsdChunkScanArgs& a, const int32_t* table, int64_t j, SsdChunk& c) {
  if (j >= (int64_t)table[a.nseq]) return false;
  c.s = sequence_of(table, a.nseq, j);
  const int64_t k = j - table[c.s];
  c.t0 = (int64_t)a.cu_seqlens[c.s] + k * kSsdQ;
  const int64_t left = (int64_t)a.cu_seqlens[c.s + 1] - c.t0;
  c.len = left < kSsdQ ? left : kSsdQ;
  c.first = k == 0;
  return true;
}

// Thread i < Q: dt of the chunk's token i (0 past its length).
NM_HD void ssd_chunk_dt(const SsdChunkScanArgs& a, const SsdChunk& c, int64_t h, int i, float* dt) {
  dt[i] = i < c.len ? ssd_dt(a, c.t0 + i, h) : 0.0f;
}

// One thread: cum[i] = Σ_{j <= i} dt_j A_h log2 e, in token order (log2
// units: exp(cum_t - cum_s) = exp2(cum[t] - cum[s])).
NM_HD void ssd_chunk_cumsum(const SsdChunkScanArgs& a, int64_t h, const float* dt, float* cum) {
  const float A2 = a.A[h] * kLog2e;
  float s = 0.0f;
  for (int i = 0; i < kSsdQ; ++i) {
    s = fmaf(dt[i], A2, s);
    cum[i] = s;
  }
}

// Element i of a Q x cols staging of token rows (row r at base + (t0 + r)
// stride), zero past the chunk's length and past `cols` up to `cols_pad`,
// each row times rs[r] when rs is given; i < Q cols_pad.
NM_HD void ssd_stage(float* sm, int64_t ld, int64_t cols_pad, const float* base, int64_t stride, const SsdChunk& c,
                     int64_t cols, const float* rs, int64_t i) {
  const int64_t r = i / cols_pad, col = i % cols_pad;
  float v = 0.0f;
  if (r < c.len && col < cols) {
    v = base[(c.t0 + r) * stride + col];
    if (rs) v = v * rs[r];
  }
  sm[r * ld + col] = v;
}

// The state kernel's row weights: w_t = exp(cum_end - cum_t) dt_t (in place
// of dt; thread i < Q, after the cumsum).
NM_HD float ssd_chunk_weight(const float* dt, const float* cum, int i) {
  return scan_exp2(cum[kSsdQ - 1] - cum[i]) * dt[i];
}

// The output kernel's masked score: (C Bᵀ)[t][s] exp(cum_t - cum_s) dt_s for
// s <= t, else 0.
NM_HD float ssd_chunk_score(float cb, const float* dt, const float* cum, int t, int s) {
  return s <= t ? cb * scan_exp2(cum[t] - cum[s]) * dt[s] : 0.0f;
}

// Element i of the staging of H_k [pp][ldn] (H[p][n]) from the workspace
// (zero past headdim / dstate); i < pp np.
NM_HD void ssd_stage_h(const SsdChunkScanArgs& a, const SsdChunkLayout& L, float* hs, const float* h, int64_t i) {
  const int64_t p = i / L.np, n = i % L.np;
  hs[p * L.ldn + n] = p < a.headdim && n < a.dstate ? h[p * a.dstate + n] : 0.0f;
}

// The output of token t (chunk row), position p: y + D x, gated.
NM_HD void ssd_chunk_write(const SsdChunkScanArgs& a, const SsdChunk& c, int64_t h, int t, int64_t p, float y) {
  const int64_t tok = c.t0 + t, ch = h * a.headdim + p;
  const float xv = a.x[tok * a.x_stride + ch];
  float r = a.D ? fmaf(a.D[h], xv, y) : y;
  if (a.z) r = r * silu(a.z[tok * a.z_stride + ch]);
  a.out[tok * a.out_stride + ch] = r;
}

// Passing, element e = p dstate + n of head h of sequence s (i over nseq x
// nheads x headdim x dstate). The chunks' S and decays are read
// kSsdPassBatch at a time before any H is written (the writes could alias
// them as far as the compiler knows: one by one, each read would wait for
// the previous write).
constexpr int kSsdPassBatch = 8;
NM_HD void ssd_chunk_pass(const SsdChunkScanArgs& a, const SsdChunkWs& ws, int64_t i) {
  const int64_t per_h = a.headdim * a.dstate, per_s = a.nheads * per_h;
  const int64_t s = i / per_s, h = (i % per_s) / per_h, e = i % per_h;
  float hv = a.initial_states ? a.initial_states[i] : 0.0f;
  const int64_t j1 = ws.table[s + 1];
  for (int64_t j0 = ws.table[s]; j0 < j1; j0 += kSsdPassBatch) {
    float sv[kSsdPassBatch], dv[kSsdPassBatch];
NM_UNROLL
    for (int u = 0; u < kSsdPassBatch; ++u) {
      const int64_t j = j0 + u < j1 ? j0 + u : j1 - 1;
      sv[u] = ws.h[(j * a.nheads + h) * per_h + e];
      dv[u] = ws.decay[j * a.nheads + h];
    }
NM_UNROLL
    for (int u = 0; u < kSsdPassBatch; ++u) {
      if (j0 + u >= j1) break;
      ws.h[((j0 + u) * a.nheads + h) * per_h + e] = hv;
      hv = fmaf(dv[u], hv, sv[u]);
    }
  }
  a.final_states[i] = hv;
}

}  // namespace nm::cuda
