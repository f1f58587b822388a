// Per-level bodies of the causal conv1d kernels (see conv1d.h for semantics
// and kernels/simd/README.md for how this file is compiled).
//
// Vectorised across channels (contiguous in x / out): a vector of VF::W
// channels slides along the tokens with the last W-1 inputs held in
// registers, so each input is loaded once and each weight once per tile.
// Weights [channels, width] and the conv states [.., channels, W-1] are
// channel-strided; they are gathered / scattered through small stack buffers
// once per tile.
#include <type_traits>

#include "kernels/conv1d.h"
#include "kernels/ssm_q8.h"

namespace nm {
namespace NM_ISA {

// v[lane] = p[lane * stride] for lane < n, 0 beyond.
static inline VF conv_gather(const float* p, int64_t stride, int n) {
  float tmp[VF::W];
  for (int l = 0; l < VF::W; ++l) tmp[l] = l < n ? p[l * stride] : 0.0f;
  return VF::load(tmp);
}

// p[lane * stride] = v[lane] for lane < n.
static inline void conv_scatter(VF v, float* p, int64_t stride, int n) {
  float tmp[VF::W];
  v.store(tmp);
  for (int l = 0; l < n; ++l) p[l * stride] = tmp[l];
}

// Element (off + lane * stride) of a f32/f16/bf16 buffer for lane < n, 0 beyond.
static inline VF conv_gather_any(const void* p, DType t, int64_t off, int64_t stride, int n) {
  float tmp[VF::W];
  for (int l = n; l < VF::W; ++l) tmp[l] = 0.0f;
  if (t == DType::F32) {
    const float* q = static_cast<const float*>(p) + off;
    for (int l = 0; l < n; ++l) tmp[l] = q[l * stride];
  } else if (t == DType::F16) {
    const uint16_t* q = static_cast<const uint16_t*>(p) + off;
    for (int l = 0; l < n; ++l) tmp[l] = f16_to_f32(q[l * stride]);
  } else {
    const uint16_t* q = static_cast<const uint16_t*>(p) + off;
    for (int l = 0; l < n; ++l) tmp[l] = bf16_to_f32(q[l * stride]);
  }
  return VF::load(tmp);
}

// Contiguous [i, i+n) of a f32/f16/bf16 vector.
static inline VF conv_load_any(const void* p, DType t, int64_t i, int n) {
  if (t == DType::F32) return VF::load_partial(static_cast<const float*>(p) + i, n);
  const uint16_t* h = static_cast<const uint16_t*>(p) + i;
  return t == DType::F16 ? VF::load_f16_partial(h, n) : VF::load_bf16_partial(h, n);
}

// Tokens [t0, t1) (relative to the sequence start) of sequence `s`, channels
// [c0, c1), for a compile-time width K. Q8 (causal_conv1d_q8): the inputs
// are io->xq dequantized as they are loaded, the outputs quantized with
// out_inv = 1 / io->out_scale as they are stored (a.x / a.out unused), so the
// result is that of the dequantize, float conv and quantize passes, with no
// float copy of either in memory.
template <int K, bool Q8>
static void conv_prefill_tile(const CausalConv1dArgs& a, const ConvInt8Io* io, const float* out_inv, int64_t s,
                              int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
  const int64_t base = a.cu_seqlens ? a.cu_seqlens[s] : 0;
  const int64_t len = a.cu_seqlens ? a.cu_seqlens[s + 1] - base : a.tokens;
  const float* x = Q8 ? nullptr : a.x + base * a.x_stride;
  float* out = Q8 ? nullptr : a.out + base * a.out_stride;
  const int8_t* xq = Q8 ? io->xq + base * io->xq_stride : nullptr;
  int8_t* oq = Q8 ? io->outq + base * io->outq_stride : nullptr;
  const int64_t xs = Q8 ? io->xq_stride : a.x_stride, os = Q8 ? io->outq_stride : a.out_stride;
  const float* init = a.initial_state ? a.initial_state + s * a.init_seq_stride : nullptr;
  const bool silu = a.silu;
  for (int64_t c = c0; c < c1; c += VF::W) {
    const int n = (int)(c1 - c < VF::W ? c1 - c : VF::W);
    VF w[K];
    for (int k = 0; k < K; ++k) w[k] = conv_gather_any(a.weight, a.weight_dtype, c * a.weight_stride + k, a.weight_stride, n);
    const VF b = a.bias ? conv_load_any(a.bias, a.bias_dtype, c, n) : VF::zero();
    VF in_scale = VF::zero(), inv = VF::zero();
    if constexpr (Q8) {
      in_scale = VF::load_partial(io->x_scale + c, n);
      inv = VF::load_partial(out_inv + c, n);
    }
    // Token p's input on channels [c, c + nn) (nn: n, or VF::W known at compile time).
    auto input = [&](int64_t p, int nn) -> VF {
      if constexpr (Q8) return vload_i8(xq + p * xs + c, nn) * in_scale;  // x̂ = q · s, exact as the dequantize pass
      else return nn == VF::W ? VF::load(x + p * xs + c) : VF::load_partial(x + p * xs + c, nn);
    };
    auto output = [&](int64_t t, VF v, int nn) {
      if constexpr (Q8) vstore_i8(oq + t * os + c, v * inv, nn);  // the quantize pass's q(v · (1 / s))
      else if (nn == VF::W) v.store(out + t * os + c);
      else v.store_partial(out + t * os + c, nn);
    };
    // h[j] = in(t - (K-1) + j) for the current token t (starting at t0).
    VF h[K];
    for (int j = 0; j < K - 1; ++j) {
      const int64_t p = t0 - (K - 1) + j;
      if (p >= 0) h[j] = input(p, n);
      else if (init) h[j] = conv_gather(init + c * a.init_ch_stride + (K - 1 + p), a.init_ch_stride, n);
      else h[j] = VF::zero();
    }
    // (x / out may be null for an empty sequence: no token is read or written)
    auto tokens = [&](auto nn) {
      for (int64_t t = t0; t < t1; ++t) {
        const VF xt = input(t, nn);
        VF acc = fmadd(w[K - 1], xt, b);
        for (int k = 0; k < K - 1; ++k) acc = fmadd(w[k], h[k], acc);
        for (int k = 0; k + 1 < K - 1; ++k) h[k] = h[k + 1];
        if (K > 1) h[K - 2] = xt;
        if (silu) acc = vsilu(acc);
        output(t, acc, nn);
      }
    };
    if (n == VF::W) tokens(std::integral_constant<int, VF::W>{});
    else tokens(n);
    // After the last token h holds in(len - (K-1) + j): the final state.
    if (t1 == len && a.final_state) {
      float* fs = a.final_state + s * a.final_seq_stride + c * a.final_ch_stride;
      for (int j = 0; j < K - 1; ++j) conv_scatter(h[j], fs + j, a.final_ch_stride, n);
    }
  }
}

// The state of n channels laid out back to back (state_ch_stride == K - 1:
// n·(K-1) consecutive floats) moves by one tap as a whole block: new[p] =
// old[p + 1], except each channel's last tap, which takes x. So the block is
// copied down by one float in vector loads and stores (each load reads only
// floats that no earlier store of this loop wrote), then x is written at
// every (K-1)-th position.
template <int K>
static inline void conv_shift_contiguous(float* st, const float* x, int n) {
  const int total = n * (K - 1);
  for (int v = 0; v < total; v += VF::W) {
    const int m = total - v < VF::W ? total - v : VF::W;
    // the block's last float has no successor in the block: it is a last tap
    VF::load_partial(st + v + 1, v + m == total ? m - 1 : m).store_partial(st + v, m);
  }
  for (int l = 0; l < n; ++l) st[l * (K - 1) + (K - 2)] = x[l];
}

#if defined(__AVX512F__)
// Width 4 in the engine's layout at AVX-512, 16 channels at a time: their 4
// weights (64 floats) and 3 state taps (48 floats) are contiguous, so they
// are loaded whole and deinterleaved with permutes (vgatherdps reads its 16
// elements one by one: the 8-sequence decode step spent ~5% in the gathers),
// and the shifted state is interleaved back the same way. Same arithmetic as
// the general tile below.
struct Conv4x16 {
  // Lane i of permutex2var(a, idx, b) is element idx[i] of a | b (bit 4: b).
  static __m512i idx(const int32_t* v) { return _mm512_loadu_si512((const void*)v); }
  // Tap k (0..3) of 16 channels' weights w[16 · 4].
  static void weights(const float* w, __m512 out[4]) {
    alignas(64) static const int32_t sel[4][16] = {
        {0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0},
        {2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0}, {3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0}};
    const __m512 a = _mm512_loadu_ps(w), b = _mm512_loadu_ps(w + 16), c = _mm512_loadu_ps(w + 32), d = _mm512_loadu_ps(w + 48);
    for (int k = 0; k < 4; ++k) {
      const __m512 lo = _mm512_permutex2var_ps(a, idx(sel[k]), b), hi = _mm512_permutex2var_ps(c, idx(sel[k]), d);
      out[k] = _mm512_shuffle_f32x4(lo, hi, 0x44);  // lo's lanes 0..7, then hi's
    }
  }
  // Taps 0..2 of 16 channels' state st[16 · 3] (element 3i + j).
  static void taps(const float* st, __m512 v[3], __m512 h[3]) {
    alignas(64) static const int32_t first[3][16] = {
        {0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0, 0, 0, 0, 0},
        {1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 0, 0, 0, 0, 0},
        {2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0, 0, 0, 0, 0, 0}};
    alignas(64) static const int32_t second[3][16] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 20, 23, 26, 29},
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 21, 24, 27, 30},
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19, 22, 25, 28, 31}};
    v[0] = _mm512_loadu_ps(st); v[1] = _mm512_loadu_ps(st + 16); v[2] = _mm512_loadu_ps(st + 32);
    for (int j = 0; j < 3; ++j)
      h[j] = _mm512_permutex2var_ps(_mm512_permutex2var_ps(v[0], idx(first[j]), v[1]), idx(second[j]), v[2]);
  }
  // st[3i + j] = old[3i + j + 1] for j < 2, x[i] for j = 2.
  static void shift(float* st, const __m512 v[3], __m512 x) {
    alignas(64) static const int32_t next[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    alignas(64) static const int32_t xi[3][16] = {
        {0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0},
        {0, 5, 0, 0, 6, 0, 0, 7, 0, 0, 8, 0, 0, 9, 0, 0},
        {10, 0, 0, 11, 0, 0, 12, 0, 0, 13, 0, 0, 14, 0, 0, 15}};
    const __mmask16 xm[3] = {0x4924, 0x2492, 0x9249};  // lanes l with (16q + l) % 3 == 2
    for (int q = 0; q < 3; ++q) {
      const __m512 o = _mm512_permutex2var_ps(v[q], idx(next), v[q < 2 ? q + 1 : 2]);
      _mm512_storeu_ps(st + 16 * q, _mm512_mask_permutexvar_ps(o, xm[q], idx(xi[q]), x));
    }
  }
};
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// The same at AVX2, 8 channels at a time: their 4 weights (32 floats) and 3
// state taps (24 floats) are loaded whole and deinterleaved with blends and
// vpermps (the general tile's vgatherdps reads its 8 elements one by one),
// and the shifted state is written back the same way. Same arithmetic as the
// general tile below.
struct Conv4x8 {
  static __m256i idx(const int32_t* v) { return _mm256_loadu_si256((const __m256i*)v); }
  // Tap k (0..3) of 8 channels' weights w[8 · 4]: a 4x8 transpose.
  static void weights(const float* w, __m256 out[4]) {
    const __m256 a = _mm256_loadu_ps(w), b = _mm256_loadu_ps(w + 8), c = _mm256_loadu_ps(w + 16),
                 d = _mm256_loadu_ps(w + 24);
    // ab_lo = [c0t0 c2t0 c0t1 c2t1 | c1t0 c3t0 c1t1 c3t1], ab_hi the same for t2, t3
    const __m256 ab_lo = _mm256_unpacklo_ps(a, b), ab_hi = _mm256_unpackhi_ps(a, b);
    const __m256 cd_lo = _mm256_unpacklo_ps(c, d), cd_hi = _mm256_unpackhi_ps(c, d);
    // tap t: [c0 c2 c4 c6 | c1 c3 c5 c7], put in channel order by vpermps
    alignas(32) static const int32_t order[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const __m256i o = idx(order);
    auto lo64 = [](__m256 x, __m256 y) {
      return _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)));
    };
    auto hi64 = [](__m256 x, __m256 y) {
      return _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(x), _mm256_castps_pd(y)));
    };
    out[0] = _mm256_permutevar8x32_ps(lo64(ab_lo, cd_lo), o);
    out[1] = _mm256_permutevar8x32_ps(hi64(ab_lo, cd_lo), o);
    out[2] = _mm256_permutevar8x32_ps(lo64(ab_hi, cd_hi), o);
    out[3] = _mm256_permutevar8x32_ps(hi64(ab_hi, cd_hi), o);
  }
  // Taps 0..2 of 8 channels' state st[8 · 3] (element 3i + j): element 3i + j
  // is lane (3i + j) % 8 of v[(3i + j) / 8]; tap j's lanes are blended from
  // v[0..2] where they sit, then put in channel order by vpermps.
  static void taps(const float* st, __m256 v[3], __m256 h[3]) {
    alignas(32) static const int32_t order[3][8] = {{0, 3, 6, 1, 4, 7, 2, 5}, {1, 4, 7, 2, 5, 0, 3, 6}, {2, 5, 0, 3, 6, 1, 4, 7}};
    v[0] = _mm256_loadu_ps(st); v[1] = _mm256_loadu_ps(st + 8); v[2] = _mm256_loadu_ps(st + 16);
    // lanes of v[1] (first blend) and of v[2] (second) that hold tap j
    h[0] = _mm256_blend_ps(_mm256_blend_ps(v[0], v[1], 0x92), v[2], 0x24);
    h[1] = _mm256_blend_ps(_mm256_blend_ps(v[0], v[1], 0x24), v[2], 0x49);
    h[2] = _mm256_blend_ps(_mm256_blend_ps(v[0], v[1], 0x49), v[2], 0x92);
    for (int j = 0; j < 3; ++j) h[j] = _mm256_permutevar8x32_ps(h[j], idx(order[j]));
  }
  // st[3i + j] = old[3i + j + 1] for j < 2, x[i] for j = 2: the block moves
  // down by one float (v[q] and v[q + 1] combined), then x goes to every
  // third position.
  static void shift(float* st, const __m256 v[3], __m256 x) {
    alignas(32) static const int32_t next[8] = {1, 2, 3, 4, 5, 6, 7, 0};
    alignas(32) static const int32_t xi[3][8] = {{0, 0, 0, 0, 0, 1, 0, 0}, {2, 0, 0, 3, 0, 0, 4, 0}, {0, 5, 0, 0, 6, 0, 0, 7}};
    const __m256i nx = idx(next);
    const __m256 r0 = _mm256_permutevar8x32_ps(v[0], nx), r1 = _mm256_permutevar8x32_ps(v[1], nx),
                 r2 = _mm256_permutevar8x32_ps(v[2], nx);
    // lane 7 of each rotated vector takes the next vector's first float
    const __m256 o[3] = {_mm256_blend_ps(r0, r1, 0x80), _mm256_blend_ps(r1, r2, 0x80), r2};
    for (int q = 0; q < 3; ++q) {
      const __m256 xs = _mm256_permutevar8x32_ps(x, idx(xi[q]));
      __m256 w = o[q];
      switch (q) {  // lanes l with (8q + l) % 3 == 2 (blend masks are immediates)
        case 0: w = _mm256_blend_ps(w, xs, 0x24); break;
        case 1: w = _mm256_blend_ps(w, xs, 0x49); break;
        default: w = _mm256_blend_ps(w, xs, 0x92); break;
      }
      _mm256_storeu_ps(st + 8 * q, w);
    }
  }
};
#endif

// Width 4 in the engine's layout, one vector of channels at a time (the update tile below).
#if defined(__AVX512F__)
using Conv4Block = Conv4x16;
#elif defined(__AVX2__)
using Conv4Block = Conv4x8;
#endif

// Rows [r0, r1), channels [c0, c1): weights and bias are gathered once per
// vector of channels and reused for every row. Q8 (io, out_inv: see
// conv_prefill_tile): each input dequantized as it is loaded (the state
// keeps x̂), each output quantized as it is stored.
template <int K, bool Q8>
static void conv_update_tile(const CausalConv1dUpdateArgs& a, const ConvInt8Io* io, const float* out_inv, int64_t r0,
                             int64_t r1, int64_t c0, int64_t c1) {
  const int64_t cs = a.state_ch_stride;
  // The engine's layout (f32 weights, channel-contiguous taps) is read with
  // hardware gathers and shifted as a block; any other layout element by
  // element through small buffers.
  const bool contiguous = K > 1 && cs == K - 1 && a.weight_dtype == DType::F32 && a.weight_stride <= 64;
  for (int64_t c = c0; c < c1; c += VF::W) {
    const int n = (int)(c1 - c < VF::W ? c1 - c : VF::W);
    VF in_scale = VF::zero(), inv = VF::zero();
    if constexpr (Q8) {
      in_scale = VF::load_partial(io->x_scale + c, n);
      inv = VF::load_partial(out_inv + c, n);
    }
    // Row r's input on channels [c, c + n), and its output.
    auto input = [&](int64_t r) -> VF {
      if constexpr (Q8) return vload_i8(io->xq + r * io->xq_stride + c, n) * in_scale;  // x̂ = q · s
      else return n == VF::W ? VF::load(a.x + r * a.x_stride + c) : VF::load_partial(a.x + r * a.x_stride + c, n);
    };
    auto output = [&](int64_t r, VF v) {
      if constexpr (Q8) vstore_i8(io->outq + r * io->outq_stride + c, v * inv, n);  // q(v · (1 / s))
      else if (n == VF::W) v.store(a.out + r * a.out_stride + c);
      else v.store_partial(a.out + r * a.out_stride + c, n);
    };
#if defined(__AVX512F__) || defined(__AVX2__)
    if constexpr (K == 4) {
      if (contiguous && n == VF::W && a.weight_stride == 4) {
        using R = decltype(VF::zero().v);
        R w4[4];
        Conv4Block::weights(static_cast<const float*>(a.weight) + c * 4, w4);
        const VF b = a.bias ? conv_load_any(a.bias, a.bias_dtype, c, n) : VF::zero();
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t slot = a.state_indices ? a.state_indices[r] : r;
          float* st = a.conv_state + slot * a.state_slot_stride + c * 3;
          const VF xt = input(r);
          R v[3], h[3];
          Conv4Block::taps(st, v, h);
          VF acc = fmadd(VF{w4[3]}, xt, b);
          for (int j = 0; j < 3; ++j) acc = fmadd(VF{w4[j]}, VF{h[j]}, acc);
          Conv4Block::shift(st, v, xt.v);
          if (a.silu) acc = vsilu(acc);
          output(r, acc);
        }
        continue;
      }
    }
#endif
    VF w[K];
    if (contiguous) {
      const float* wp = static_cast<const float*>(a.weight) + c * a.weight_stride;
      for (int k = 0; k < K; ++k) w[k] = VF::gather_partial(wp + k, (int)a.weight_stride, n);
    } else {
      for (int k = 0; k < K; ++k) w[k] = conv_gather_any(a.weight, a.weight_dtype, c * a.weight_stride + k, a.weight_stride, n);
    }
    const VF b = a.bias ? conv_load_any(a.bias, a.bias_dtype, c, n) : VF::zero();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t slot = a.state_indices ? a.state_indices[r] : r;
      float* st = a.conv_state + slot * a.state_slot_stride + c * cs;
      const VF xt = input(r);
      VF acc = fmadd(w[K - 1], xt, b);
      VF h[K];
      for (int j = 0; j < K - 1; ++j) {
        h[j] = contiguous ? VF::gather_partial(st + j, K - 1, n) : conv_gather(st + j, cs, n);
        acc = fmadd(w[j], h[j], acc);
      }
      // New state: drop the oldest, append x.
      if (contiguous) {
        float xs[VF::W];
        xt.store(xs);
        conv_shift_contiguous<K>(st, xs, n);
      } else {
        for (int j = 0; j + 1 < K - 1; ++j) conv_scatter(h[j + 1], st + j, cs, n);
        if (K > 1) conv_scatter(xt, st + (K - 2), cs, n);
      }
      if (a.silu) acc = vsilu(acc);
      output(r, acc);
    }
  }
}

template <int K>
static void conv_update_tile_f32(const CausalConv1dUpdateArgs& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  conv_update_tile<K, false>(a, nullptr, nullptr, r0, r1, c0, c1);
}
template <int K>
static void conv_update_tile_q8(const CausalConv1dUpdateArgs& a, const ConvInt8Io& io, const float* out_inv, int64_t r0,
                                int64_t r1, int64_t c0, int64_t c1) {
  conv_update_tile<K, true>(a, &io, out_inv, r0, r1, c0, c1);
}

template <int K>
static void conv_prefill_tile_f32(const CausalConv1dArgs& a, int64_t s, int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
  conv_prefill_tile<K, false>(a, nullptr, nullptr, s, t0, t1, c0, c1);
}
template <int K>
static void conv_prefill_tile_q8(const CausalConv1dArgs& a, const ConvInt8Io& io, const float* out_inv, int64_t s,
                                 int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
  conv_prefill_tile<K, true>(a, &io, out_inv, s, t0, t1, c0, c1);
}

static_assert(kConv1dMaxWidth == 8, "extend the width switch below");

#define NM_CONV1D_WIDTH_SWITCH(fn, ...)      \
  switch (a.width) {                         \
    case 1: fn<1>(__VA_ARGS__); break;       \
    case 2: fn<2>(__VA_ARGS__); break;       \
    case 3: fn<3>(__VA_ARGS__); break;       \
    case 4: fn<4>(__VA_ARGS__); break;       \
    case 5: fn<5>(__VA_ARGS__); break;       \
    case 6: fn<6>(__VA_ARGS__); break;       \
    case 7: fn<7>(__VA_ARGS__); break;       \
    case 8: fn<8>(__VA_ARGS__); break;       \
    default: break;                          \
  }

void causal_conv1d_tile(const CausalConv1dArgs& a, int64_t s, int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
  NM_CONV1D_WIDTH_SWITCH(conv_prefill_tile_f32, a, s, t0, t1, c0, c1)
}

void causal_conv1d_q8_tile(const CausalConv1dArgs& a, const ConvInt8Io& io, const float* out_inv, int64_t s, int64_t t0,
                           int64_t t1, int64_t c0, int64_t c1) {
  NM_CONV1D_WIDTH_SWITCH(conv_prefill_tile_q8, a, io, out_inv, s, t0, t1, c0, c1)
}

void causal_conv1d_update_tile(const CausalConv1dUpdateArgs& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  NM_CONV1D_WIDTH_SWITCH(conv_update_tile_f32, a, r0, r1, c0, c1)
}

void causal_conv1d_update_q8_tile(const CausalConv1dUpdateArgs& a, const ConvInt8Io& io, const float* out_inv, int64_t r0,
                                  int64_t r1, int64_t c0, int64_t c1) {
  NM_CONV1D_WIDTH_SWITCH(conv_update_tile_q8, a, io, out_inv, r0, r1, c0, c1)
}

#undef NM_CONV1D_WIDTH_SWITCH

}  // namespace NM_ISA
}  // namespace nm
