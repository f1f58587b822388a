// Per-thread math of the one-pass Mamba-1 prefill scan ("tiles",
// cuda/selective_scan.cu), shared with the host emulation (cuda/check).
// Semantics: kernels/selective_scan.h; the three-phase chunked scan is
// cuda/selective_scan_math.cuh.
//
// The recurrence h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t is a chain of
// affine steps h -> P h + H, and steps compose associatively:
//   (P1, H1) then (P2, H2) = (P2 P1, P2 H1 + H2)
// (the blocked scan of the Mamba paper, arXiv 2312.00752 section 3.3.2,
// written for this project's token-major layout). A block owns
// kTileChannels consecutive channels of one batch row (one 32-byte sector
// of every token's row of u / delta / z / out) and walks the sequence in
// tiles of kTileTokens tokens. Thread (segment s, channel c) holds the
// kTileItems tokens [s * kTileItems, (s + 1) * kTileItems) of the tile.
// For each group of kTileStates states:
//   1. each thread composes its tokens' steps (exp(dt A) and dt u B kept in
//      registers: the only exp2 of a (token, channel, state));
//   2. the 4 segments of a warp (lanes 8 apart) are scanned with two
//      shuffles (Kogge-Stone); each warp's total goes to shared memory;
//   3. after one barrier, each thread starts from the state at the tile's
//      start (shared memory, the carry) and applies the totals of the warps
//      before its own, then its warp's exclusive prefix: its segment's
//      initial state; the last segment's thread writes the next tile's carry;
//   4. each thread reruns its tokens from that state and adds C h to y.
// Outputs are written per tile; the last tile's carry is last_state.
// One exp2 per (token, channel, state), against the chunked scan's two;
// the order of the float operations differs from the CPU kernel's, which
// the tolerance (2e-5 of the outputs' scale) covers.
#pragma once
#include "selective_scan_math.cuh"

namespace nm::cuda {

constexpr int kTileChannels = 8;                              // channels per block
constexpr int kTileSegments = 32;                             // segments per tile
constexpr int kTileItems = 8;                                 // tokens per segment (per thread)
constexpr int kTileStates = 4;                                // states per group: a 16-byte row of B / C
constexpr int kTileThreads = kTileChannels * kTileSegments;   // 256
constexpr int kTileTokens = kTileSegments * kTileItems;       // 256
constexpr int kTileWarpSegments = 32 / kTileChannels;         // segments per warp: 4
constexpr int kTileWarps = kTileThreads / 32;                 // 8

// Blocks of the tile scan: one per (batch row, kTileChannels channels).
NM_HD int64_t scan_tile_blocks(const SelectiveScanArgs& a) {
  return a.batch * ((a.dim + kTileChannels - 1) / kTileChannels);
}

// Which scan selective_scan_cuda runs (ScanTuning::method): `requested`
// when 1 (chunks) or 2 (tiles), else tiles when they give the device at
// least kScanTilesMinBlocks blocks (a block per SM of a large card; fewer
// channels leave the chunked scan more threads), else chunks. 0 for an
// unknown request.
constexpr int64_t kScanTilesMinBlocks = 96;
NM_HD int scan_method(const SelectiveScanArgs& a, int requested) {
  if (requested == 1 || requested == 2) return requested;
  if (requested != 0) return 0;
  return scan_tile_blocks(a) >= kScanTilesMinBlocks ? 2 : 1;
}

// An affine step h -> P h + H.
struct ScanStep {
  float P, H;
};

// `first` then `next`.
NM_HD ScanStep scan_then(ScanStep first, ScanStep next) {
  return {next.P * first.P, fmaf(next.P, first.H, next.H)};
}

NM_HD float scan_apply(ScanStep s, float h) { return fmaf(s.P, h, s.H); }

// kTileStates consecutive floats at p (n < nn; 0 past nn), as one 16-byte
// load on the device where aligned.
NM_HD void load_states4(const float* p, int nn, float (&v)[kTileStates]) {
#if defined(__CUDA_ARCH__)
  if (nn == kTileStates && ((uintptr_t)p & 15u) == 0) {
    const float4 t = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    return;
  }
#endif
NM_UNROLL
  for (int j = 0; j < kTileStates; ++j) v[j] = j < nn ? p[j] : 0.0f;
}

// One thread's view: channel d of batch row b (inactive past dim), its
// segment's tokens of the current tile, and the steps of the current group.
struct TileThread {
  int64_t b, d, t0;  // t0: the segment's first token in the current tile
  bool active;
  const float *B, *C;  // the channel's group's rows of B / C at token 0
  float u[kTileItems], dt[kTileItems], y[kTileItems];
  float dA[kTileItems][kTileStates], bx[kTileItems][kTileStates];
};

NM_HD void tile_thread_init(const SelectiveScanArgs& a, int64_t b, int64_t d, TileThread& T) {
  T.b = b, T.d = d, T.t0 = 0;
  T.active = d < a.dim;
  const int64_t g = T.active ? d / (a.dim / a.ngroups) : 0;
  T.B = a.B + b * a.B_batch_stride + g * a.dstate;
  T.C = a.C + b * a.C_batch_stride + g * a.dstate;
}

// The inputs of tokens [t0, t0 + kTileItems): u and dt (bias, softplus);
// tokens past the sequence (and inactive channels) get u = dt = 0, so
// their steps are the identity (exp(0) = 1, dt u B = 0); y = 0.
NM_HD void tile_load(const SelectiveScanArgs& a, int64_t t0, TileThread& T) {
  T.t0 = t0;
  const float* u = a.u + T.b * a.u_batch_stride + T.d;
  const float* dl = a.delta + T.b * a.delta_batch_stride + T.d;
NM_UNROLL
  for (int k = 0; k < kTileItems; ++k) {
    const int64_t t = t0 + k;
    const bool on = T.active && t < a.seqlen;
    T.u[k] = on ? u[t * a.u_token_stride] : 0.0f;
    T.dt[k] = on ? scan_dt(dl[t * a.delta_token_stride], a.delta_bias, T.d, a.delta_softplus) : 0.0f;
    T.y[k] = 0.0f;
  }
}

// Step 1 for states [n0, n0 + nn), nn <= kTileStates: each token's exp(dt A)
// and dt u B into T.dA / T.bx, and the segment's composed step per state
// (from the identity, in token order).
NM_HD void tile_segment_steps(const SelectiveScanArgs& a, int64_t n0, int nn, TileThread& T,
                              ScanStep (&s)[kTileStates]) {
  float A2[kTileStates];
NM_UNROLL
  for (int j = 0; j < kTileStates; ++j) {
    A2[j] = T.active && j < nn ? a.A[T.d * a.dstate + n0 + j] * kLog2e : 0.0f;
    s[j] = {1.0f, 0.0f};
  }
NM_UNROLL
  for (int k = 0; k < kTileItems; ++k) {
    const int64_t t = T.t0 + k;
    float Bv[kTileStates];
    if (t < a.seqlen) load_states4(T.B + t * a.B_token_stride + n0, nn, Bv);
    else Bv[0] = Bv[1] = Bv[2] = Bv[3] = 0.0f;
    const float du = T.dt[k] * T.u[k];
NM_UNROLL
    for (int j = 0; j < kTileStates; ++j) {
      T.dA[k][j] = scan_exp2(T.dt[k] * A2[j]);
      T.bx[k][j] = du * Bv[j];
      s[j] = scan_then(s[j], {T.dA[k][j], T.bx[k][j]});
    }
  }
}

// Step 3 for a thread of warp w: the state at its warp's start from the
// carry (the state at the tile's start) and the totals of warps 0 .. w-1
// (aggregates[warp], a warp-uniform trip count).
NM_HD float tile_warp_start(float carry, const ScanStep* aggregates, int w) {
  float h = carry;
  for (int i = 0; i < w; ++i) h = scan_apply(aggregates[i], h);
  return h;
}

// Step 4 for states [n0, n0 + nn) from the segment's initial states h:
// y_k += Σ_j C_kj h_kj in state order.
NM_HD void tile_segment_apply(const SelectiveScanArgs& a, int64_t n0, int nn, const float (&h0)[kTileStates],
                              TileThread& T) {
  float h[kTileStates];
NM_UNROLL
  for (int j = 0; j < kTileStates; ++j) h[j] = h0[j];
NM_UNROLL
  for (int k = 0; k < kTileItems; ++k) {
    const int64_t t = T.t0 + k;
    float Cv[kTileStates];
    if (t < a.seqlen) load_states4(T.C + t * a.C_token_stride + n0, nn, Cv);
    else Cv[0] = Cv[1] = Cv[2] = Cv[3] = 0.0f;
NM_UNROLL
    for (int j = 0; j < kTileStates; ++j) {
      h[j] = fmaf(T.dA[k][j], h[j], T.bx[k][j]);
      T.y[k] = fmaf(Cv[j], h[j], T.y[k]);
    }
  }
}

// The tile's outputs of the thread's tokens: (y + u D) silu(z).
NM_HD void tile_store(const SelectiveScanArgs& a, const TileThread& T) {
  if (!T.active) return;
  const float Dd = a.D ? a.D[T.d] : 0.0f;
  const float* z = a.z ? a.z + T.b * a.z_batch_stride + T.d : nullptr;
  float* out = a.out + T.b * a.out_batch_stride + T.d;
NM_UNROLL
  for (int k = 0; k < kTileItems; ++k) {
    const int64_t t = T.t0 + k;
    if (t >= a.seqlen) break;
    float r = fmaf(T.u[k], Dd, T.y[k]);
    if (z) r = r * silu(z[t * a.z_token_stride]);
    out[t * a.out_token_stride] = r;
  }
}

// The carry at the start: initial_state[b][d][n] (0 without one, and for
// channels past dim).
NM_HD float tile_initial_state(const SelectiveScanArgs& a, int64_t b, int64_t d, int64_t n) {
  return a.initial_state && d < a.dim ? a.initial_state[b * a.initial_state_batch_stride + d * a.dstate + n] : 0.0f;
}

}  // namespace nm::cuda
