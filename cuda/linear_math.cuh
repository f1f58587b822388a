// Per-thread math of the CUDA decode GEMV (cuda/linear.cu), shared with the
// host emulation (cuda/check). Semantics: kernels/linear.h.
//
// One warp per output row n (kGemvWarps rows per block, grid-strided over n),
// or, for long rows (gemv_row_warps), S = 2 or 4 warps per row (split K: warp
// w takes chunks w * 32 + l, stepping 32 S; the warps' sums combined by
// gemv_warps_sum). The row's K elements are cut into chunks of C consecutive
// elements (gemv_chunk: a whole 32-element block for Q8_0 / Q4_0 weights and
// for Q8Block rounding, whose rounding blocks then coincide with the chunks;
// else 8, one 16-byte load of f16 / bf16 weights); lane l takes chunks l,
// l + 32, ... Per chunk the lane loads (and dequantises) the C weights once
// (the loads of U chunks issued before their products) and
// accumulates them into every input row m < M:
//   acc[m] = fmaf(round(x[m, k]), w[n, k], acc[m])   for k in chunk order,
// where round() is linear.h's activation rounding (computed per chunk: the
// Q8Block amax over the chunk itself). The 32 lane partials are then summed
// by a butterfly (__shfl_xor_sync, offsets 16, 8, 4, 2, 1), which gives every
// lane the fixed tree sum p[t] + p[t + s] that tree_sum_host repeats (float
// addition is commutative), and lane 0 writes y = sum (+ bias).
// The CPU kernels sum in another order: equal up to float32 rounding.
#pragma once
#include "kernels/linear.h"
#include "math_common.cuh"

namespace nm::cuda {

constexpr int64_t kGemvMaxRows = 16;  // largest M linear_cuda handles (kLinearGemvMaxRows)
constexpr int kGemvWarps = 4;         // output rows (warps) per block
constexpr int kWarpSize = 32;

// Flags of the launch: the weight rows / the x rows allow 16-byte loads
// (device only; the emulation reads element by element, the same values).
constexpr int kGemvVecW = 1, kGemvVecX = 2, kGemvAlign2W = 4;
// The launch is programmatic (cuda/pdl.cuh): prefetch the block's first
// weight rows into L2 before waiting for the predecessor.
constexpr int kGemvPdl = 8;

// The little-endian 16-bit word at p (one load on the device when the
// weight is 2-byte aligned: kGemvAlign2W).
NM_HD uint16_t load_u16(const uint8_t* p, int flags) {
#if defined(__CUDA_ARCH__)
  if (flags & kGemvAlign2W) return __ldg(reinterpret_cast<const unsigned short*>(p));
#endif
  (void)flags;
  return (uint16_t)(p[0] | (p[1] << 8));
}

// bf16_to_f32(f32_to_bf16(v)) of core/dtype.h: round to nearest even, NaN stays NaN.
NM_HD float round_to_bf16(float v) {
  uint32_t x = float_to_bits(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) return bits_to_float(((x >> 16) | 0x40u) << 16);
  x += 0x7fffu + ((x >> 16) & 1u);
  return bits_to_float((x >> 16) << 16);
}

// std::max(lo, v) and std::min(hi, v) as the CPU spells its clamps (a NaN v
// gives lo, then hi's test keeps it).
NM_HD float std_max(float a, float b) { return a < b ? b : a; }
NM_HD float std_min(float a, float b) { return b < a ? b : a; }

NM_HD int gemv_chunk(DType w, ActRounding r) {
  return (w == DType::Q8_0 || w == DType::Q4_0 || r == ActRounding::Q8Block) ? 32 : 8;
}

// A Q8_0 / Q4_0 block's 32 weights from its f16 scale bits and its quants as
// little-endian words (Q8_0: 8 words of int8; Q4_0: 4 words, byte j holding
// weights j (low nibble) and j + 16 (high)): w = d * q.
template <DType WT>
NM_HD void block_dequant(uint16_t dbits, const uint32_t (&q)[WT == DType::Q8_0 ? 8 : 4], float (&w)[32]) {
  const float d = half_bits_to_float(dbits);
  if constexpr (WT == DType::Q8_0) {
    NM_UNROLL
    for (int i = 0; i < 32; ++i) w[i] = d * (float)(int8_t)(q[i / 4] >> (8 * (i % 4)));
  } else {
    NM_UNROLL
    for (int i = 0; i < 16; ++i) {
      const int b = (int)((q[i / 4] >> (8 * (i % 4))) & 0xffu);
      w[i] = d * (float)((b & 0x0f) - 8);
      w[i + 16] = d * (float)((b >> 4) - 8);
    }
  }
}

// Weights k0 .. k0 + len - 1 of row n into w[0 .. len) (C == 32 for the
// block formats: one block).
template <DType WT, int C>
NM_HD void gemv_load_w(const LinearArgs& a, int64_t n, int64_t k0, int len, int flags, float (&w)[C]) {
  if constexpr (WT == DType::Q8_0 || WT == DType::Q4_0) {
    // The block's scale and quants (blocks are 34 / 18 bytes: 2-byte aligned
    // when the weight is) as 16-bit loads, then block_dequant.
    static_assert(C == 32, "one block per chunk");
    constexpr int64_t bb = WT == DType::Q8_0 ? 34 : 18;
    constexpr int QW = WT == DType::Q8_0 ? 8 : 4;
    const uint8_t* blk = static_cast<const uint8_t*>(a.w) + (n * a.w_stride + k0) / 32 * bb;
    uint32_t q[QW];
    NM_UNROLL
    for (int i = 0; i < QW; ++i) q[i] = load_u16(blk + 2 + 4 * i, flags) | ((uint32_t)load_u16(blk + 4 + 4 * i, flags) << 16);
    block_dequant<WT>(load_u16(blk, flags), q, w);
  } else {
    const int64_t base = n * a.w_stride + k0;
#if defined(__CUDA_ARCH__)
    if ((flags & kGemvVecW) && len == C) {
      if constexpr (WT == DType::F32) {
        const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(a.w) + base);
NM_UNROLL
        for (int i = 0; i < C / 4; ++i) {
          const float4 v = __ldg(p + i);
          w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
        }
      } else {
        const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(a.w) + base);
NM_UNROLL
        for (int i = 0; i < C / 8; ++i) {
          const uint4 v = __ldg(p + i);
          const uint32_t u[4] = {v.x, v.y, v.z, v.w};
NM_UNROLL
          for (int h = 0; h < 4; ++h) {
            const uint16_t lo = (uint16_t)(u[h] & 0xffffu), hi = (uint16_t)(u[h] >> 16);
            w[8 * i + 2 * h] = WT == DType::F16 ? half_bits_to_float(lo) : bf16_bits_to_float(lo);
            w[8 * i + 2 * h + 1] = WT == DType::F16 ? half_bits_to_float(hi) : bf16_bits_to_float(hi);
          }
        }
      }
      return;
    }
#endif
NM_UNROLL
    for (int j = 0; j < C; ++j) w[j] = j < len ? load_float(a.w, WT, base + j) : 0.0f;
  }
  (void)flags;
}

// round(x[m, k0 .. k0 + len)) into x[0 .. len) (linear.h's ActRounding; for
// Q8Block the chunk is the rounding block: C == 32, k0 % 32 == 0).
template <int C>
NM_HD void gemv_load_x(const LinearArgs& a, int64_t m, int64_t k0, int len, int flags, float (&x)[C]) {
  const float* xr = x_row(a, m) + k0;
  bool loaded = false;
#if defined(__CUDA_ARCH__)
  if ((flags & kGemvVecX) && len == C) {
    const float4* p = reinterpret_cast<const float4*>(xr);
NM_UNROLL
    for (int i = 0; i < C / 4; ++i) {
      const float4 v = p[i];
      x[4 * i] = v.x, x[4 * i + 1] = v.y, x[4 * i + 2] = v.z, x[4 * i + 3] = v.w;
    }
    loaded = true;
  }
#endif
  if (!loaded) {
NM_UNROLL
    for (int j = 0; j < C; ++j) x[j] = j < len ? xr[j] : 0.0f;
  }
  if (a.x_rounding == ActRounding::BF16) {
NM_UNROLL
    for (int j = 0; j < C; ++j) x[j] = round_to_bf16(x[j]);
  } else if (a.x_rounding == ActRounding::Q8Block) {
    // amax is NaN when the block holds a NaN (the CPU's test), so every
    // output reading the block is NaN.
    float amax = 0.0f;
NM_UNROLL
    for (int j = 0; j < C; ++j) {
      const float v = fabsf(x[j]);
      if (j < len && (v > amax || v != v)) amax = v;
    }
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
NM_UNROLL
    for (int j = 0; j < C; ++j) x[j] = d * std_min(127.0f, std_max(-127.0f, rintf(x[j] * id)));
  }
  (void)flags;
}

// Warps per output row (split K), where K is long enough to split (>= 1024;
// plain chunks, C == 8, only): 4 for up to 1024 rows (a Mamba x_proj, 160
// rows of 4096), 2 for up to 4096 (an out_proj), else 1, so that every
// multiprocessor has warps enough to keep its loads in flight. On an H200
// (bench/NOTES.md, thirty-second session): x_proj 10.1 -> 5.1 us, out_proj
// (K 4096, N 2048) 10.9 -> 7.4 us.
constexpr int64_t kGemvSplitMinK = 1024;
NM_HD int gemv_row_warps(const LinearArgs& a, int C) {
  if (C != 8 || a.K < kGemvSplitMinK) return 1;
  return a.N <= 1024 ? 4 : a.N <= 4096 ? 2 : 1;
}

// A split row's sum from its S warps' sums (S = 1, 2 or 4), in
// tree_sum_host's order.
NM_HD float gemv_warps_sum(const float* p, int S) {
  return S == 4 ? (p[0] + p[2]) + (p[1] + p[3]) : S == 2 ? p[0] + p[1] : p[0];
}

// The partial sums of row n for the input rows m < min(M, MB) over the
// chunks first, first + step, ... (a lane of a warp per row: first = lane,
// step = 32; of a split row: first = warp * 32 + lane, step = 128), each
// row's fmaf chain in chunk order.
template <DType WT, int C, int MB, int U = 1>
NM_HD void gemv_lane_partial(const LinearArgs& a, int64_t n, int64_t first, int64_t step, int flags, float (&acc)[MB]) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) acc[m] = 0.0f;
  const int64_t chunks = (a.K + C - 1) / C;
  for (int64_t c0 = first; c0 < chunks; c0 += step * U) {
    float w[U][C];
NM_UNROLL
    for (int u = 0; u < U; ++u) {
      const int64_t k0 = (c0 + u * step) * C;
      if (k0 < a.K) gemv_load_w<WT, C>(a, n, k0, a.K - k0 < C ? (int)(a.K - k0) : C, flags, w[u]);
    }
NM_UNROLL
    for (int u = 0; u < U; ++u) {
      const int64_t k0 = (c0 + u * step) * C;
      if (k0 >= a.K) break;
      const int len = a.K - k0 < C ? (int)(a.K - k0) : C;
NM_UNROLL
      for (int m = 0; m < MB; ++m) {
        if (m >= a.M) break;
        float x[C];
        gemv_load_x<C>(a, m, k0, len, flags, x);
NM_UNROLL
        for (int j = 0; j < C; ++j)
          if (j < len) acc[m] = fmaf(x[j], w[u][j], acc[m]);
      }
    }
  }
}

// y[m, n] from the tree sum of row n's lane partials for input row m.
NM_HD void gemv_store(const LinearArgs& a, int64_t m, int64_t n, float sum) {
  a.y[m * a.y_stride + n] = a.bias ? sum + load_float(a.bias, a.bias_dtype, n) : sum;
}

}  // namespace nm::cuda
