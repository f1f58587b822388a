// Per-level bodies of the selective scan kernels (see selective_scan.h for the
// semantics and kernels/simd/README.md for how this file is compiled).
//
// Prefill vectorises over channels: the token-major layout makes u, delta, z
// and out contiguous over channels, B[n] and C[n] are one broadcast per
// group, the state of 16 channels x dstate stays on the stack (L1), no
// horizontal sums are needed, and any dstate fills whole vectors. (Measured
// on AVX-512 with dstate = 16, the case most favourable to vectorising over
// dstate instead: over channels was ~20% faster.) The decode step vectorises
// over dstate, the state's contiguous axis.
#include "kernels/selective_scan.h"
#include "kernels/ssm_q8.h"

namespace nm {
namespace NM_ISA {

// softplus(v) = max(v, 0) + log1p(exp(-|v|)), equal to the reference's
// `v <= 20 ? log1p(exp(v)) : v` (above 20 the log1p term is below half an ulp
// of v). log1p(t) = t * f(t) on t in (0, 1], f(t) = log1p(t) / t as a
// degree-10 Chebyshev fit in s = 2t - 1 (relative error 8e-10 in exact
// arithmetic, ~1.5 ulp in float32).
static inline VF vsoftplus(VF v) {
  const VF zero = VF::zero();
  VF t = vexp(zero - vmax(v, zero - v));
  VF s = fmadd(t, VF::set1(2.0f), VF::set1(-1.0f));
  VF p = VF::set1(1.989932144e-06f);
  p = fmadd(p, s, VF::set1(-6.360114209e-06f));
  p = fmadd(p, s, VF::set1(1.554648915e-05f));
  p = fmadd(p, s, VF::set1(-5.267940088e-05f));
  p = fmadd(p, s, VF::set1(1.852294879e-04f));
  p = fmadd(p, s, VF::set1(-6.428624500e-04f));
  p = fmadd(p, s, VF::set1(2.288162944e-03f));
  p = fmadd(p, s, VF::set1(-8.460951032e-03f));
  p = fmadd(p, s, VF::set1(3.315244521e-02f));
  p = fmadd(p, s, VF::set1(-1.442635561e-01f));
  p = fmadd(p, s, VF::set1(8.109302161e-01f));
  return fmadd(t, p, vmax(v, zero));
}

static inline VF ld(const float* p, int n) { return n == VF::W ? VF::load(p) : VF::load_partial(p, n); }
static inline void st(VF v, float* p, int n) {
  if (n == VF::W) v.store(p);
  else v.store_partial(p, n);
}

static const int64_t kPrefetchTokens = 4;
// log2 e, rounded to float: the scans' exp(δ·A) is vexp2(δ·(A·kLog2e)).
static constexpr float kLog2e = 1.44269504088896341f;
// Channels per work unit: a multiple of every W, and one 64-byte line of each
// per-token row.
static const int kScanBlock = 16;
// Tokens whose state-independent terms a scan block computes ahead of the recurrence.
static const int kScanChunk = 8;

// Channels [c0, c0 + nc) (nc <= kScanBlock) of batch row b, all in group g,
// through every token; token-outer so each token's line of u, delta, z and
// out is used whole. NF > 0: dstate is the compile-time NF.
template <int NF, bool Q8>
static void scan_block(const SelectiveScanArgs& a, const Int8Operand* uq, int64_t b, int64_t g, int64_t c0, int nc) {
  constexpr int KMAX = kScanBlock / VF::W;
  constexpr int64_t NMAX = NF > 0 ? NF : kSelectiveScanMaxDstate;
  const int64_t N = NF > 0 ? NF : a.dstate;
  const int K = (nc + VF::W - 1) / VF::W;
  // Sub-vector k holds channels d0 = c0 + k*W ..; At[k*N + n] lane j = A[d0 + j, n]·log2 e
  // (exp(δ·A) = 2^(δ·At), vexp2),
  // S[k*N + n] lane j = state[b, d0 + j, n].
  VF At[KMAX * NMAX], S[KMAX * NMAX], Dv[KMAX], bias[KMAX];
  int nws[KMAX];
  float tmp[VF::W];
  const float* init = a.initial_state ? a.initial_state + b * a.initial_state_batch_stride : nullptr;
  for (int k = 0; k < K; ++k) {
    const int64_t d0 = c0 + k * VF::W;
    const int nw = nws[k] = (int)(nc - k * VF::W < VF::W ? nc - k * VF::W : VF::W);
    for (int64_t n = 0; n < N; ++n) {
      for (int j = 0; j < VF::W; ++j) tmp[j] = j < nw ? a.A[(d0 + j) * N + n] * kLog2e : 0.0f;
      At[k * N + n] = VF::load(tmp);
      for (int j = 0; j < VF::W; ++j) tmp[j] = (j < nw && init) ? init[(d0 + j) * N + n] : 0.0f;
      S[k * N + n] = VF::load(tmp);
    }
    Dv[k] = a.D ? ld(a.D + d0, nw) : VF::zero();
    bias[k] = a.delta_bias ? ld(a.delta_bias + d0, nw) : VF::zero();
  }
  const bool has_bias = a.delta_bias != nullptr, softplus = a.delta_softplus;

  // Q8 (selective_scan_q8): u is uq's int8 values, dequantized as they are
  // loaded (û = q · s, the float product the dequantize pass would store).
  const float* u = Q8 ? nullptr : a.u + b * a.u_batch_stride + c0;
  const int8_t* u8 = Q8 ? uq->q + b * uq->batch_stride + c0 : nullptr;
  const int64_t u_ts = Q8 ? uq->token_stride : a.u_token_stride;
  VF uscale[KMAX];
  for (int k = 0; k < K; ++k) uscale[k] = Q8 ? ld(uq->scale + c0 + k * VF::W, nws[k]) : VF::zero();
  const float* delta = a.delta + b * a.delta_batch_stride + c0;
  const float* Bp = a.B + b * a.B_batch_stride + g * N;
  const float* Cp = a.C + b * a.C_batch_stride + g * N;
  const float* z = a.z ? a.z + b * a.z_batch_stride + c0 : nullptr;
  float* out = a.out + b * a.out_batch_stride + c0;
  // Tokens in chunks of kScanChunk: first what does not depend on the state
  // (softplus(δ), δ·u, u·D and the gate silu(z), for every token of the
  // chunk), then the recurrence, whose critical path per token is then one
  // 2^(δ·A), the state's fma and the output's sums (four partial sums over
  // the states, not one chain of dstate fmas).
  VF dls[kScanChunk][KMAX], dus[kScanChunk][KMAX], skip[kScanChunk][KMAX], gate[kScanChunk][KMAX];
  for (int64_t l0 = 0; l0 < a.seqlen; l0 += kScanChunk) {
    const int T = (int)(a.seqlen - l0 < kScanChunk ? a.seqlen - l0 : kScanChunk);
    for (int t = 0; t < T; ++t) {
      const int64_t l = l0 + t;
      // Consecutive tokens are a row apart (often more than a page), beyond
      // the hardware prefetchers: fetch a few tokens ahead.
      if (l + kPrefetchTokens < a.seqlen) {
        const int64_t lp = l + kPrefetchTokens;
        __builtin_prefetch(delta + lp * a.delta_token_stride);
        if (Q8) __builtin_prefetch(u8 + lp * u_ts);
        else __builtin_prefetch(u + lp * u_ts);
        if (z) __builtin_prefetch(z + lp * a.z_token_stride);
        __builtin_prefetch(out + lp * a.out_token_stride, 1);
        __builtin_prefetch(Bp + lp * a.B_token_stride);
        __builtin_prefetch(Cp + lp * a.C_token_stride);
      }
      for (int k = 0; k < K; ++k) {
        const int nw = nws[k];
        const int64_t o = k * VF::W;
        VF dl = ld(delta + l * a.delta_token_stride + o, nw);
        if (has_bias) dl = dl + bias[k];
        if (softplus) dl = vsoftplus(dl);
        const VF ul = Q8 ? vload_i8(u8 + l * u_ts + o, nw) * uscale[k] : ld(u + l * u_ts + o, nw);
        dls[t][k] = dl;
        dus[t][k] = dl * ul;
        skip[t][k] = ul * Dv[k];
        if (z) gate[t][k] = vsilu(ld(z + l * a.z_token_stride + o, nw));
      }
    }
    for (int t = 0; t < T; ++t) {
      const int64_t l = l0 + t;
      const float* Bl = Bp + l * a.B_token_stride;
      const float* Cl = Cp + l * a.C_token_stride;
      for (int k = 0; k < K; ++k) {
        const VF dl = dls[t][k], du = dus[t][k];
        VF* Sk = S + k * N;
        const VF* Ak = At + k * N;
        VF y0 = VF::zero(), y1 = VF::zero(), y2 = VF::zero(), y3 = VF::zero();
        const int64_t N4 = N & ~int64_t(3);
        for (int64_t n = 0; n < N4; n += 4) {
          const VF s0 = fmadd(vexp2(dl * Ak[n]), Sk[n], du * VF::set1(Bl[n]));
          const VF s1 = fmadd(vexp2(dl * Ak[n + 1]), Sk[n + 1], du * VF::set1(Bl[n + 1]));
          const VF s2 = fmadd(vexp2(dl * Ak[n + 2]), Sk[n + 2], du * VF::set1(Bl[n + 2]));
          const VF s3 = fmadd(vexp2(dl * Ak[n + 3]), Sk[n + 3], du * VF::set1(Bl[n + 3]));
          Sk[n] = s0; Sk[n + 1] = s1; Sk[n + 2] = s2; Sk[n + 3] = s3;
          y0 = fmadd(s0, VF::set1(Cl[n]), y0);
          y1 = fmadd(s1, VF::set1(Cl[n + 1]), y1);
          y2 = fmadd(s2, VF::set1(Cl[n + 2]), y2);
          y3 = fmadd(s3, VF::set1(Cl[n + 3]), y3);
        }
        for (int64_t n = N4; n < N; ++n) {
          const VF s0 = fmadd(vexp2(dl * Ak[n]), Sk[n], du * VF::set1(Bl[n]));
          Sk[n] = s0;
          y0 = fmadd(s0, VF::set1(Cl[n]), y0);
        }
        VF r = (y0 + y1) + (y2 + y3) + skip[t][k];
        if (z) r = r * gate[t][k];
        st(r, out + l * a.out_token_stride + k * VF::W, nws[k]);
      }
    }
  }

  if (a.last_state) {
    float* last = a.last_state + b * a.last_state_batch_stride;
    for (int k = 0; k < K; ++k) {
      const int64_t d0 = c0 + k * VF::W;
      for (int64_t n = 0; n < N; ++n) {
        S[k * N + n].store(tmp);
        for (int j = 0; j < nws[k]; ++j) last[(d0 + j) * N + n] = tmp[j];
      }
    }
  }
}

// Work units [u0, u1): unit = (b * ngroups + g) * blocks_per_group + k covers
// channels [g*hd + k*kScanBlock, min(g*hd + (k+1)*kScanBlock, (g+1)*hd)),
// hd = dim / ngroups. Q8: u from uq (a.u unused).
template <bool Q8>
static void scan_units(const SelectiveScanArgs& a, const Int8Operand* uq, int64_t u0, int64_t u1) {
  const int64_t hd = a.dim / a.ngroups, bpg = (hd + kScanBlock - 1) / kScanBlock;
  for (int64_t unit = u0; unit < u1; ++unit) {
    const int64_t k = unit % bpg, bg = unit / bpg, g = bg % a.ngroups, b = bg / a.ngroups;
    const int64_t c0 = g * hd + k * kScanBlock;
    const int nc = (int)((g + 1) * hd - c0 < kScanBlock ? (g + 1) * hd - c0 : kScanBlock);
    if (a.dstate == 16) scan_block<16, Q8>(a, uq, b, g, c0, nc);
    else scan_block<0, Q8>(a, uq, b, g, c0, nc);
  }
}

void selective_scan_units(const SelectiveScanArgs& a, int64_t u0, int64_t u1) { scan_units<false>(a, nullptr, u0, u1); }

// The units with u from uq: int8, per-channel scales (selective_scan_q8).
void selective_scan_q8_units(const SelectiveScanArgs& a, const Int8Operand& uq, int64_t u0, int64_t u1) {
  scan_units<true>(a, &uq, u0, u1);
}

// How far ahead of the row it updates a decode step prefetches the states:
// at least 2 KB and 8 rows (Mamba-1's d_state 16: 32 rows; Mamba-2's 128: 8
// rows, 4 KB). Eight rows of 64 bytes arrived too late at several sequences,
// whose states the weight streams evict between steps (bench/NOTES.md).
constexpr int64_t kStatePrefetchBytes = 2048;
inline int64_t state_prefetch_rows(int64_t dstate) {
  const int64_t rows = kStatePrefetchBytes / (dstate * (int64_t)sizeof(float));
  return rows > 8 ? rows : 8;
}

// Mamba-1 rows r.. r + 4/NV - 1 of batch row b (group g; P = 1, A per
// state, NV vectors of states per row): s = s·exp(dt·A) + dt·x·B, acc =
// Σ s·C in vector order from 0, as the one-row path in state_update_units
// computes them; the rows' 4 exp chains interleave (more spill registers).
template <int NV, class XAt>
static inline void update_rows_interleaved(const SelectiveStateUpdateArgs& a, int64_t b, int64_t g, int64_t r, float* state, const float* dt,
                         VF log2e, const XAt& xat, VF* acc, int64_t pf_rows) {
  constexpr int64_t N = NV * VF::W;
  const float* Bp = a.B + b * a.B_batch_stride + g * N;
  const float* Cp = a.C + b * a.C_batch_stride + g * N;
  float* s = state + r * N;
  constexpr int kRows = 4 / NV;
  for (int64_t i = 0; i < kRows * N; i += 16) __builtin_prefetch(s + pf_rows * N + i, 1);
  VF sv[kRows][NV];
  for (int i = 0; i < kRows; ++i) {
    const VF dtv = VF::set1(dt[i]), dtx = VF::set1(dt[i] * xat(r + i));
    for (int v = 0; v < NV; ++v)
      sv[i][v] = fmadd(VF::load(s + i * N + v * VF::W), vexp2(dtv * (VF::load(a.A + (r + i) * N + v * VF::W) * log2e)),
                       dtx * VF::load(Bp + v * VF::W));
  }
  for (int i = 0; i < kRows; ++i) {
    VF c = VF::zero();
    for (int v = 0; v < NV; ++v) {
      sv[i][v].store(s + i * N + v * VF::W);
      c = fmadd(sv[i][v], VF::load(Cp + v * VF::W), c);
    }
    acc[i] = c;
  }
}

// Work units [u0, u1): unit = b * blocks + k covers rows
// [k*block, min((k+1)*block, nheads*headdim)) of batch row b; block <= 64.
// Q8: x from the int8 operand xq (a.x unused), dequantized as the unit
// reads it.
template <bool Q8>
static void state_update_units(const SelectiveStateUpdateArgs& a, const Int8Operand* xq, int64_t block, int64_t u0,
                               int64_t u1) {
  const int64_t P = a.headdim, R = a.nheads * P, N = a.dstate;
  const int64_t nblk = (R + block - 1) / block, heads_per_group = a.nheads / a.ngroups;
  float dts[64 + 1 + VF::W], dAs[64 + 1 + VF::W], ys[64 + VF::W];
  const int64_t pf_rows = state_prefetch_rows(N);
  const bool clamp = a.dt_min > -INFINITY || a.dt_max < INFINITY;
  const VF dt_lo = VF::set1(a.dt_min), dt_hi = VF::set1(a.dt_max);
  for (int64_t unit = u0; unit < u1; ++unit) {
    const int64_t b = unit / nblk, r0 = (unit % nblk) * block, r1 = (r0 + block < R) ? r0 + block : R;
    const int64_t h0 = r0 / P, h1 = (r1 - 1) / P + 1;
    // dt (and exp(dt*A) for scalar A) of the heads [h0, h1) this block touches.
    const float* dt = a.dt + b * a.dt_batch_stride;
    for (int64_t h = h0; h < h1; h += VF::W) {
      const int n = (int)(h1 - h < VF::W ? h1 - h : VF::W);
      VF v = ld(dt + h, n);
      if (a.dt_bias) v = v + ld(a.dt_bias + h, n);
      if (a.dt_softplus) v = vsoftplus(v);
      if (clamp) v = vmin(vmax(v, dt_lo), dt_hi);
      v.store_partial(dts + (h - h0), n);
      if (!a.a_per_state) vexp(v * ld(a.A + h, n)).store_partial(dAs + (h - h0), n);
    }
    const int64_t slot = a.state_indices ? (int64_t)a.state_indices[b] : b;
    float* state = a.state + slot * a.state_batch_stride;
    // Row r's x (Q8: x̂ = q · s, the dequantize pass's value).
    const float* xrow = Q8 ? nullptr : a.x + b * a.x_batch_stride;
    float xl[64];
    if constexpr (Q8) {
      const int8_t* xr = xq->q + b * xq->batch_stride;
      for (int64_t r = r0; r < r1; ++r) xl[r - r0] = (float)xr[r] * xq->scale[r];
    }
    auto xat = [&](int64_t r) -> float {
      if constexpr (Q8) return xl[r - r0];
      else return xrow[r];
    };
    // Each row's Σ_n h·C is summed across lanes for VF::W rows at once
    // (reduce_sum_rows: the same sums as reduce_sum, bit for bit).
    VF accs[VF::W];
    alignas(64) float sums[VF::W];
    // Row r's Σ_n h·C is in accs; at the end of each VF::W rows (or of the
    // block) they are summed and y = Σ + D·x written to ys.
    auto row_done = [&](int64_t r) {
      if ((r - r0) % VF::W != VF::W - 1 && r != r1 - 1) return;
      const int64_t rb = r - (r - r0) % VF::W;
      if (r - rb == VF::W - 1) reduce_sum_rows(accs).store(sums);
      else for (int64_t i = rb; i <= r; ++i) sums[i - rb] = reduce_sum(accs[i - rb]);
      for (int64_t i = rb; i <= r; ++i) {
        const float d = a.D ? xat(i) * a.D[i / P] : 0.0f;
        ys[i - r0] = sums[i - rb] + d;
      }
    };
    const VF log2e = VF::set1(kLog2e);
    int64_t r = r0;
    // Mamba-1 in whole spans of VF::W rows of one group: update_rows_interleaved's
    // rows, their sums reduced together and y = Σ + D·x written as one
    // vector, with no per-row bookkeeping (the loop below tests each row's
    // group with two divisions and hands it to row_done: 1.7x the time of
    // this, bench/NOTES.md). A span across a group boundary and the rows
    // after the last whole span take the loop below.
    const int nv1 = VF::W < 4 ? 0 : N == VF::W ? 1 : N == 2 * VF::W ? 2 : 0;  // (a span holds whole interleaved groups)
    if (nv1 && a.a_per_state && P == 1) {
      for (; r + VF::W <= r1; r += VF::W) {
        const int64_t g = r / heads_per_group;
        if ((r + VF::W - 1) / heads_per_group != g) break;
        VF span[VF::W];
        for (int i = 0; i < VF::W; i += 4 / (nv1 ? nv1 : 1)) {  // (nv1 > 0 here)
          const float* dti = dts + (r + i - h0);
          if (nv1 == 1) update_rows_interleaved<1>(a, b, g, r + i, state, dti, log2e, xat, span + i, pf_rows);
          else update_rows_interleaved<2>(a, b, g, r + i, state, dti, log2e, xat, span + i, pf_rows);
        }
        // y = Σ + D·x, fused: one rounding whichever x the level reads
        // (the int8 and float forms must agree bit for bit)
        VF y = reduce_sum_rows(span);
        if (a.D) {
          VF xv;
          if constexpr (Q8) xv = VF::load(xl + (r - r0));
          else xv = VF::load(xrow + r);
          y = fmadd(xv, VF::load(a.D + r), y);
        }
        y.store(ys + (r - r0));
      }
    }
    while (r < r1) {
      // Mamba-1 (one channel per head; a row's states are one vector, or
      // two at AVX2's 8 lanes for d_state 16): 4 vectors of states at a
      // time, so that their exp polynomials (a chain of dependent fmas each)
      // overlap; each row's arithmetic is the one-row path's, in its order.
      const int nv = N == VF::W ? 1 : N == 2 * VF::W ? 2 : 0, rows = nv ? 4 / nv : 0;
      if (nv && a.a_per_state && P == 1 && r + rows <= r1 && (r - r0) % VF::W <= VF::W - rows &&
          (r + rows - 1) / heads_per_group == r / heads_per_group) {
        const int64_t g = r / heads_per_group;
        VF* acc = accs + (r - r0) % VF::W;
        if (nv == 1) update_rows_interleaved<1>(a, b, g, r, state, dts + (r - h0), log2e, xat, acc, pf_rows);
        else update_rows_interleaved<2>(a, b, g, r, state, dts + (r - h0), log2e, xat, acc, pf_rows);
        for (int i = 0; i < rows; ++i) row_done(r + i);
        r += rows;
        continue;
      }
      const int64_t h = r / P, g = h / heads_per_group;
      const float dtv = dts[h - h0], xv = xat(r);
      const float* Bp = a.B + b * a.B_batch_stride + g * N;
      const float* Cp = a.C + b * a.C_batch_stride + g * N;
      float* s = state + r * N;
      // The states were evicted by the weight streams since the last token:
      // ask for the row pf_rows ahead (a hint: never faults).
      for (int64_t n = 0; n < N; n += 16) __builtin_prefetch(s + pf_rows * N + n, 1);
      const VF dtx = VF::set1(dtv * xv);
      VF acc = VF::zero();
      if (a.a_per_state) {
        const float* Ar = a.A + h * N;
        const VF dtvv = VF::set1(dtv);
        for (int64_t n = 0; n < N; n += VF::W) {
          const int nn = (int)(N - n < VF::W ? N - n : VF::W);
          // exp(dt·A) = 2^(dt·(A·log2 e)), rounded as the prefill scan's.
          VF sv = fmadd(ld(s + n, nn), vexp2(dtvv * (ld(Ar + n, nn) * log2e)), dtx * ld(Bp + n, nn));
          st(sv, s + n, nn);
          acc = fmadd(sv, ld(Cp + n, nn), acc);
        }
      } else {
        const VF dA = VF::set1(dAs[h - h0]);
        for (int64_t n = 0; n < N; n += VF::W) {
          const int nn = (int)(N - n < VF::W ? N - n : VF::W);
          VF sv = fmadd(ld(s + n, nn), dA, dtx * ld(Bp + n, nn));
          st(sv, s + n, nn);
          acc = fmadd(sv, ld(Cp + n, nn), acc);
        }
      }
      accs[(r - r0) % VF::W] = acc;
      row_done(r);
      ++r;
    }
    const float* z = a.z ? a.z + b * a.z_batch_stride : nullptr;
    float* out = a.out + b * a.out_batch_stride;
    for (int64_t r = r0; r < r1; r += VF::W) {
      const int n = (int)(r1 - r < VF::W ? r1 - r : VF::W);
      VF o = ld(ys + (r - r0), n);
      if (z) o = o * vsilu(ld(z + r, n));
      st(o, out + r, n);
    }
  }
}

void selective_state_update_units(const SelectiveStateUpdateArgs& a, int64_t block, int64_t u0, int64_t u1) {
  state_update_units<false>(a, nullptr, block, u0, u1);
}

void selective_state_update_q8_units(const SelectiveStateUpdateArgs& a, const Int8Operand& xq, int64_t block, int64_t u0,
                                     int64_t u1) {
  state_update_units<true>(a, &xq, block, u0, u1);
}

}  // namespace NM_ISA
}  // namespace nm
