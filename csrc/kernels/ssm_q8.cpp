// Int8-activation SSM kernels: dequantize, run the float kernel, requantize
// (see ssm_q8.h).
#include "kernels/ssm_q8.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "cpu/threadpool.h"

namespace nm {

namespace {

// Rows per parallel task of the (de)quantization passes.
int64_t row_grain(int64_t channels) { return channels > 0 ? std::max<int64_t>(1, 16384 / channels) : 1; }

std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[(size_t)(n > 0 ? n : 1)]); }

// [batch, seqlen, width] dense float copy of an int8 tensor with batch / token strides.
std::unique_ptr<float[]> dequantize_3d(int64_t batch, int64_t seqlen, int64_t width, const int8_t* q, int64_t qb,
                                       int64_t qt, const float* scale) {
  auto out = scratch(batch * seqlen * width);
  for (int64_t b = 0; b < batch; ++b)
    dequantize_channels_int8(seqlen, width, q + b * qb, qt, scale, out.get() + b * seqlen * width, width);
  return out;
}

}  // namespace

void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                            int8_t* q, int64_t q_stride) {
  if (rows <= 0 || channels <= 0) return;
  std::unique_ptr<float[]> inv = scratch(channels);
  for (int64_t c = 0; c < channels; ++c) inv[c] = 1.0f / scale[c];
  const float* iv = inv.get();
  cpu::parallel_for(rows, row_grain(channels), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * x_stride;
      int8_t* qr = q + r * q_stride;
      for (int64_t c = 0; c < channels; ++c) {
        const float v = std::nearbyint(xr[c] * iv[c]);
        qr[c] = v != v ? 0 : (int8_t)std::fmin(127.0f, std::fmax(-127.0f, v));
      }
    }
  });
}

void dequantize_channels_int8(int64_t rows, int64_t channels, const int8_t* q, int64_t q_stride, const float* scale,
                              float* x, int64_t x_stride) {
  if (rows <= 0 || channels <= 0) return;
  cpu::parallel_for(rows, row_grain(channels), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int8_t* qr = q + r * q_stride;
      float* xr = x + r * x_stride;
      for (int64_t c = 0; c < channels; ++c) xr[c] = (float)qr[c] * scale[c];
    }
  });
}

void causal_conv1d_q8(const CausalConv1dQ8Args& a) {
  const int64_t T = a.conv.tokens, C = a.conv.channels;
  auto x = scratch(T * C), out = scratch(T * C);
  dequantize_channels_int8(T, C, a.xq, a.xq_stride, a.x_scale, x.get(), C);
  CausalConv1dArgs cv = a.conv;
  cv.x = x.get(); cv.x_stride = C;
  cv.out = out.get(); cv.out_stride = C;
  causal_conv1d(cv);
  quantize_channels_int8(T, C, out.get(), C, a.out_scale, a.outq, a.outq_stride);
}

void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) {
  const int64_t B = a.conv.batch, C = a.conv.channels;
  auto x = scratch(B * C);
  dequantize_channels_int8(B, C, a.xq, a.xq_stride, a.x_scale, x.get(), C);
  CausalConv1dUpdateArgs cv = a.conv;
  cv.x = x.get(); cv.x_stride = C;
  cv.out = x.get(); cv.out_stride = C;  // in place (allowed: same stride)
  causal_conv1d_update(cv);
  quantize_channels_int8(B, C, x.get(), C, a.out_scale, a.outq, a.outq_stride);
}

void selective_scan_q8(const SelectiveScanQ8Args& a) {
  const SelectiveScanArgs& f = a.scan;
  const int64_t Bt = f.batch, L = f.seqlen, D = f.dim, GN = f.ngroups * f.dstate;
  auto u = dequantize_3d(Bt, L, D, a.uq, a.uq_batch_stride, a.uq_token_stride, a.u_scale);
  auto Bm = dequantize_3d(Bt, L, GN, a.Bq, a.Bq_batch_stride, a.Bq_token_stride, a.B_scale);
  auto Cm = dequantize_3d(Bt, L, GN, a.Cq, a.Cq_batch_stride, a.Cq_token_stride, a.C_scale);
  SelectiveScanArgs s = f;
  s.u = u.get(); s.u_batch_stride = L * D; s.u_token_stride = D;
  s.B = Bm.get(); s.B_batch_stride = L * GN; s.B_token_stride = GN;
  s.C = Cm.get(); s.C_batch_stride = L * GN; s.C_token_stride = GN;
  selective_scan(s);
}

void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) {
  const SelectiveStateUpdateArgs& f = a.upd;
  const int64_t Bt = f.batch, R = f.nheads * f.headdim, GN = f.ngroups * f.dstate;
  auto x = scratch(Bt * R), Bm = scratch(Bt * GN), Cm = scratch(Bt * GN);
  dequantize_channels_int8(Bt, R, a.xq, a.xq_batch_stride, a.x_scale, x.get(), R);
  dequantize_channels_int8(Bt, GN, a.Bq, a.Bq_batch_stride, a.B_scale, Bm.get(), GN);
  dequantize_channels_int8(Bt, GN, a.Cq, a.Cq_batch_stride, a.C_scale, Cm.get(), GN);
  SelectiveStateUpdateArgs s = f;
  s.x = x.get(); s.x_batch_stride = R;
  s.B = Bm.get(); s.B_batch_stride = GN;
  s.C = Cm.get(); s.C_batch_stride = GN;
  selective_state_update(s);
}

void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) {
  const SsdChunkScanArgs& f = a.ssd;
  const int64_t T = f.tokens, R = f.nheads * f.headdim, GN = f.ngroups * f.dstate;
  auto x = scratch(T * R), Bm = scratch(T * GN), Cm = scratch(T * GN);
  dequantize_channels_int8(T, R, a.xq, a.xq_stride, a.x_scale, x.get(), R);
  dequantize_channels_int8(T, GN, a.Bq, a.Bq_stride, a.B_scale, Bm.get(), GN);
  dequantize_channels_int8(T, GN, a.Cq, a.Cq_stride, a.C_scale, Cm.get(), GN);
  SsdChunkScanArgs s = f;
  s.x = x.get(); s.x_stride = R;
  s.B = Bm.get(); s.B_stride = GN;
  s.C = Cm.get(); s.C_stride = GN;
  ssd_chunk_scan(s);
}

}  // namespace nm
