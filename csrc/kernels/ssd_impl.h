// Per-level bodies of the SSD chunk scan (see ssd.h for semantics and
// kernels/simd/README.md for how this file is compiled).
//
// Every product of the chunked algorithm is one small GEMM of the form
//   Out[r, c] = beta * Out[r, c] + Σ_k A[r, k] * Bm[k, c]
// with A read as broadcast scalars and Bm / Out as VF rows (the contiguous
// axis is the vectorised one), on a register block of kSsdMR rows × NV vectors:
//   C·Bᵀ        A = C rows (input),     Bm = Bᵀ [dstate, q]   (lower triangle only)
//   diagonal    A = G [q, q] (lower),    Bm = dt*x [q, headdim]
//   off-diag    A = exp(cum)*C [q, dstate], Bm = stateᵀ [dstate, headdim]
//   end state   A = Bᵀ [dstate, q],      Bm = decay*dt*x [q, headdim], beta = exp(Σ dt*A)
// The running state is kept transposed (dstate-major) so every product is
// vectorised over headdim or over the chunk's tokens.
#include "kernels/ssd.h"

namespace nm {
namespace NM_ISA {

namespace {

// Register block: kSsdMR rows × kSsdNV vectors of accumulators (AVX2: 12 of
// 16 registers; AVX-512: 24 of 32).
#ifndef NM_SSD_MR
#define NM_SSD_MR (VF::W == 8 ? 6 : 4)
#endif
constexpr int kSsdMR = NM_SSD_MR;
constexpr int kSsdNV = VF::W == 8 ? 2 : 4;

inline int64_t ssd_min(int64_t a, int64_t b) { return a < b ? a : b; }

// Out[r, 0:NV*W] = beta*Out + Σ_{k<K} A[r*lda + k] * Bm[k*ldb + 0:NV*W], r < MR.
// beta == 0 does not read Out.
template <int MR, int NV>
void ssd_mk(int64_t K, const float* A, int64_t lda, const float* Bm, int64_t ldb, float* Out,
            int64_t ldo, float beta) {
  VF acc[MR][NV];
  if (beta == 0.0f) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = VF::zero();
  } else {
    const VF vb = VF::set1(beta);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = vb * VF::load(Out + r * ldo + v * VF::W);
  }
  for (int64_t k = 0; k < K; ++k) {
    VF b[NV];
    for (int v = 0; v < NV; ++v) b[v] = VF::load(Bm + k * ldb + v * VF::W);
    for (int r = 0; r < MR; ++r) {
      const VF av = VF::set1(A[r * lda + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = fmadd(av, b[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v].store(Out + r * ldo + v * VF::W);
}

typedef void (*SsdMkFn)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, float);

template <int MR>
SsdMkFn ssd_mk_nv(int nv) {
  switch (nv) {
    case 1: return ssd_mk<MR, 1>;
    case 2: return ssd_mk<MR, 2>;
    case 3: return ssd_mk<MR, 3>;
    default: return ssd_mk<MR, 4>;
  }
}

SsdMkFn ssd_mk_pick(int mr, int nv) {
  switch (mr) {
    case 1: return ssd_mk_nv<1>(nv);
    case 2: return ssd_mk_nv<2>(nv);
    case 3: return ssd_mk_nv<3>(nv);
    case 4: return ssd_mk_nv<4>(nv);
    case 5: return ssd_mk_nv<5>(nv);
    default: return ssd_mk_nv<6>(nv);
  }
}

enum SsdGemmMode { kFull = 0, kLowerA = 1, kLowerOut = 2 };

// Out[M, ncols] = beta*Out + A[M, K] · Bm[K, ncols]. Bm and Out rows are
// readable / writable up to ncols rounded up to W (padded scratch).
//   kLowerA:   A is lower triangular: rows [i0, i0+MR) use k < i0+MR (A must
//              be zero above the diagonal inside the block).
//   kLowerOut: only columns c < i0+MR of rows [i0, i0+MR) are computed (the
//              lower triangle, plus a few entries right of it).
void ssd_gemm(int64_t M, int64_t ncols, int64_t K, const float* A, int64_t lda, const float* Bm,
              int64_t ldb, float* Out, int64_t ldo, float beta, SsdGemmMode mode) {
  const int64_t step = (int64_t)kSsdNV * VF::W;
  for (int64_t i0 = 0; i0 < M; i0 += kSsdMR) {
    const int mr = (int)ssd_min(kSsdMR, M - i0);
    const int64_t kk = mode == kLowerA ? ssd_min(K, i0 + mr) : K;
    const int64_t nn = mode == kLowerOut ? ssd_min(ncols, i0 + mr) : ncols;
    for (int64_t c0 = 0; c0 < nn; c0 += step) {
      const int nv = (int)((ssd_min(nn - c0, step) + VF::W - 1) / VF::W);
      ssd_mk_pick(mr, nv)(kk, A + i0 * lda, lda, Bm + c0, ldb, Out + i0 * ldo + c0, ldo, beta);
    }
  }
}

inline float ssd_dt(const SsdChunkScanArgs& a, int64_t t, int64_t h) {
  float d = a.dt[t * a.dt_stride + h];
  if (a.dt_bias) d += a.dt_bias[h];
  if (a.dt_softplus) d = d <= 20.0f ? log1pf(expf(d)) : d;
  d = d < a.dt_min ? a.dt_min : d;
  d = d > a.dt_max ? a.dt_max : d;
  return d;
}

}  // namespace

// Scans sequence s for heads [h0, h1) (all in one group), chunk by chunk:
// C·Bᵀ of a chunk is computed once and shared by the heads.
void ssd_scan_task(const SsdChunkScanArgs& a, int64_t s, int64_t h0, int64_t h1, const SsdScratch& w) {
  const int64_t P = a.headdim, N = a.dstate;
  const int64_t g = h0 / (a.nheads / a.ngroups);
  const int64_t t_begin = a.cu_seqlens[s], t_end = a.cu_seqlens[s + 1];
  const int64_t ldq = w.ldq, ldp = w.ldp, ldn = w.ldn;
  const int W = VF::W;

  // States in, transposed: st[n, p] = initial[s, h, p, n].
  for (int64_t h = h0; h < h1; ++h) {
    float* st = w.st + (h - h0) * N * ldp;
    const float* init = a.initial_states ? a.initial_states + (s * a.nheads + h) * P * N : nullptr;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) st[n * ldp + p] = init ? init[p * N + n] : 0.0f;
  }
  bool state_zero = a.initial_states == nullptr;

  for (int64_t c0 = t_begin; c0 < t_end; c0 += w.q) {
    const int64_t l = ssd_min(w.q, t_end - c0);
    const float* Bg = a.B + c0 * a.B_stride + g * N;
    const float* Cg = a.C + c0 * a.C_stride + g * N;
    // Bᵀ of the chunk, then C·Bᵀ (lower triangle), shared by the heads.
    for (int64_t j = 0; j < l; ++j)
      for (int64_t n = 0; n < N; ++n) w.bt[n * ldq + j] = Bg[j * a.B_stride + n];
    ssd_gemm(l, l, N, Cg, a.C_stride, w.bt, ldq, w.cb, ldq, 0.0f, kLowerOut);

    for (int64_t h = h0; h < h1; ++h) {
      float* st = w.st + (h - h0) * N * ldp;
      const float Ah = a.A[h];
      // dt and the inclusive cumulative sum of dt*A.
      float cum = 0.0f;
      for (int64_t i = 0; i < l; ++i) {
        const float d = ssd_dt(a, c0 + i, h);
        w.dtv[i] = d;
        cum += d * Ah;
        w.cum[i] = cum;
      }
      const float cend = cum;
      // xs = dt*x, u = exp(cend - cum_j) * dt*x.
      for (int64_t j = 0; j < l; ++j) {
        const float* xr = a.x + (c0 + j) * a.x_stride + h * P;
        const VF dj = VF::set1(w.dtv[j]), wj = VF::set1(expf(cend - w.cum[j]));
        for (int64_t p0 = 0; p0 < P; p0 += W) {
          const int n = (int)ssd_min(W, P - p0);
          const VF v = VF::load_partial(xr + p0, n) * dj;
          v.store_partial(w.xs + j * ldp + p0, n);
          (v * wj).store_partial(w.u + j * ldp + p0, n);
        }
      }
      // G[i, j] = CB[i, j] * exp(cum_i - cum_j) for j <= i; zero to the end of
      // the row's kSsdMR-row block (read by the kLowerA product).
      for (int64_t i = 0; i < l; ++i) {
        const VF ci = VF::set1(w.cum[i]);
        for (int64_t j0 = 0; j0 <= i; j0 += W) {
          const int n = (int)ssd_min(W, i + 1 - j0);
          const VF e = vexp(ci - VF::load_partial(w.cum + j0, n));
          (VF::load_partial(w.cb + i * ldq + j0, n) * e).store_partial(w.g + i * ldq + j0, n);
        }
        const int64_t jend = ssd_min(l, (i / kSsdMR) * kSsdMR + kSsdMR);
        for (int64_t j = i + 1; j < jend; ++j) w.g[i * ldq + j] = 0.0f;
      }
      // Intra-chunk output.
      ssd_gemm(l, P, l, w.g, ldq, w.xs, ldp, w.y, ldp, 0.0f, kLowerA);
      if (!state_zero) {
        // State-to-output: y_i += exp(cum_i) * C_i · state_prev.
        for (int64_t i = 0; i < l; ++i) {
          const VF e = VF::set1(expf(w.cum[i]));
          const float* cr = Cg + i * a.C_stride;
          for (int64_t n0 = 0; n0 < N; n0 += W) {
            const int n = (int)ssd_min(W, N - n0);
            (VF::load_partial(cr + n0, n) * e).store_partial(w.cs + i * ldn + n0, n);
          }
        }
        ssd_gemm(l, P, N, w.cs, ldn, st, ldp, w.y, ldp, 1.0f, kFull);
      }
      // End-of-chunk state.
      ssd_gemm(N, P, l, w.bt, ldq, w.u, ldp, st, ldp, state_zero ? 0.0f : expf(cend), kFull);
      // D skip connection, gate, store.
      const VF Dh = VF::set1(a.D ? a.D[h] : 0.0f);
      for (int64_t i = 0; i < l; ++i) {
        const int64_t t = c0 + i;
        const float* yr = w.y + i * ldp;
        const float* xr = a.x + t * a.x_stride + h * P;
        const float* zr = a.z ? a.z + t * a.z_stride + h * P : nullptr;
        float* orow = a.out + t * a.out_stride + h * P;
        for (int64_t p0 = 0; p0 < P; p0 += W) {
          const int n = (int)ssd_min(W, P - p0);
          VF v = VF::load(yr + p0);
          if (a.D) v = fmadd(Dh, VF::load_partial(xr + p0, n), v);
          if (zr) v = v * vsilu(VF::load_partial(zr + p0, n));
          v.store_partial(orow + p0, n);
        }
      }
    }
    state_zero = false;
  }

  // States out: final[s, h, p, n] = st[n, p].
  for (int64_t h = h0; h < h1; ++h) {
    const float* st = w.st + (h - h0) * N * ldp;
    float* fin = a.final_states + (s * a.nheads + h) * P * N;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t n = 0; n < N; ++n) fin[p * N + n] = st[n * ldp + p];
  }
}

}  // namespace NM_ISA
}  // namespace nm
