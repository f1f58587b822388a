// Per-thread math of the CUDA norm kernels (cuda/norm.cu), shared with the
// host emulation (cuda/check). Semantics: kernels/norm.h.
//
// One block of kNormThreads threads per row (rms_norm) or per (row, group)
// (gated_rms_norm). Thread t owns elements i = t, t + kNormThreads, ...:
//   1. partial = fmaf(v, v, partial) over its elements in order (writing
//      residual_out / the gated value as it goes);
//   2. the block sums the kNormThreads partials as a fixed tree
//      (block_tree_sum: stride kNormThreads/2, /4, ..., 1), which the host
//      emulation repeats exactly (tree_sum_host);
//   3. scale = 1 / sqrtf(sum / n + eps); each thread writes its elements.
// Every element is read and written by the same thread, so the elementwise
// aliasing kernels/norm.h allows (out == x, residual_out == residual_in) holds.
#pragma once
#include "kernels/norm.h"
#include "math_common.cuh"

namespace nm::cuda {

constexpr int kNormThreads = 256;

// Elements a thread loads before it uses them (its elements t, t + 256,
// ...: kNormBatch of them at a time), so that a thread waits one load
// latency per batch, not per element. Each element is still read and written
// by its own thread only, so the aliasing above holds.
constexpr int kNormBatch = 4;

// rms_norm's threads per row: kNormThreads, or for a few rows (a decode
// step's) kNormRowThreads, each thread then holding its at most kNormBatch
// elements in registers from load to store (norm.cu rms_norm_row_kernel):
// one load latency per row instead of one per batch and phase.
constexpr int kNormRowThreads = 1024;
constexpr int64_t kNormFewRows = 16;
NM_HD int rms_norm_threads(const RmsNormArgs& a) {
  return a.rows <= kNormFewRows && a.dim <= (int64_t)kNormRowThreads * kNormBatch ? kNormRowThreads : kNormThreads;
}

// A batch of thread t's elements of row r: i = i0 + u * threads for u <
// kNormBatch (those inside dim), loaded before any is used.
NM_HD void rms_norm_load_values(const RmsNormArgs& a, int64_t r, int64_t i0, int threads, float (&v)[kNormBatch]) {
  const float* x = a.x + r * a.x_stride;
  const float* res = a.residual_in ? a.residual_in + r * a.residual_in_stride : nullptr;
NM_UNROLL
  for (int u = 0; u < kNormBatch; ++u) {
    const int64_t i = i0 + (int64_t)u * threads;
    if (i < a.dim) {
      v[u] = x[i];
      if (res) v[u] = v[u] + res[i];
    }
  }
}

NM_HD void rms_norm_load_weights(const RmsNormArgs& a, int64_t i0, int threads, float (&w)[kNormBatch]) {
NM_UNROLL
  for (int u = 0; u < kNormBatch; ++u) {
    const int64_t i = i0 + (int64_t)u * threads;
    if (i < a.dim) w[u] = load_float(a.weight, a.weight_dtype, i);
  }
}

// Step 1 on a batch: residual_out, and the chain acc = fmaf(v, v, acc).
NM_HD float rms_norm_accumulate(const RmsNormArgs& a, int64_t r, int64_t i0, int threads, const float (&v)[kNormBatch],
                                float acc) {
  float* res_out = a.residual_out ? a.residual_out + r * a.residual_out_stride : nullptr;
NM_UNROLL
  for (int u = 0; u < kNormBatch; ++u) {
    const int64_t i = i0 + (int64_t)u * threads;
    if (i >= a.dim) break;
    if (res_out) res_out[i] = v[u];
    acc = fmaf(v[u], v[u], acc);
  }
  return acc;
}

// Step 3 on a batch: out = v * scale * w.
NM_HD void rms_norm_write(const RmsNormArgs& a, int64_t r, int64_t i0, int threads, const float (&v)[kNormBatch],
                          const float (&w)[kNormBatch], float scale) {
  float* out = a.out + r * a.out_stride;
NM_UNROLL
  for (int u = 0; u < kNormBatch; ++u) {
    const int64_t i = i0 + (int64_t)u * threads;
    if (i >= a.dim) break;
    out[i] = v[u] * scale * w[u];
  }
}

// Step 1 of rms_norm for thread t of `threads` (rms_norm_threads) of row r.
NM_HD float rms_norm_partial(const RmsNormArgs& a, int64_t r, int t, int threads) {
  float acc = 0.0f;
  for (int64_t i0 = t; i0 < a.dim; i0 += (int64_t)threads * kNormBatch) {
    float v[kNormBatch];
    rms_norm_load_values(a, r, i0, threads, v);
    acc = rms_norm_accumulate(a, r, i0, threads, v, acc);
  }
  return acc;
}

NM_HD float norm_scale(float sum, int64_t n, float eps) { return 1.0f / sqrtf(sum / (float)n + eps); }

// Step 3 of rms_norm for thread t of `threads` of row r (the values again:
// residual_out where it was written, else x + residual_in as in step 1).
NM_HD void rms_norm_store(const RmsNormArgs& a, int64_t r, int t, int threads, float scale) {
  const float* res_out = a.residual_out ? a.residual_out + r * a.residual_out_stride : nullptr;
  for (int64_t i0 = t; i0 < a.dim; i0 += (int64_t)threads * kNormBatch) {
    float v[kNormBatch], w[kNormBatch];
    if (res_out) {
NM_UNROLL
      for (int u = 0; u < kNormBatch; ++u) {
        const int64_t i = i0 + (int64_t)u * threads;
        if (i < a.dim) v[u] = res_out[i];
      }
    } else {
      rms_norm_load_values(a, r, i0, threads, v);
    }
    rms_norm_load_weights(a, i0, threads, w);
    rms_norm_write(a, r, i0, threads, v, w, scale);
  }
}

// Step 1 of gated_rms_norm for thread t of row r, group g: the gated value
// goes to out (read back in step 3).
NM_HD float gated_rms_norm_partial(const GatedRmsNormArgs& a, int64_t r, int64_t g, int t) {
  const int64_t i0 = g * a.group_size;
  const float* y = a.y + r * a.y_stride + i0;
  const float* z = a.z ? a.z + r * a.z_stride + i0 : nullptr;
  float* out = a.out + r * a.out_stride + i0;
  float acc = 0.0f;
  for (int64_t i = t; i < a.group_size; i += kNormThreads) {
    float v = y[i];
    if (z) v = v * silu(z[i]);
    out[i] = v;
    acc = fmaf(v, v, acc);
  }
  return acc;
}

NM_HD void gated_rms_norm_store(const GatedRmsNormArgs& a, int64_t r, int64_t g, int t, float scale) {
  const int64_t i0 = g * a.group_size;
  float* out = a.out + r * a.out_stride + i0;
  for (int64_t i = t; i < a.group_size; i += kNormThreads)
    out[i] = out[i] * scale * load_float(a.weight, a.weight_dtype, i0 + i);
}

}  // namespace nm::cuda
