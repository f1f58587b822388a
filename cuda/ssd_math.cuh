// Per-thread math of the CUDA Mamba-2 SSD prefill (cuda/ssd.cu), shared with
// the host emulation (cuda/check). Semantics: kernels/ssd.h (the recurrence
// state_t = exp(dt_t A_h) state_{t-1} + dt_t x_t ⊗ B_t, y_t = state_t · C_t
// + D_h x_t, gated by silu(z_t), restarting at every sequence start).
//
// The CUDA version runs the recurrence itself, parallel over token chunks of
// the packed token axis (as the Mamba-1 scan, selective_scan_math.cuh), over
// channels c = (head h, position p) and over parts of the state: a channel's
// dstate states are split over kSsdParts(dstate) consecutive lanes of 16
// states each, whose partial sums of y meet in a butterfly of shuffles
// (tree_sum_host on the host). With one scalar decay per head and token the
// chunk's decay is one number per channel, so the phases are:
//   1. summary, per (chunk k < last, channel, part): the chunk's end state
//      from zero, restarting at any sequence start inside it (from that
//      sequence's initial state), and the chunk's decay exp(A_h Σdt), 0 when
//      a sequence starts inside the chunk (the carry then does not flow in);
//   2. carry, per (channel, state): h_init[k + 1] = decay_k h_init[k] +
//      end_k, in chunk order;
//   3. outputs, per (chunk, channel, part): the chunk from h_init[k] (or the
//      initial state at a sequence start), writing out and, at each
//      sequence's last token, final_states; empty sequences get their
//      initial state (or zeros) from a small kernel of their own.
// The decay factors use the hardware's approximate exp2 on the device
// (exp2f on the host): equal to the CPU's chunked matrix form up to float32
// rounding (tolerance 2e-5).
#pragma once
#include "kernels/ssd.h"
#include "math_common.cuh"
#include "selective_scan_math.cuh"

namespace nm::cuda {

constexpr int kSsdStatesPerPart = 16;
constexpr int64_t kSsdTargetThreads = 1 << 18;
constexpr int64_t kSsdMinChunk = 64;

// Lanes per channel: the power of two >= dstate / 16 (1 .. 16).
NM_HD int ssd_parts(int64_t dstate) {
  int p = 1;
  while (p * kSsdStatesPerPart < dstate) p <<= 1;
  return p;
}

NM_HD int64_t ssd_chunk_len(const SsdChunkScanArgs& a, int64_t requested) {
  if (requested > 0) return requested;
  const int64_t lanes = a.nheads * a.headdim * ssd_parts(a.dstate);
  const int64_t want = (kSsdTargetThreads + lanes - 1) / (lanes > 0 ? lanes : 1);
  const int64_t len = (a.tokens + want - 1) / (want > 0 ? want : 1);
  return len < kSsdMinChunk ? kSsdMinChunk : len;
}

NM_HD int64_t ssd_chunks(const SsdChunkScanArgs& a, int64_t len) {
  return a.tokens <= len ? 1 : (a.tokens + len - 1) / len;
}

// Workspace: h [chunks][dstate][dim] then decay [chunks][dim] (dim = nheads
// x headdim); none for one chunk.
NM_HD int64_t ssd_workspace_floats(const SsdChunkScanArgs& a, int64_t chunks) {
  return chunks <= 1 ? 0 : chunks * a.nheads * a.headdim * (a.dstate + 1);
}

struct SsdWorkspace {
  float* h;
  float* decay;
  int64_t chunks;
};

NM_HD SsdWorkspace ssd_workspace(const SsdChunkScanArgs& a, float* ws, int64_t chunks) {
  return {ws, ws ? ws + chunks * a.dstate * a.nheads * a.headdim : nullptr, chunks};
}

NM_HD float ssd_dt(const SsdChunkScanArgs& a, int64_t t, int64_t h) {
  float dt = a.dt[t * a.dt_stride + h];
  if (a.dt_bias) dt = dt + a.dt_bias[h];
  if (a.dt_softplus) dt = softplus(dt);
  if (a.dt_min > -INFINITY || a.dt_max < INFINITY) dt = fminf(fmaxf(dt, a.dt_min), a.dt_max);
  return dt;
}

// One lane's view: channel c = h * headdim + p, states n0 .. n0 + 15 (those
// below dstate).
struct SsdLane {
  int64_t c, h, p, g, n0, dim;
  float A2;  // A_h log2 e
  float S[kSsdStatesPerPart];
};

NM_HD void ssd_lane_init(const SsdChunkScanArgs& a, int64_t c, int part, SsdLane& l) {
  l.dim = a.nheads * a.headdim;
  l.c = c, l.h = c / a.headdim, l.p = c % a.headdim;
  l.g = l.h / (a.nheads / a.ngroups);
  l.n0 = (int64_t)part * kSsdStatesPerPart;
  l.A2 = a.A[l.h] * kLog2e;
NM_UNROLL
  for (int j = 0; j < kSsdStatesPerPart; ++j) l.S[j] = 0.0f;
}

// The lane's states from sequence s's initial state (zeros without one).
NM_HD void ssd_lane_load_initial(const SsdChunkScanArgs& a, int64_t s, SsdLane& l) {
  const float* init = a.initial_states ? a.initial_states + (s * l.dim + l.c) * a.dstate : nullptr;
NM_UNROLL
  for (int j = 0; j < kSsdStatesPerPart; ++j) l.S[j] = init && l.n0 + j < a.dstate ? init[l.n0 + j] : 0.0f;
}

// Token t: state update; returns the lane's partial Σ_n state·C_t (and the
// token's dt in *dt_out when asked).
NM_HD float ssd_lane_token(const SsdChunkScanArgs& a, int64_t t, SsdLane& l, bool want_y, float* dt_out = nullptr) {
  const float dt = ssd_dt(a, t, l.h);
  if (dt_out) *dt_out = dt;
  const float e = scan_exp2(dt * l.A2);
  const float dtx = dt * a.x[t * a.x_stride + l.c];
  const float* B = a.B + t * a.B_stride + l.g * a.dstate + l.n0;
  const float* C = a.C + t * a.C_stride + l.g * a.dstate + l.n0;
  float y[4] = {0.0f, 0.0f, 0.0f, 0.0f};
NM_UNROLL
  for (int j = 0; j < kSsdStatesPerPart; ++j) {
    if (l.n0 + j >= a.dstate) break;
    l.S[j] = fmaf(e, l.S[j], dtx * B[j]);
    if (want_y) y[j & 3] = fmaf(l.S[j], C[j], y[j & 3]);
  }
  return (y[0] + y[1]) + (y[2] + y[3]);
}

// out[t, c] from the token's Σ_n state·C over all parts.
NM_HD void ssd_write_out(const SsdChunkScanArgs& a, int64_t t, const SsdLane& l, float y) {
  const float xv = a.x[t * a.x_stride + l.c];
  float r = a.D ? fmaf(a.D[l.h], xv, y) : y;
  if (a.z) r = r * silu(a.z[t * a.z_stride + l.c]);
  a.out[t * a.out_stride + l.c] = r;
}

NM_HD void ssd_write_final(const SsdChunkScanArgs& a, int64_t s, const SsdLane& l) {
  float* f = a.final_states + (s * l.dim + l.c) * a.dstate;
NM_UNROLL
  for (int j = 0; j < kSsdStatesPerPart; ++j)
    if (l.n0 + j < a.dstate) f[l.n0 + j] = l.S[j];
}

// Tokens of chunk k: [t0, t1).
NM_HD void ssd_chunk_range(const SsdChunkScanArgs& a, int64_t len, int64_t k, int64_t& t0, int64_t& t1) {
  t0 = k * len;
  t1 = t0 + len < a.tokens ? t0 + len : a.tokens;
}

// Phase 1 for chunk k (not the last), channel c, part.
NM_HD void ssd_chunk_summary(const SsdChunkScanArgs& a, int64_t len, const SsdWorkspace& ws, int64_t k, int64_t c,
                             int part) {
  SsdLane l;
  ssd_lane_init(a, c, part, l);
  int64_t t0, t1;
  ssd_chunk_range(a, len, k, t0, t1);
  int64_t s = sequence_of(a.cu_seqlens, a.nseq, t0);
  bool reset = false;
  float sdt = 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    while (s + 1 < a.nseq && (int64_t)a.cu_seqlens[s + 1] <= t) ++s;
    if ((int64_t)a.cu_seqlens[s] == t) {  // a sequence starts here
      ssd_lane_load_initial(a, s, l);
      reset = true;
    }
    float dt;
    ssd_lane_token(a, t, l, false, &dt);
    sdt += dt;
  }
  float* h = ws.h + ((k + 1) * a.dstate + l.n0) * l.dim + c;
NM_UNROLL
  for (int j = 0; j < kSsdStatesPerPart; ++j)
    if (l.n0 + j < a.dstate) h[j * l.dim] = l.S[j];
  if (part == 0) ws.decay[k * l.dim + c] = reset ? 0.0f : scan_exp2(sdt * l.A2);
}

// Phase 2 for channel c, state n.
NM_HD void ssd_carry(const SsdChunkScanArgs& a, const SsdWorkspace& ws, int64_t c, int64_t n) {
  const int64_t dim = a.nheads * a.headdim;
  float h = 0.0f;
  ws.h[n * dim + c] = h;  // slot 0: chunk 0 starts a sequence and never reads it
  for (int64_t k = 0; k + 1 < ws.chunks; ++k) {
    float* next = ws.h + ((k + 1) * a.dstate + n) * dim + c;
    h = fmaf(ws.decay[k * dim + c], h, *next);
    *next = h;
  }
}

// Phase 3, per lane (the caller sums the parts' partial y per token and has
// part 0 write it): begin, then for t in [t0, t1) ssd_out_token, then done.
NM_HD void ssd_out_begin(const SsdChunkScanArgs& a, int64_t len, const SsdWorkspace& ws, int64_t k, int64_t c,
                         int part, SsdLane& l, int64_t& s, int64_t& t0, int64_t& t1) {
  ssd_lane_init(a, c, part, l);
  ssd_chunk_range(a, len, k, t0, t1);
  s = sequence_of(a.cu_seqlens, a.nseq, t0);
  if (ws.chunks > 1 && (int64_t)a.cu_seqlens[s] != t0) {  // mid-sequence: the carried state
    const float* h = ws.h + (k * a.dstate + l.n0) * l.dim + c;
NM_UNROLL
    for (int j = 0; j < kSsdStatesPerPart; ++j) l.S[j] = l.n0 + j < a.dstate ? h[j * l.dim] : 0.0f;
  }
}

// Token t of the lane's chunk: restarts at a sequence start, updates, and
// returns the partial y; `last` is set when t ends sequence s (then the
// caller writes the final state after the token).
NM_HD float ssd_out_token(const SsdChunkScanArgs& a, int64_t t, SsdLane& l, int64_t& s, bool& last) {
  while (s + 1 < a.nseq && (int64_t)a.cu_seqlens[s + 1] <= t) ++s;
  if ((int64_t)a.cu_seqlens[s] == t) ssd_lane_load_initial(a, s, l);
  const float y = ssd_lane_token(a, t, l, true);
  last = (int64_t)a.cu_seqlens[s + 1] == t + 1;
  return y;
}

// Empty sequence s, channel c, state n: final = initial (or 0).
NM_HD void ssd_empty_final(const SsdChunkScanArgs& a, int64_t s, int64_t c, int64_t n) {
  if (a.cu_seqlens[s] != a.cu_seqlens[s + 1]) return;
  const int64_t i = (s * a.nheads * a.headdim + c) * a.dstate + n;
  a.final_states[i] = a.initial_states ? a.initial_states[i] : 0.0f;
}

}  // namespace nm::cuda
