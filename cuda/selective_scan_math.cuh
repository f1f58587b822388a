// Per-thread math of the CUDA selective scan / state update kernels
// (cuda/selective_scan.cu), shared with the host emulation (cuda/check).
// Semantics: kernels/selective_scan.h.
//
// selective_scan (prefill) is parallel over tokens as well as channels: the
// tokens are cut into chunks of `len` (scan_chunk_len) and, with the state
// h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t linear in h_{t-1},
//   1. summary, thread per (batch, chunk c < last, channel d): the chunk's
//      state from h = 0 and the sum of its dt (exp(A Σ dt) is the chunk's
//      decay: the product of its steps' exp(dt A));
//   2. carry, thread per (batch, state n, channel d): h_init[c + 1] =
//      exp(A Σdt_c) h_init[c] + h_local[c], in chunk order (h_init[0] = the
//      initial state);
//   3. outputs, thread per (batch, chunk, channel): the chunk from h_init[c],
//      as the CPU kernel does per token; the last chunk writes last_state.
// Phases 1 and 3 each evaluate exp(dt A) for every (token, channel, state);
// the workspace (scan_workspace_floats) holds h_local / h_init [batch][chunk]
// [state][channel] (channels fastest: coalesced) and Σdt [batch][chunk]
// [channel]. One chunk: phase 3 alone, from initial_state.
// The decay factors are 2^(dt * A log2 e) with the hardware's approximate
// exp2 on the device (exp2f on the host); the CPU kernel takes expf(dt A)
// and sums over one chunk: equal up to float32 rounding (tolerance 2e-5).
// selective_state_update: up to 32 threads per state row and a tree sum
// (below); the CPU kernel sums in another order: equal up to rounding.
#pragma once
#include "kernels/selective_scan.h"
#include "math_common.cuh"

namespace nm::cuda {

NM_HD float scan_dt(float dt, const float* bias, int64_t i, bool softplus_on) {
  if (bias) dt = dt + bias[i];
  if (softplus_on) dt = softplus(dt);
  return dt;
}

// Tokens per chunk: `requested` when > 0, else chosen so that batch x dim x
// chunks reaches about kScanTargetThreads, with chunks of at least
// kScanMinChunk tokens (the workspace traffic per chunk is that of ~(N + 1) /
// 4 tokens' inputs). A length >= seqlen is one chunk.
constexpr int64_t kScanTargetThreads = 1 << 17;
constexpr int64_t kScanMinChunk = 64;

NM_HD int64_t scan_chunk_len(const SelectiveScanArgs& a, int64_t requested) {
  if (requested > 0) return requested;
  const int64_t lanes = a.batch * a.dim > 0 ? a.batch * a.dim : 1;
  const int64_t want = (kScanTargetThreads + lanes - 1) / lanes;
  const int64_t len = (a.seqlen + want - 1) / want;
  return len < kScanMinChunk ? kScanMinChunk : len;
}

NM_HD int64_t scan_chunks(const SelectiveScanArgs& a, int64_t len) {
  return a.seqlen <= len ? 1 : (a.seqlen + len - 1) / len;
}

// Threads per channel in phases 1 and 3 (ScanPart below): `requested` when
// > 0, else 2 for dstate 16 at batch x dim under 4096 and 1 otherwise; 0 for
// a request this dstate does not allow (2 needs dstate 16).
NM_HD int scan_parts(const SelectiveScanArgs& a, int requested) {
  // Measured on an H200 (bench/NOTES.md): two lanes per channel paid at
  // batch x dim 1536 and cost at 4096.
  if (requested == 0) return a.dstate == 16 && a.batch * a.dim < 4096 ? 2 : 1;
  if (requested == 1) return 1;
  return requested == 2 && a.dstate == 16 ? 2 : 0;
}

// Floats of the workspace for `chunks` chunks (0 for one chunk).
NM_HD int64_t scan_workspace_floats(const SelectiveScanArgs& a, int64_t chunks) {
  return chunks <= 1 ? 0 : a.batch * chunks * a.dim * (a.dstate + 1);
}

// The workspace's two arrays.
struct ScanWorkspace {
  float* h;    // [batch][chunks][dstate][dim]
  float* sdt;  // [batch][chunks][dim]
  int64_t chunks;
};

NM_HD ScanWorkspace scan_workspace(const SelectiveScanArgs& a, float* ws, int64_t chunks) {
  return {ws, ws + a.batch * chunks * a.dstate * a.dim, chunks};
}

NM_HD float scan_exp2(float x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#else
  return exp2f(x);
#endif
}

constexpr float kLog2e = 1.4426950408889634f;

// The per-thread view of one (batch row, channel) and its token range.
struct ScanLane {
  const float *u, *delta, *B, *C, *z;
  float* out;
  int64_t g;
};

NM_HD ScanLane scan_lane(const SelectiveScanArgs& a, int64_t b, int64_t d) {
  const int64_t N = a.dstate, g = d / (a.dim / a.ngroups);
  ScanLane s;
  s.u = a.u + b * a.u_batch_stride + d;
  s.delta = a.delta + b * a.delta_batch_stride + d;
  s.B = a.B + b * a.B_batch_stride + g * N;
  s.C = a.C + b * a.C_batch_stride + g * N;
  s.z = a.z ? a.z + b * a.z_batch_stride + d : nullptr;
  s.out = a.out + b * a.out_batch_stride + d;
  s.g = g;
  return s;
}

// Phases 1 and 3 split a channel's states over PARTS consecutive threads
// (lanes): part p owns states [p * NP, (p + 1) * NP), NP = N / PARTS. PARTS
// is 2 for dstate 16 (8 states per thread: half the registers and the serial
// work per token of one thread per channel) and 1 otherwise; phase 3 adds
// the parts' partial sums of y per token (a lane shuffle on the device).
// NMAX: the state capacity; NMAX <= 32 means a.dstate == NMAX exactly (a
// compile-time trip count: the loops over n unroll and the states stay in
// registers), larger NMAX any a.dstate <= NMAX (then PARTS is 1).
template <int NMAX, int PARTS>
struct ScanPart {
  static constexpr int NP = NMAX <= 32 ? NMAX / PARTS : NMAX;
  float S[NP], A2[NP];
  int64_t N, n0, np;  // dstate, first state, states owned
};

// Row p[n0 .. n0 + np) of B or C into v (16-byte loads on the device where
// aligned and NP is a multiple of 4).
template <int NP>
NM_HD void load_state_row(const float* p, int64_t np, float (&v)[NP]) {
#if defined(__CUDA_ARCH__)
  if (NP <= 32 && NP % 4 == 0 && ((uintptr_t)p & 15u) == 0) {
    const float4* q = reinterpret_cast<const float4*>(p);
NM_UNROLL
    for (int i = 0; i < NP / 4; ++i) {
      const float4 t = __ldg(q + i);
      v[4 * i] = t.x, v[4 * i + 1] = t.y, v[4 * i + 2] = t.z, v[4 * i + 3] = t.w;
    }
    return;
  }
#endif
NM_UNROLL
  for (int64_t n = 0; n < np; ++n) v[n] = p[n];
}

// Part `part` of channel d: its states' A * log2 e, states from init
// (stride init_stride between states; null: zeros).
template <int NMAX, int PARTS>
NM_HD void scan_part_init(const SelectiveScanArgs& a, int64_t d, int part, const float* init, int64_t init_stride,
                          ScanPart<NMAX, PARTS>& p) {
  constexpr int NP = ScanPart<NMAX, PARTS>::NP;
  p.N = NMAX <= 32 ? (int64_t)NMAX : a.dstate;
  p.np = NMAX <= 32 ? (int64_t)NP : a.dstate;
  p.n0 = part * p.np;
  const int64_t np = NMAX <= 32 ? (int64_t)NP : p.np;  // a compile-time count where it can be
NM_UNROLL
  for (int64_t j = 0; j < np; ++j) {
    p.S[j] = init ? init[(p.n0 + j) * init_stride] : 0.0f;
    p.A2[j] = a.A[d * p.N + p.n0 + j] * kLog2e;
  }
}

// Phase 1: part `part` of the state of chunk c (c < chunks - 1) of batch row
// b, channel d, from zero, into slot c + 1 of ws.h; part 0 writes the
// chunk's Σdt into ws.sdt.
template <int NMAX, int PARTS>
NM_HD void scan_chunk_summary(const SelectiveScanArgs& a, int64_t len, const ScanWorkspace& ws, int64_t b, int64_t c,
                              int64_t d, int part) {
  constexpr int NP = ScanPart<NMAX, PARTS>::NP;
  ScanPart<NMAX, PARTS> p;
  scan_part_init<NMAX, PARTS>(a, d, part, nullptr, 0, p);
  const int64_t np = NMAX <= 32 ? (int64_t)NP : p.np;
  const ScanLane s = scan_lane(a, b, d);
  const int64_t l0 = c * len, l1 = l0 + len < a.seqlen ? l0 + len : a.seqlen;
  float sdt = 0.0f;
  // Each token's inputs are loaded one token ahead (the loads do not wait on
  // the recurrence).
  float draw = l0 < l1 ? s.delta[l0 * a.delta_token_stride] : 0.0f, uraw = l0 < l1 ? s.u[l0 * a.u_token_stride] : 0.0f;
  for (int64_t l = l0; l < l1; ++l) {
    float Bv[NP];
    load_state_row<NP>(s.B + l * a.B_token_stride + p.n0, np, Bv);
    const float dcur = draw, ucur = uraw;
    if (l + 1 < l1) draw = s.delta[(l + 1) * a.delta_token_stride], uraw = s.u[(l + 1) * a.u_token_stride];
    const float dl = scan_dt(dcur, a.delta_bias, d, a.delta_softplus);
    const float du = dl * ucur;
    sdt += dl;
NM_UNROLL
    for (int64_t j = 0; j < np; ++j) p.S[j] = fmaf(scan_exp2(dl * p.A2[j]), p.S[j], du * Bv[j]);
  }
  float* h = ws.h + ((b * ws.chunks + c + 1) * p.N + p.n0) * a.dim + d;
NM_UNROLL
  for (int64_t j = 0; j < np; ++j) h[j * a.dim] = p.S[j];
  if (part == 0) ws.sdt[(b * ws.chunks + c) * a.dim + d] = sdt;
}

// Phase 2 for batch row b, state n, channel d: slot 0 = the initial state,
// slot c + 1 = exp(A Σdt_c) slot c + slot c + 1 (in place, chunk order).
NM_HD void scan_carry(const SelectiveScanArgs& a, const ScanWorkspace& ws, int64_t b, int64_t n, int64_t d) {
  const int64_t N = a.dstate;
  const float A2 = a.A[d * N + n] * kLog2e;
  float h = a.initial_state ? a.initial_state[b * a.initial_state_batch_stride + d * N + n] : 0.0f;
  float* slot = ws.h + (b * ws.chunks * N + n) * a.dim + d;  // slot 0; slots are N * dim apart
  const float* sdt = ws.sdt + b * ws.chunks * a.dim + d;
  slot[0] = h;
  for (int64_t c = 0; c + 1 < ws.chunks; ++c) {
    float* next = slot + (c + 1) * N * a.dim;
    h = fmaf(scan_exp2(sdt[c * a.dim] * A2), h, *next);
    *next = h;
  }
}

// Phase 3, per thread: the outputs of chunk c of batch row b, channel d, from
// the chunk's initial state (ws.h slot c, or initial_state when ws.chunks ==
// 1), token by token:
//   ScanOut o; scan_out_begin(...);
//   for l in [o.l0, o.l1): y = sum over parts of scan_out_token(...);
//                          part 0: scan_out_write(..., y);
//   scan_out_end(...)  (the last chunk's parts write last_state).
template <int NMAX, int PARTS>
struct ScanOut {
  ScanPart<NMAX, PARTS> p;
  ScanLane s;
  int64_t d, l0, l1;
  float Dd, draw, uraw, zraw;  // the next token's raw inputs (loaded one ahead)
};

template <int NMAX, int PARTS>
NM_HD void scan_out_begin(const SelectiveScanArgs& a, int64_t len, const ScanWorkspace& ws, int64_t b, int64_t c,
                          int64_t d, int part, ScanOut<NMAX, PARTS>& o) {
  const int64_t N = NMAX <= 32 ? (int64_t)NMAX : a.dstate;
  const float* init = nullptr;
  int64_t init_stride = 1;
  if (ws.chunks > 1) {
    init = ws.h + ((b * ws.chunks + c) * N) * a.dim + d, init_stride = a.dim;
  } else if (a.initial_state) {
    init = a.initial_state + b * a.initial_state_batch_stride + d * N;
  }
  scan_part_init<NMAX, PARTS>(a, d, part, init, init_stride, o.p);
  o.s = scan_lane(a, b, d);
  o.d = d;
  o.l0 = c * len, o.l1 = o.l0 + len < a.seqlen ? o.l0 + len : a.seqlen;
  o.Dd = a.D ? a.D[d] : 0.0f;
  o.draw = o.uraw = o.zraw = 0.0f;
  if (o.l0 < o.l1) {
    o.draw = o.s.delta[o.l0 * a.delta_token_stride], o.uraw = o.s.u[o.l0 * a.u_token_stride];
    if (o.s.z) o.zraw = o.s.z[o.l0 * a.z_token_stride];
  }
}

// Token l (the next one): updates the part's states and returns its partial
// Σ_n h·C, summed in four interleaved partial sums (n mod 4, then ((y0 + y1)
// + (y2 + y3))): shorter dependency chains than one running sum. `ul` / `zl`
// receive the token's u and z for scan_out_write.
template <int NMAX, int PARTS>
NM_HD float scan_out_token(const SelectiveScanArgs& a, ScanOut<NMAX, PARTS>& o, int64_t l, float& ul, float& zl) {
  constexpr int NP = ScanPart<NMAX, PARTS>::NP;
  const int64_t np = NMAX <= 32 ? (int64_t)NP : o.p.np;
  float Bv[NP], Cv[NP];
  load_state_row<NP>(o.s.B + l * a.B_token_stride + o.p.n0, np, Bv);
  load_state_row<NP>(o.s.C + l * a.C_token_stride + o.p.n0, np, Cv);
  const float dcur = o.draw;
  ul = o.uraw, zl = o.zraw;
  if (l + 1 < o.l1) {
    o.draw = o.s.delta[(l + 1) * a.delta_token_stride], o.uraw = o.s.u[(l + 1) * a.u_token_stride];
    if (o.s.z) o.zraw = o.s.z[(l + 1) * a.z_token_stride];
  }
  const float dl = scan_dt(dcur, a.delta_bias, o.d, a.delta_softplus);
  const float du = dl * ul;
  float y[4] = {0.0f, 0.0f, 0.0f, 0.0f};
NM_UNROLL
  for (int64_t j = 0; j < np; ++j) {
    const float st = fmaf(scan_exp2(dl * o.p.A2[j]), o.p.S[j], du * Bv[j]);
    o.p.S[j] = st;
    y[j & 3] = fmaf(st, Cv[j], y[j & 3]);
  }
  return (y[0] + y[1]) + (y[2] + y[3]);
}

// out[l] from the token's Σ_n h·C over all parts (part 0 writes).
template <int NMAX, int PARTS>
NM_HD void scan_out_write(const SelectiveScanArgs& a, const ScanOut<NMAX, PARTS>& o, int64_t l, float y, float ul,
                          float zl) {
  float r = fmaf(ul, o.Dd, y);
  if (o.s.z) r = r * silu(zl);
  o.s.out[l * a.out_token_stride] = r;
}

template <int NMAX, int PARTS>
NM_HD void scan_out_end(const SelectiveScanArgs& a, const ScanWorkspace& ws, int64_t b, int64_t c,
                        const ScanOut<NMAX, PARTS>& o) {
  if (!a.last_state || c != ws.chunks - 1) return;
  constexpr int NP = ScanPart<NMAX, PARTS>::NP;
  const int64_t np = NMAX <= 32 ? (int64_t)NP : o.p.np;
  float* last = a.last_state + b * a.last_state_batch_stride + o.d * o.p.N + o.p.n0;
NM_UNROLL
  for (int64_t j = 0; j < np; ++j) last[j] = o.p.S[j];
}

// selective_state_update: blocks of kUpdateThreads threads; each row r of a
// batch row b (state[slot(b), r, :], dstate contiguous) gets tpr =
// update_threads_per_row(dstate) consecutive threads (lanes), so a warp reads
// and writes whole runs of the state (coalesced). Lane l owns the states
// n = l, l + tpr, ...:
//   1. it updates them and sums s·C over them in order (fmaf) ->
//      selective_state_update_partial;
//   2. the row's tpr partials are summed as a fixed tree (stride tpr/2, ...,
//      1: a butterfly of shuffles on the device; tree_sum_host repeats it on
//      the host);
//   3. lane 0 adds x·D, gates with silu(z) and writes out ->
//      selective_state_update_finish.
constexpr int kUpdateThreads = 128;

// Lanes per state row: the power of two >= dstate, at most 32.
NM_HD int update_threads_per_row(int64_t dstate) {
  int t = 1;
  while (t < dstate && t < 32) t <<= 1;
  return t;
}

NM_HD float update_dt(const SelectiveStateUpdateArgs& a, int64_t b, int64_t h) {
  float dt = a.dt[b * a.dt_batch_stride + h];
  if (a.dt_bias) dt = dt + a.dt_bias[h];
  if (a.dt_softplus) dt = softplus(dt);
  if (a.dt_min > -INFINITY || a.dt_max < INFINITY) dt = fminf(fmaxf(dt, a.dt_min), a.dt_max);
  return dt;
}

// The update's operands x [batch, rows] and B, C [batch, ngroups · dstate]:
// the args' float ones here; UpdateQ8Operands (cuda/ssm_q8_math.cuh) reads
// int8 ones with their scales, so that the int8 path is one kernel too.
struct UpdateFloatOperands {
  const float *x, *B, *C;
  int64_t x_stride, B_stride, C_stride;  // per batch row
  static UpdateFloatOperands of(const SelectiveStateUpdateArgs& a) {
    return {a.x, a.B, a.C, a.x_batch_stride, a.B_batch_stride, a.C_batch_stride};
  }
  NM_HD float x_at(int64_t b, int64_t r) const { return x[b * x_stride + r]; }
  NM_HD float B_at(int64_t b, int64_t i) const { return B[b * B_stride + i]; }  // i = g · dstate + n
  NM_HD float C_at(int64_t b, int64_t i) const { return C[b * C_stride + i]; }
};

// Step 1 for lane `lane` (of tpr) of batch row b, row r = h * headdim + p.
template <class Ops>
NM_HD float selective_state_update_partial(const SelectiveStateUpdateArgs& a, const Ops& o, int64_t b, int64_t r,
                                           int lane, int tpr) {
  const int64_t N = a.dstate, h = r / a.headdim, gN = h / (a.nheads / a.ngroups) * N;
  const float dt = update_dt(a, b, h);
  const int64_t slot = a.state_indices ? (int64_t)a.state_indices[b] : b;
  float* s = a.state + slot * a.state_batch_stride + r * N;
  const float dtx = dt * o.x_at(b, r);
  float acc = 0.0f;
  if (a.a_per_state) {
    const float* Ar = a.A + h * N;
    for (int64_t n = lane; n < N; n += tpr) {
      const float sv = fmaf(s[n], expf(dt * Ar[n]), dtx * o.B_at(b, gN + n));
      s[n] = sv;
      acc = fmaf(sv, o.C_at(b, gN + n), acc);
    }
  } else {
    const float dA = expf(dt * a.A[h]);
    for (int64_t n = lane; n < N; n += tpr) {
      const float sv = fmaf(s[n], dA, dtx * o.B_at(b, gN + n));
      s[n] = sv;
      acc = fmaf(sv, o.C_at(b, gN + n), acc);
    }
  }
  return acc;
}

// Step 3 (lane 0): `sum` is the row's Σ_n s·C.
template <class Ops>
NM_HD void selective_state_update_finish(const SelectiveStateUpdateArgs& a, const Ops& o, int64_t b, int64_t r,
                                         float sum) {
  const int64_t h = r / a.headdim;
  const float xv = o.x_at(b, r);
  float y = sum + (a.D ? xv * a.D[h] : 0.0f);
  if (a.z) y = y * silu(a.z[b * a.z_batch_stride + r]);
  a.out[b * a.out_batch_stride + r] = y;
}

}  // namespace nm::cuda
