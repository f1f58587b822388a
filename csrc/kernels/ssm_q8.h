// Int8-activation forms of the SSM kernels (Quamba's quantized conv1d and
// scans, arXiv:2410.13229 §4, Quamba2 arXiv:2503.22879 §4.1): the tensors
// that flow between the mixer's kernels are int8 with static scales, the
// recurrence and every accumulation stay float32.
//
// Quantization, per channel c of a token row (scale s[c] > 0, its inverse
// taken in float32 as qlinear does):
//   q = clamp(nearbyint(x · (1 / s[c])), -127, 127)      (round half to even)
//   x̂ = q · s[c]                                          (float32, exact)
// A NaN quantizes to 0 (a NaN in the mixer also reaches the output through
// the float gate z, which these kernels leave in float32).
//
// Semantics, given the float kernels' (conv1d.h, selective_scan.h, ssd.h):
//   causal_conv1d_q8:  out_q = quantize(conv(x̂) [+ SiLU], out_scale)
//                      the conv state holds the dequantized inputs x̂.
//   selective_scan_q8 / selective_state_update_q8 / ssd_chunk_scan_q8:
//                      the float kernel on û, B̂, Ĉ (x̂ for Mamba-2), with
//                      delta / dt, z, A, D, biases and states as given.
// Scales are per channel so that one interface serves a per-tensor scale
// (all equal), per-state-group scales of B / C (Quamba2 §4.1: equal within
// a group's dstate values) and the per-(head group, channel range) x scales
// of sort-and-cluster.
//
// The numerics are exactly the quantized semantics above, bit for bit the
// float kernels' on the dequantized inputs. The conv (prefill and decode)
// and the scan and decode update read their int8 inputs directly (each
// value dequantized in registers as it is loaded, the conv's outputs
// quantized as they are stored: no float copy of the activations in
// memory); B and C of the scan and update, and the SSD, dequantize into
// float32 scratch first (a few values per token).
#pragma once
#include <cstdint>

#include "kernels/conv1d.h"
#include "kernels/selective_scan.h"
#include "kernels/ssd.h"

namespace nm {

// q[r, c] = quantize(x[r, c], scale[c]) for rows × channels (strides in elements).
void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                            int8_t* q, int64_t q_stride);
// x[r, c] = q[r, c] · scale[c].
void dequantize_channels_int8(int64_t rows, int64_t channels, const int8_t* q, int64_t q_stride, const float* scale,
                              float* x, int64_t x_stride);

// The conv's int8 input xq (scale x_scale [channels]) and output outq
// (quantized with out_scale [channels]), rows `*_stride` elements apart.
struct ConvInt8Io {
  const int8_t* xq = nullptr;
  int64_t xq_stride = 0;
  const float* x_scale = nullptr;
  int8_t* outq = nullptr;
  int64_t outq_stride = 0;
  const float* out_scale = nullptr;
};

// `conv` as for causal_conv1d / causal_conv1d_update, except that conv.x and
// conv.out are ignored: the input and output are io's. States are float32
// (dequantized inputs).
struct CausalConv1dQ8Args {
  CausalConv1dArgs conv;
  ConvInt8Io io;
};
void causal_conv1d_q8(const CausalConv1dQ8Args& a);

struct CausalConv1dUpdateQ8Args {
  CausalConv1dUpdateArgs conv;
  ConvInt8Io io;
};
void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a);

// An int8 activation operand of the scans: values q with element strides
// per batch row and per token (whichever the kernel's layout has) and one
// scale per channel of a token's row.
struct Int8Operand {
  const int8_t* q = nullptr;
  int64_t batch_stride = 0, token_stride = 0;
  const float* scale = nullptr;
};

// `scan` as for selective_scan, except that scan.u, scan.B and scan.C are
// replaced by u (scale [dim]), B and C (scales [ngroups * dstate]), with
// batch and token strides.
struct SelectiveScanQ8Args {
  SelectiveScanArgs scan;
  Int8Operand u, B, C;
};
void selective_scan_q8(const SelectiveScanQ8Args& a);

// `upd` as for selective_state_update, with upd.x, upd.B, upd.C replaced by
// x (scale [nheads * headdim]), B and C (scales [ngroups * dstate]); batch
// strides only.
struct SelectiveStateUpdateQ8Args {
  SelectiveStateUpdateArgs upd;
  Int8Operand x, B, C;
};
void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a);

// `ssd` as for ssd_chunk_scan, with ssd.x, ssd.B, ssd.C replaced by x
// (scale [nheads * headdim]), B and C (scales [ngroups * dstate]); token
// strides only.
struct SsdChunkScanQ8Args {
  SsdChunkScanArgs ssd;
  Int8Operand x, B, C;
};
void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a);

}  // namespace nm
