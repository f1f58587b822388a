// Mamba-2 SSD scan for prefill (state-spaces/mamba `mamba_chunk_scan_combined`
// in ops/triton/ssd_combined.py; chunked form of modules/ssd_minimal.py), on
// packed variable-length sequences.
//
// Per sequence s (tokens cu_seqlens[s] .. cu_seqlens[s+1]-1) and head h, with
// group g = h / (nheads / ngroups):
//   dt_t = dt[t, h] + dt_bias[h];  dt_t = softplus(dt_t) if dt_softplus
//          (threshold 20: x > 20 -> x);  dt_t = min(max(dt_t, dt_min), dt_max)
//   state_t = exp(dt_t * A[h]) * state_{t-1} + dt_t * x[t, h, :] ⊗ B[t, g, :]
//             (state [headdim, dstate], state_{-1} = initial_states[s, h] or 0)
//   y_t     = state_t · C[t, g, :] + D[h] * x[t, h, :]
//   out[t, h, :] = y_t * silu(z[t, h, :])   (or y_t without z)
//   final_states[s, h] = state at the sequence's last token (its initial
//   state for an empty sequence).
//
// Computed in chunks of `chunk_size` tokens that restart at every sequence
// start (ssd_minimal_discrete): per chunk the cumulative sum of dt*A, the
// intra-chunk output (C·Bᵀ ∘ exp(segsum)) · (dt*x) over the lower triangle,
// the state-to-output term exp(cumsum) * C · state_prev, and the chunk's end
// state exp(sum dt*A) * state_prev + Σ_j exp(cum_end - cum_j) * dt_j x_j ⊗ B_j.
// Chunking only changes the float32 rounding, not the result.
//
// Layouts (row-major, ELEMENT strides). Per-token tensors have a token
// stride; inside a token the layout is dense:
//   x    [tokens, nheads, headdim]  x + t*x_stride + h*headdim + p
//   z    [tokens, nheads, headdim]  optional gate, same form (z_stride)
//   dt   [tokens, nheads]           dt + t*dt_stride + h
//   B, C [tokens, ngroups, dstate]  B + t*B_stride + g*dstate + n
//   out  [tokens, nheads, headdim]  out + t*out_stride + h*headdim + p
//   A, D, dt_bias [nheads] float32 (A = -exp(A_log); D, dt_bias optional)
//   cu_seqlens [nseq + 1]: 0 first, non-decreasing, last = tokens (checked
//     by the caller)
//   initial_states, final_states [nseq, nheads, headdim, dstate], dense;
//     initial_states optional (zeros).
// out must not alias any input; final_states must not alias initial_states.
#pragma once
#include <math.h>

#include <cstdint>

namespace nm {

struct SsdChunkScanArgs {
  int64_t tokens = 0, nheads = 0, headdim = 0, ngroups = 0, dstate = 0, nseq = 0;
  int64_t chunk_size = 64;  // >= 1 (the JS default; the GPU reference uses 256)
  const float* x = nullptr;
  int64_t x_stride = 0;
  const float* dt = nullptr;
  int64_t dt_stride = 0;
  const float* A = nullptr;
  const float* B = nullptr;
  int64_t B_stride = 0;
  const float* C = nullptr;
  int64_t C_stride = 0;
  const float* D = nullptr;        // optional
  const float* z = nullptr;        // optional
  int64_t z_stride = 0;
  const float* dt_bias = nullptr;  // optional
  bool dt_softplus = false;
  float dt_min = -INFINITY, dt_max = INFINITY;  // clamp (dt_limit)
  const int32_t* cu_seqlens = nullptr;
  const float* initial_states = nullptr;  // optional
  float* out = nullptr;
  int64_t out_stride = 0;
  float* final_states = nullptr;
};

// Multithreaded over (sequence × group × block of heads) on the global pool.
void ssd_chunk_scan(const SsdChunkScanArgs& a);

// Internal: per-thread scratch the dispatcher (ssd.cpp) allocates and the
// per-ISA bodies (ssd_impl.h) use. Leading dimensions are multiples of 16
// floats; padding lanes stay zero.
struct SsdScratch {
  int64_t q = 0;               // chunk length used (rows of the chunk buffers)
  int64_t ldq = 0, ldp = 0, ldn = 0;  // round_up(q | headdim | dstate, 16)
  float* bt = nullptr;         // [dstate, ldq]   B of the chunk, transposed
  float* cb = nullptr;         // [q, ldq]        C·Bᵀ (lower triangle)
  float* g = nullptr;          // [q, ldq]        C·Bᵀ ∘ exp(segsum), 0 above the diagonal
  float* xs = nullptr;         // [q, ldp]        dt_j * x_j
  float* u = nullptr;          // [q, ldp]        exp(cum_end - cum_j) * dt_j * x_j
  float* cs = nullptr;         // [q, ldn]        exp(cum_i) * C_i
  float* y = nullptr;          // [q, ldp]        chunk output before D and gate
  float* dtv = nullptr;        // [q]
  float* cum = nullptr;        // [q]             inclusive cumsum of dt*A
  float* st = nullptr;         // [heads_per_task, dstate, ldp]  states, transposed
};

}  // namespace nm
