// Per-thread math of the CUDA selective scan / state update kernels
// (cuda/selective_scan.cu), shared with the host emulation (cuda/check).
// Semantics: kernels/selective_scan.h.
//
// selective_scan: one thread per (batch, channel) carries its dstate-long
// state through every token (in registers when dstate is the compile-time
// NMAX = 16, else in local memory), in the CPU kernel's order per token.
// selective_state_update: one thread per (batch, row h·headdim + p) updates
// its state row in place and sums Σ s·C sequentially over n (the CPU kernel
// sums per SIMD lane first: equal up to rounding).
// Later: prefill parallel over tokens (chunked scan), and decode with a
// thread per state element and a reduction over n, for coalesced state
// traffic and more threads at batch 1.
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

// Batch row b, row r = h * headdim + p.
NM_HD void selective_state_update_row(const SelectiveStateUpdateArgs& a, int64_t b, int64_t r) {
  const int64_t N = a.dstate, h = r / a.headdim, g = h / (a.nheads / a.ngroups);
  float dt = a.dt[b * a.dt_batch_stride + h];
  if (a.dt_bias) dt = dt + a.dt_bias[h];
  if (a.dt_softplus) dt = softplus(dt);
  if (a.dt_min > -INFINITY || a.dt_max < INFINITY) dt = fminf(fmaxf(dt, a.dt_min), a.dt_max);
  const int64_t slot = a.state_indices ? (int64_t)a.state_indices[b] : b;
  float* s = a.state + slot * a.state_batch_stride + r * N;
  const float xv = a.x[b * a.x_batch_stride + r];
  const float* Bp = a.B + b * a.B_batch_stride + g * N;
  const float* Cp = a.C + b * a.C_batch_stride + g * N;
  const float dtx = dt * xv;
  float acc = 0.0f;
  if (a.a_per_state) {
    const float* Ar = a.A + h * N;
    for (int64_t n = 0; n < N; ++n) {
      const float sv = fmaf(s[n], expf(dt * Ar[n]), dtx * Bp[n]);
      s[n] = sv;
      acc = fmaf(sv, Cp[n], acc);
    }
  } else {
    const float dA = expf(dt * a.A[h]);
    for (int64_t n = 0; n < N; ++n) {
      const float sv = fmaf(s[n], dA, dtx * Bp[n]);
      s[n] = sv;
      acc = fmaf(sv, Cp[n], acc);
    }
  }
  float y = acc + (a.D ? xv * a.D[h] : 0.0f);
  if (a.z) y = y * silu(a.z[b * a.z_batch_stride + r]);
  a.out[b * a.out_batch_stride + r] = y;
}

}  // namespace nm::cuda
