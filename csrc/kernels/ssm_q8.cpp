// Int8-activation SSM kernels (see ssm_q8.h): the per-channel (de)quantization
// passes, and the SSD's int8 form (its inputs dequantized into scratch, then
// the float kernel). The conv, scan and decode update read int8 directly, in
// conv1d.cpp and selective_scan.cpp.
#include "kernels/ssm_q8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/threadpool.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nm {

namespace {

// Rows per parallel task of the (de)quantization passes.
int64_t row_grain(int64_t channels) { return channels > 0 ? std::max<int64_t>(1, 16384 / channels) : 1; }

// Scratch of the calling thread, reused across calls (a fresh multi-MB
// buffer per call costs page faults and the kernel's zeroing); `slot` keeps
// the buffers one call needs apart.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[4];
  std::vector<float>& b = bufs[slot];
  if ((int64_t)b.size() < n) b.resize((size_t)n);
  return b.data();
}

// [batch, tokens, width] dense float copy of an int8 operand.
float* dequantize(int slot, const Int8Operand& o, int64_t batch, int64_t tokens, int64_t width) {
  float* out = scratch(slot, batch * tokens * width);
  for (int64_t b = 0; b < batch; ++b)
    dequantize_channels_int8(tokens, width, o.q + b * o.batch_stride, o.token_stride, o.scale,
                             out + b * tokens * width, width);
  return out;
}

// q[c] = clamp(round_half_even(x[c] · inv[c]), ±127), NaN -> 0. SSE2 (every
// x86-64) four at a time: cvtps2dq rounds half to even in the default mode;
// elsewhere the portable form (std::nearbyint).
void quantize_row(const float* x, const float* inv, int64_t C, int8_t* q) {
  int64_t c = 0;
#if defined(__SSE2__)
  const __m128 lo = _mm_set1_ps(-127.0f), hi = _mm_set1_ps(127.0f);
  for (; c + 4 <= C; c += 4) {
    __m128 v = _mm_mul_ps(_mm_loadu_ps(x + c), _mm_loadu_ps(inv + c));
    v = _mm_and_ps(v, _mm_cmpord_ps(v, v));  // NaN -> 0
    const __m128i i = _mm_cvtps_epi32(_mm_min_ps(_mm_max_ps(v, lo), hi));
    const __m128i w = _mm_packs_epi32(i, i);
    const int32_t b = _mm_cvtsi128_si32(_mm_packs_epi16(w, w));
    std::memcpy(q + c, &b, 4);
  }
#endif
  for (; c < C; ++c) {
    const float v = std::nearbyint(x[c] * inv[c]);
    q[c] = v != v ? 0 : (int8_t)std::fmin(127.0f, std::fmax(-127.0f, v));
  }
}

}  // namespace

void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                            int8_t* q, int64_t q_stride) {
  if (rows <= 0 || channels <= 0) return;
  // (the calling thread's buffer, reused: a decode step quantizes ~4 rows per layer)
  thread_local std::vector<float> inv;
  if ((int64_t)inv.size() < channels) inv.resize((size_t)channels);
  for (int64_t c = 0; c < channels; ++c) inv[(size_t)c] = 1.0f / scale[c];
  const float* iv = inv.data();
  cpu::parallel_for(rows, row_grain(channels), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_row(x + r * x_stride, iv, channels, q + r * q_stride);
  });
}

void dequantize_channels_int8(int64_t rows, int64_t channels, const int8_t* q, int64_t q_stride, const float* scale,
                              float* x, int64_t x_stride) {
  if (rows <= 0 || channels <= 0) return;
  cpu::parallel_for(rows, row_grain(channels), [=](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int8_t* qr = q + r * q_stride;
      float* xr = x + r * x_stride;
      for (int64_t c = 0; c < channels; ++c) xr[c] = (float)qr[c] * scale[c];
    }
  });
}

void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) {
  const SsdChunkScanArgs& f = a.ssd;
  const int64_t T = f.tokens, R = f.nheads * f.headdim, GN = f.ngroups * f.dstate;
  SsdChunkScanArgs s = f;
  s.x = dequantize(0, a.x, 1, T, R); s.x_stride = R;
  s.B = dequantize(1, a.B, 1, T, GN); s.B_stride = GN;
  s.C = dequantize(2, a.C, 1, T, GN); s.C_stride = GN;
  ssd_chunk_scan(s);
}

}  // namespace nm
