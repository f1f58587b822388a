// Per-thread math of the CUDA selective scan / state update kernels
// (cuda/selective_scan.cu), shared with the host emulation (cuda/check).
// Semantics: kernels/selective_scan.h.
//
// selective_scan: one thread per (batch, channel) carries its dstate-long
// state through every token (in registers when dstate is the compile-time
// NMAX = 16, else in local memory), in the CPU kernel's order per token.
// selective_state_update: up to 32 threads per state row and a tree sum
// (below); the CPU kernel sums in another order: equal up to rounding.
// Later: prefill parallel over tokens (a chunked scan): at batch 1 there are
// only `dim` threads, each walking every token.
#pragma once
#include "kernels/selective_scan.h"
#include "math_common.cuh"

namespace nm::cuda {

NM_HD float scan_dt(float dt, const float* bias, int64_t i, bool softplus_on) {
  if (bias) dt = dt + bias[i];
  if (softplus_on) dt = softplus(dt);
  return dt;
}

// Batch row b, channel d, through all tokens. NMAX: capacity of the state
// array; NMAX <= 32 means a.dstate == NMAX exactly (a compile-time trip
// count: the loops over n unroll and the state stays in registers), larger
// NMAX any a.dstate <= NMAX.
template <int NMAX>
NM_HD void selective_scan_channel(const SelectiveScanArgs& a, int64_t b, int64_t d) {
  const int64_t N = NMAX <= 32 ? (int64_t)NMAX : a.dstate;
  const int64_t g = d / (a.dim / a.ngroups);
  float S[NMAX], Ad[NMAX];
  const float* init = a.initial_state ? a.initial_state + b * a.initial_state_batch_stride + d * N : nullptr;
  for (int64_t n = 0; n < N; ++n) {
    S[n] = init ? init[n] : 0.0f;
    Ad[n] = a.A[d * N + n];
  }
  const float Dd = a.D ? a.D[d] : 0.0f;
  const float* u = a.u + b * a.u_batch_stride + d;
  const float* delta = a.delta + b * a.delta_batch_stride + d;
  const float* Bp = a.B + b * a.B_batch_stride + g * N;
  const float* Cp = a.C + b * a.C_batch_stride + g * N;
  const float* z = a.z ? a.z + b * a.z_batch_stride + d : nullptr;
  float* out = a.out + b * a.out_batch_stride + d;
  for (int64_t l = 0; l < a.seqlen; ++l) {
    const float dl = scan_dt(delta[l * a.delta_token_stride], a.delta_bias, d, a.delta_softplus);
    const float ul = u[l * a.u_token_stride];
    const float du = dl * ul;
    const float* Bl = Bp + l * a.B_token_stride;
    const float* Cl = Cp + l * a.C_token_stride;
    float y = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      const float s = fmaf(expf(dl * Ad[n]), S[n], du * Bl[n]);
      S[n] = s;
      y = fmaf(s, Cl[n], y);
    }
    float r = fmaf(ul, Dd, y);
    if (z) r = r * silu(z[l * a.z_token_stride]);
    out[l * a.out_token_stride] = r;
  }
  if (a.last_state) {
    float* last = a.last_state + b * a.last_state_batch_stride + d * N;
    for (int64_t n = 0; n < N; ++n) last[n] = S[n];
  }
}

// selective_state_update: blocks of kUpdateThreads threads; each row r of a
// batch row b (state[slot(b), r, :], dstate contiguous) gets tpr =
// update_threads_per_row(dstate) consecutive threads (lanes), so a warp reads
// and writes whole runs of the state (coalesced). Lane l owns the states
// n = l, l + tpr, ...:
//   1. it updates them and sums s·C over them in order (fmaf) ->
//      selective_state_update_partial;
//   2. the row's tpr partials are summed as a fixed tree (stride tpr/2, ...,
//      1; tree_sum_host repeats it on the host);
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

// Step 1 for lane `lane` (of tpr) of batch row b, row r = h * headdim + p.
NM_HD float selective_state_update_partial(const SelectiveStateUpdateArgs& a, int64_t b, int64_t r, int lane, int tpr) {
  const int64_t N = a.dstate, h = r / a.headdim, g = h / (a.nheads / a.ngroups);
  const float dt = update_dt(a, b, h);
  const int64_t slot = a.state_indices ? (int64_t)a.state_indices[b] : b;
  float* s = a.state + slot * a.state_batch_stride + r * N;
  const float dtx = dt * a.x[b * a.x_batch_stride + r];
  const float* Bp = a.B + b * a.B_batch_stride + g * N;
  const float* Cp = a.C + b * a.C_batch_stride + g * N;
  float acc = 0.0f;
  if (a.a_per_state) {
    const float* Ar = a.A + h * N;
    for (int64_t n = lane; n < N; n += tpr) {
      const float sv = fmaf(s[n], expf(dt * Ar[n]), dtx * Bp[n]);
      s[n] = sv;
      acc = fmaf(sv, Cp[n], acc);
    }
  } else {
    const float dA = expf(dt * a.A[h]);
    for (int64_t n = lane; n < N; n += tpr) {
      const float sv = fmaf(s[n], dA, dtx * Bp[n]);
      s[n] = sv;
      acc = fmaf(sv, Cp[n], acc);
    }
  }
  return acc;
}

// Step 3 (lane 0): `sum` is the row's Σ_n s·C.
NM_HD void selective_state_update_finish(const SelectiveStateUpdateArgs& a, int64_t b, int64_t r, float sum) {
  const int64_t h = r / a.headdim;
  const float xv = a.x[b * a.x_batch_stride + r];
  float y = sum + (a.D ? xv * a.D[h] : 0.0f);
  if (a.z) y = y * silu(a.z[b * a.z_batch_stride + r]);
  a.out[b * a.out_batch_stride + r] = y;
}

}  // namespace nm::cuda
