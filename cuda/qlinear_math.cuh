// Per-thread math of the CUDA decode GEMV of the Quamba formats
// (cuda/qlinear.cu), shared with the host emulation (cuda/check).
// Semantics and the arithmetic to repeat: kernels/qlinear.h.
//
// One warp per output row n (kQGemvWarps rows per block); every input row
// m < M is accumulated from the same weight load.
//   W8A8: lane l takes the 16-byte pieces l, l + 32, ... of the row: int32
//     sums of products of 4 int8 at a time (__dp4a on the device, plain
//     integer math on the host: the same exact sums), added over the lanes
//     (exact), then y = float(sum) * (s_x * s_w[n]) + b, a multiply then an
//     add as the CPU (built with -ffp-contract=off) rounds them: bit for bit.
//   W4A8: lane l takes the groups (128 elements, 64 packed bytes) l, l + 32,
//     ...: the exact int32 sum of (nibble - 8) * q_x over the group; then, in
//     rounds of 32 groups, every lane runs the CPU's chain
//     f = fmaf(float(isum_g), s_w[n, g], f) in group order over the lanes'
//     sums (broadcast by shuffles), and y = f * s_x + b: bit for bit.
//   W4A16: the W4A8 kernel's coalesced lanes (four per group, 16 bytes
//     each: w4a16_quarter_partial): w = s_w[n, g] * (nibble - 8) as the CPU
//     widens it, acc = fmaf(w, x, acc); the 32 lane partials are summed by
//     the butterfly of linear_math.cuh (tree_sum_host on the host); y = sum
//     + b. The CPU sums in another order: equal up to float32 rounding.
// Float inputs of the int8 schemes are quantized per element where they
// are read (q = clamp(rint(x * inv), -127, 127), inv = 1 / s_x, a NaN
// marks the row: its outputs are NaN); xq is read as given.
#pragma once
#include "kernels/qlinear.h"
#include "linear_math.cuh"

namespace nm::cuda {

constexpr int kQGemvWarps = 4;
constexpr int kQGemvVecW = 1;  // weight rows allow 16-byte loads (device only)
constexpr int kQGemvPdl = 2;   // programmatic launch (cuda/pdl.cuh): prefetch, then wait


// acc + the dot product of the four signed bytes of w and x.
NM_HD int32_t dot4(uint32_t w, uint32_t x, int32_t acc) {
#if defined(__CUDA_ARCH__)
  return __dp4a((int)w, (int)x, acc);
#else
  for (int i = 0; i < 4; ++i) acc += (int32_t)(int8_t)(w >> (8 * i)) * (int32_t)(int8_t)(x >> (8 * i));
  return acc;
#endif
}

// q_x[m, k] (0 past K); a NaN float input sets bit m of nan (a bit mask,
// not an array: it stays in a register).
// clamp(rint(x * inv), -127, 127); a NaN sets `nan` and gives 0.
NM_HD int32_t quantize_x(float x, float inv, bool& nan) {
  const float v = rintf(x * inv);
  if (v != v) {
    nan = true;
    return 0;
  }
  return (int32_t)fminf(127.0f, fmaxf(-127.0f, v));
}

NM_HD int32_t qx_value(const QLinearArgs& a, int64_t m, int64_t k, float inv, uint32_t& nan) {
  if (k >= a.K) return 0;
  if (a.xq) return a.xq[m * a.xq_stride + k];
  bool isnan = false;
  const int32_t q = quantize_x(x_row(a, m)[k], inv, isnan);
  if (isnan) nan |= 1u << m;
  return q;
}

// Weight element k of row n as a signed integer: the int8 (I8) or nibble - 8
// (I4: byte j of a 64-element chunk holds elements j and j + 32); 0 past K.
NM_HD int32_t qweight_value(const QLinearArgs& a, int64_t n, int64_t k) {
  if (k >= a.K) return 0;
  const uint8_t* row = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
  if (a.w_dtype == DType::I8) return (int32_t)(int8_t)row[k];
  const int64_t c = k / kI4Chunk, j = k % kI4Chunk;
  const uint8_t b = row[c * (kI4Chunk / 2) + (j % 32)];
  return (int32_t)(j < 32 ? (b & 0x0f) : (b >> 4)) - 8;
}

// q_x[m, k .. k + 3] as four bytes (element k in the low byte); one 4-byte
// load where xq holds them all, aligned.
NM_HD uint32_t qx_word(const QLinearArgs& a, int64_t m, int64_t k, float inv, uint32_t& nan) {
  if (a.xq && k + 4 <= a.K) {
    const int8_t* p = a.xq + m * a.xq_stride + k;
    if (((uintptr_t)p & 3u) == 0) {
      uint32_t v;
      memcpy(&v, p, 4);
      return v;
    }
  }
  uint32_t w = 0;
  for (int i = 0; i < 4; ++i) w |= (uint32_t)(qx_value(a, m, k + i, inv, nan) & 0xff) << (8 * i);
  return w;
}

// Bytes [b0, b0 + 4 * W) of a weight row, as W little-endian words; bytes at
// or past `end` read as 0 (not read).
template <int W>
NM_HD void load_row_words(const uint8_t* row, int64_t b0, int64_t end, int flags, uint32_t (&w)[W]) {
#if defined(__CUDA_ARCH__)
  if ((flags & kQGemvVecW) && b0 + 4 * W <= end) {
    const uint4* p = reinterpret_cast<const uint4*>(row + b0);
NM_UNROLL
    for (int i = 0; i < W / 4; ++i) {
      const uint4 v = __ldg(p + i);
      w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
    }
    return;
  }
#endif
NM_UNROLL
  for (int i = 0; i < W; ++i) {
    uint32_t v = 0;
    for (int j = 0; j < 4; ++j)
      if (b0 + 4 * i + j < end) v |= (uint32_t)row[b0 + 4 * i + j] << (8 * j);
    w[i] = v;
  }
  (void)flags;
}

// ------------------------------------------------------------------ W8A8

// 16-byte pieces per lane loaded together: 4 for one input row (decode at
// batch 1); with more rows the registers go to their accumulators (a batch
// of 2 at 4 rows already spills).
template <int MB>
constexpr int w8a8_batch() { return MB == 1 ? 4 : 1; }

// Lane `lane`'s exact partial sums of row n for input rows m < min(M, MB).
template <int MB>
NM_HD void w8a8_lane_partial(const QLinearArgs& a, int64_t n, int lane, float inv, int flags, int32_t (&acc)[MB],
                             uint32_t& nan) {
  nan = 0;
NM_UNROLL
  for (int m = 0; m < MB; ++m) acc[m] = 0;
  const uint8_t* row = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
  const int64_t pieces = (a.K + 15) / 16;
  // w8a8_batch pieces' loads issued before their products (memory-level
  // parallelism: a lane waits for one load latency per batch, not per
  // piece); integer sums, so the order changes nothing.
  constexpr int kW8A8Batch = w8a8_batch<MB>();
  for (int64_t p0 = lane; p0 < pieces; p0 += (int64_t)kWarpSize * kW8A8Batch) {
    uint32_t w[kW8A8Batch][4];
NM_UNROLL
    for (int u = 0; u < kW8A8Batch; ++u) {
      const int64_t p = p0 + (int64_t)u * kWarpSize;
      if (p < pieces) load_row_words<4>(row, p * 16, a.K, flags, w[u]);
      else w[u][0] = w[u][1] = w[u][2] = w[u][3] = 0;
    }
NM_UNROLL
    for (int u = 0; u < kW8A8Batch; ++u) {
      const int64_t p = p0 + (int64_t)u * kWarpSize;
      if (p >= pieces) break;
      const int64_t k0 = p * 16;
NM_UNROLL
      for (int m = 0; m < MB; ++m) {
        if (m >= a.M) break;
NM_UNROLL
        for (int i = 0; i < 4; ++i) acc[m] = dot4(w[u][i], qx_word(a, m, k0 + 4 * i, inv, nan), acc[m]);
      }
    }
  }
}

NM_HD float bias_value(const void* bias, DType t, int64_t n) { return bias ? load_float(bias, t, n) : 0.0f; }

NM_HD void w8a8_store(const QLinearArgs& a, int64_t m, int64_t n, int32_t sum, bool nan) {
  const float s = mul_rn(a.x_scale, a.w_scales[n]);
  const float v = add_rn(mul_rn((float)sum, s), bias_value(a.bias, a.bias_dtype, n));
  a.y[m * a.y_stride + n] = nan ? NAN : v;
}

// ------------------------------------------------------------------ I4

// The signed bytes (u - 8) of four nibble bytes u (0..15), without carries
// between bytes: (u + 128 - 8) ^ 128 per byte.
NM_HD uint32_t nibbles_to_s8(uint32_t u) { return ((u | 0x80808080u) - 0x08080808u) ^ 0x80808080u; }

// Exact Σ_{k in group g} (nibble - 8) * q_x[m, k] of row n for m < min(M, MB)
// (NaN inputs OR'ed into the mask nan).
template <int MB>
NM_HD void w4a8_group_sums(const QLinearArgs& a, int64_t n, int64_t g, float inv, int flags, int32_t (&isum)[MB],
                           uint32_t& nan) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) isum[m] = 0;
  const uint8_t* row = static_cast<const uint8_t*>(a.w) + n * a.w_stride;
  const int64_t chunks = (a.K + kI4Chunk - 1) / kI4Chunk, row_end = chunks * (kI4Chunk / 2);
  const int64_t c1 = 2 * g + 2 < chunks ? 2 * g + 2 : chunks;
  for (int64_t c = 2 * g; c < c1; ++c) {
    uint32_t w[8];
    load_row_words<8>(row, c * (kI4Chunk / 2), row_end, flags, w);
NM_UNROLL
    for (int i = 0; i < 8; ++i) {
      const uint32_t lo = nibbles_to_s8(w[i] & 0x0f0f0f0fu), hi = nibbles_to_s8((w[i] >> 4) & 0x0f0f0f0fu);
      const int64_t k = c * kI4Chunk + 4 * i;
NM_UNROLL
      for (int m = 0; m < MB; ++m) {
        if (m >= a.M) break;
        isum[m] = dot4(lo, qx_word(a, m, k, inv, nan), isum[m]);
        isum[m] = dot4(hi, qx_word(a, m, k + 32, inv, nan), isum[m]);
      }
    }
  }
}

// float(u - 8) for a nibble u (0..15), exactly: 2^23 + u as float bits, minus
// 2^23 + 8 (integer-to-float conversions are slower on the device).
NM_HD float nibble_minus_8(uint32_t u) { return bits_to_float(0x4B000000u | u) - 8388616.0f; }

// The coalesced W4A8 kernel (int8 inputs in memory): per step the warp takes
// kW4A8StepGroups groups from g0; lane l the 16 weight bytes of half-chunk
// l % 2 of chunk (l % 4) / 2 of group g0 + l / 4 (a chunk's byte j holds
// elements j and j + 32). Lane l's exact partial sums of that group for the
// input rows m < min(M, MB) (0 past the row); a group's sum is the sum of its
// four lanes' (exact in any order).
constexpr int kW4A8StepGroups = kWarpSize / 4;

// Split in two so that the device can issue a step's weight loads before
// the sums of the step before (w4a8_quarter_load, then w4a8_quarter_sums).
// Lane l's 16 weight bytes of the step at g0 (0 where the lane has none).
NM_HD void w4a8_quarter_load(const QLinearArgs& a, const uint8_t* row, int64_t g0, int lane, int flags,
                             uint32_t (&w)[4]) {
  const int64_t G = (a.K + kI4Group - 1) / kI4Group, chunks = (a.K + kI4Chunk - 1) / kI4Chunk;
  const int q = lane % 4;
  const int64_t g = g0 + lane / 4, c = 2 * g + q / 2;
  if (g >= G || c >= chunks) {
    w[0] = w[1] = w[2] = w[3] = 0;
    return;
  }
  load_row_words<4>(row, c * (kI4Chunk / 2) + 16 * (q % 2), chunks * (kI4Chunk / 2), flags, w);
}

// Lane l's exact partial sums of the step at g0 from its words w.
template <int MB>
NM_HD void w4a8_quarter_sums(const QLinearArgs& a, const uint32_t (&w)[4], int64_t g0, int lane, float inv,
                             int32_t (&isum)[MB], uint32_t& nan) {
NM_UNROLL
  for (int m = 0; m < MB; ++m) isum[m] = 0;
  const int64_t G = (a.K + kI4Group - 1) / kI4Group, chunks = (a.K + kI4Chunk - 1) / kI4Chunk;
  const int q = lane % 4;
  const int64_t g = g0 + lane / 4, c = 2 * g + q / 2;
  if (g >= G || c >= chunks) return;
  const int64_t half = 16 * (q % 2);
NM_UNROLL
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = nibbles_to_s8(w[i] & 0x0f0f0f0fu), hi = nibbles_to_s8((w[i] >> 4) & 0x0f0f0f0fu);
    const int64_t k = c * kI4Chunk + half + 4 * i;
NM_UNROLL
    for (int m = 0; m < MB; ++m) {
      if (m >= a.M) break;
      isum[m] = dot4(lo, qx_word(a, m, k, inv, nan), isum[m]);
      isum[m] = dot4(hi, qx_word(a, m, k + 32, inv, nan), isum[m]);
    }
  }
}

// One step of the group chain.
NM_HD float w4a8_step(float f, int32_t isum, float scale) { return fmaf((float)isum, scale, f); }

NM_HD void w4a8_store(const QLinearArgs& a, int64_t m, int64_t n, float f, bool nan) {
  const float v = add_rn(mul_rn(f, a.x_scale), bias_value(a.bias, a.bias_dtype, n));
  a.y[m * a.y_stride + n] = nan ? NAN : v;
}

// W4A16 with the coalesced mapping of the W4A8 kernel (w4a8_quarter_load:
// per step kW4A8StepGroups groups, lane l the 16 bytes of quarter l % 4 of
// group g0 + l / 4), the weights' words of a step in w. Lane l's partial
// sums for m < min(M, MB) gain its 32 elements: w = s_w[n, g] * (nibble - 8)
// as the CPU widens it, acc = fmaf(w, x, acc) over the low nibbles' elements
// (chunk offsets half .. half + 15), then the high ones' (+ 32), skipping
// elements past K. Summed over the lanes by the butterfly afterwards.
template <int MB>
NM_HD void w4a16_quarter_partial(const QLinearArgs& a, const uint32_t (&w)[4], int64_t n, int64_t g0, int lane,
                                 float (&acc)[MB]) {
  const int64_t G = (a.K + kI4Group - 1) / kI4Group, chunks = (a.K + kI4Chunk - 1) / kI4Chunk;
  const int q = lane % 4;
  const int64_t g = g0 + lane / 4, c = 2 * g + q / 2;
  if (g >= G || c >= chunks) return;
  const float s = a.w_scales[n * G + g];
  const int64_t half = 16 * (q % 2), k0 = c * kI4Chunk + half;
  float lo[16], hi[16];
NM_UNROLL
  for (int j = 0; j < 16; ++j) {
    const uint32_t b = (w[j / 4] >> (8 * (j % 4))) & 0xffu;
    lo[j] = s * nibble_minus_8(b & 0x0fu);
    hi[j] = s * nibble_minus_8(b >> 4);
  }
  const int64_t left = a.K - k0;  // elements of this lane's run (and, 32 on, of the high run) inside K
NM_UNROLL
  for (int m = 0; m < MB; ++m) {
    if (m >= a.M) break;
    const float* xr = x_row(a, m) + k0;
#if defined(__CUDA_ARCH__)
    if (left >= 48 && ((uintptr_t)xr & 15u) == 0) {  // 16-byte loads, the same order
      const float4* x4 = reinterpret_cast<const float4*>(xr);
NM_UNROLL
      for (int j = 0; j < 4; ++j) {
        const float4 v = x4[j];
        acc[m] = fmaf(lo[4 * j], v.x, acc[m]), acc[m] = fmaf(lo[4 * j + 1], v.y, acc[m]);
        acc[m] = fmaf(lo[4 * j + 2], v.z, acc[m]), acc[m] = fmaf(lo[4 * j + 3], v.w, acc[m]);
      }
NM_UNROLL
      for (int j = 0; j < 4; ++j) {
        const float4 v = x4[8 + j];
        acc[m] = fmaf(hi[4 * j], v.x, acc[m]), acc[m] = fmaf(hi[4 * j + 1], v.y, acc[m]);
        acc[m] = fmaf(hi[4 * j + 2], v.z, acc[m]), acc[m] = fmaf(hi[4 * j + 3], v.w, acc[m]);
      }
      continue;
    }
#endif
NM_UNROLL
    for (int j = 0; j < 16; ++j)
      if (j < left) acc[m] = fmaf(lo[j], xr[j], acc[m]);
NM_UNROLL
    for (int j = 0; j < 16; ++j)
      if (32 + j < left) acc[m] = fmaf(hi[j], xr[32 + j], acc[m]);
  }
}

NM_HD void w4a16_store(const QLinearArgs& a, int64_t m, int64_t n, float sum) {
  a.y[m * a.y_stride + n] = sum + bias_value(a.bias, a.bias_dtype, n);
}

}  // namespace nm::cuda
