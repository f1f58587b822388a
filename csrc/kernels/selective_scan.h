// Mamba-1 selective scan (prefill) and the single-step selective state update
// (decode) of Mamba-1 and Mamba-2.
//
// Semantics: state-spaces/mamba `selective_scan_ref`
// (mamba_ssm/ops/selective_scan_interface.py) and `selective_state_update`
// (mamba_ssm/ops/triton/selective_state_update.py); see REFERENCE.md §1.
// Everything is computed in float32 and the state is float32.
//
// selective_scan, per batch b, channel d (group g = d / (dim / ngroups)), for
// tokens l = 0..seqlen-1, starting from x = initial_state[b, d, :] (or 0):
//   dt        = delta[b, l, d] (+ delta_bias[d]);  if delta_softplus: dt = softplus(dt)
//   x[n]      = exp(dt * A[d, n]) * x[n] + dt * B[b, l, g, n] * u[b, l, d]
//   y         = sum_n x[n] * C[b, l, g, n]
//   out[b,l,d]= (y + u[b, l, d] * D[d]) * silu(z[b, l, d])   (D, z optional)
// and last_state[b, d, :] = x after the last token.
// softplus(v) = v <= 20 ? log1p(exp(v)) : v  (the reference's threshold).
//
// selective_state_update, one token, in place on the state. Rows r =
// h * headdim + p (Mamba-1: nheads = dim, headdim = 1, a_per_state = true;
// Mamba-2: a_per_state = false); head h uses group h / (nheads / ngroups):
//   dt        = dt[b, h] (+ dt_bias[h]);  if dt_softplus: dt = softplus(dt);
//               dt = min(max(dt, dt_min), dt_max)   (Mamba-2 dt_limit; default none)
//   s         = state[slot(b), r, :]  (slot(b) = state_indices ? state_indices[b] : b)
//   s[n]      = s[n] * exp(dt * A[h, n] or A[h]) + dt * B[b, g, n] * x[b, r]
//   out[b, r] = (sum_n s[n] * C[b, g, n] + x[b, r] * D[h]) * silu(z[b, r])
//
// A, D, delta_bias / dt_bias are float32 only: they are small per-layer
// parameters that the engine converts to float32 once, at load.
#pragma once
#include <math.h>

#include <cstdint>

namespace nm {

// Largest dstate of selective_scan (as the CUDA kernel; the per-block state
// lives on the stack).
constexpr int64_t kSelectiveScanMaxDstate = 256;

struct SelectiveScanArgs {
  int64_t batch = 0, seqlen = 0, dim = 0, dstate = 0;  // 1 <= dstate <= 256
  int64_t ngroups = 1;                                 // divides dim
  // Per-token tensors: element strides for batch and token; within a token
  // the listed trailing axes are contiguous.
  const float* u = nullptr;      // [batch, seqlen, dim]
  int64_t u_batch_stride = 0, u_token_stride = 0;
  const float* delta = nullptr;  // [batch, seqlen, dim]
  int64_t delta_batch_stride = 0, delta_token_stride = 0;
  const float* B = nullptr;      // [batch, seqlen, ngroups, dstate]
  int64_t B_batch_stride = 0, B_token_stride = 0;
  const float* C = nullptr;      // [batch, seqlen, ngroups, dstate]
  int64_t C_batch_stride = 0, C_token_stride = 0;
  const float* z = nullptr;      // optional gate [batch, seqlen, dim]
  int64_t z_batch_stride = 0, z_token_stride = 0;
  float* out = nullptr;          // [batch, seqlen, dim]; may alias u or z (same strides)
  int64_t out_batch_stride = 0, out_token_stride = 0;
  // Parameters, contiguous.
  const float* A = nullptr;           // [dim, dstate]
  const float* D = nullptr;           // optional [dim]
  const float* delta_bias = nullptr;  // optional [dim]
  bool delta_softplus = false;
  // States [batch, dim, dstate], (dim, dstate) contiguous; may alias each other.
  const float* initial_state = nullptr;  // optional (zeros when absent)
  int64_t initial_state_batch_stride = 0;
  float* last_state = nullptr;           // optional output
  int64_t last_state_batch_stride = 0;
};

struct SelectiveStateUpdateArgs {
  int64_t batch = 0, nheads = 0, headdim = 1, dstate = 0;
  int64_t ngroups = 1;  // divides nheads
  // true (Mamba-1): A is [nheads, dstate]; false (Mamba-2): A is [nheads].
  bool a_per_state = true;
  // State pool [slots, nheads, headdim, dstate], the last three axes
  // contiguous; updated in place. Batch row b updates slot state_indices[b]
  // (optional int32 [batch]; distinct, in range: the caller validates) or
  // slot b.
  float* state = nullptr;
  int64_t state_batch_stride = 0;
  const int32_t* state_indices = nullptr;
  const float* x = nullptr;   // [batch, nheads, headdim]
  int64_t x_batch_stride = 0;
  const float* dt = nullptr;  // [batch, nheads]
  int64_t dt_batch_stride = 0;
  const float* B = nullptr;   // [batch, ngroups, dstate]
  int64_t B_batch_stride = 0;
  const float* C = nullptr;   // [batch, ngroups, dstate]
  int64_t C_batch_stride = 0;
  const float* z = nullptr;   // optional [batch, nheads, headdim]
  int64_t z_batch_stride = 0;
  float* out = nullptr;       // [batch, nheads, headdim]; may alias x or z
  int64_t out_batch_stride = 0;
  const float* A = nullptr;        // [nheads, dstate] or [nheads]
  const float* D = nullptr;        // optional [nheads]
  const float* dt_bias = nullptr;  // optional [nheads]
  bool dt_softplus = false;
  float dt_min = -INFINITY, dt_max = INFINITY;  // clamp after the softplus, as SsdChunkScanArgs
};

// Multithreaded on the global pool: the scan over (batch x channel blocks),
// the update over (batch x row blocks).
void selective_scan(const SelectiveScanArgs& a);
void selective_state_update(const SelectiveStateUpdateArgs& a);

}  // namespace nm
