// Argument checks shared by the CUDA launchers (cuda/*.cu) and their host
// emulation (cuda/check): what the CPU twins throw on or would misread.
// kValid: launch; kNothing: valid, nothing to do (the CPU twin returns
// early); kInvalid -> cudaErrorInvalidValue; kUnsupported ->
// cudaErrorNotSupported. Host code only.
#pragma once
#include "kernels/attention.h"
#include "kernels/conv1d.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/moe.h"
#include "kernels/qlinear.h"
#include "kernels/norm.h"
#include "kernels/selective_scan.h"
#include "kernels/ssd.h"
#include "kernels/ssm_q8.h"
#include "math_common.cuh"

namespace nm::cuda {

enum class Check { kValid, kNothing, kInvalid, kUnsupported };

// The Rows layout of any format (panels are the CPU's); tokens are the
// caller's to check (on the device, where the host cannot see them).
inline Check check_args(const EmbeddingArgs& a) {
  if (a.n < 0 || a.dim < 0 || a.rows < 0) return Check::kInvalid;
  if (a.n == 0 || a.dim == 0) return Check::kNothing;
  if (!a.table || !a.tokens || !a.out) return Check::kInvalid;
  if ((a.dtype == DType::Q8_0 || a.dtype == DType::Q4_0) && a.dim % 32 != 0) return Check::kInvalid;
  if (a.dtype == DType::I8 || a.dtype == DType::I4) {
    if (!a.scales) return Check::kInvalid;
    if (a.layout != WeightLayout::Rows) return Check::kUnsupported;
  }
  return Check::kValid;
}

inline Check check_args(const RmsNormArgs& a) {
  if (a.rows < 0 || a.dim < 0) return Check::kInvalid;
  if (a.rows == 0 || a.dim == 0) return Check::kNothing;
  if (!a.x || !a.out || !a.weight) return Check::kInvalid;
  if (!is_plain_float(a.weight_dtype)) return Check::kUnsupported;
  return Check::kValid;
}

inline Check check_args(const GatedRmsNormArgs& a) {
  if (a.rows < 0 || a.dim < 0 || a.group_size <= 0 || a.dim % a.group_size != 0) return Check::kInvalid;
  if (a.rows == 0 || a.dim == 0) return Check::kNothing;
  if (!a.y || !a.out || !a.weight) return Check::kInvalid;
  if (!is_plain_float(a.weight_dtype)) return Check::kUnsupported;
  return Check::kValid;
}

// The convs' checks given whether their activations (float x / out, or the
// int8 forms' io) are there.
inline Check check_conv(const CausalConv1dArgs& a, bool io) {
  if (a.width < 1 || a.width > kConv1dMaxWidth) return Check::kInvalid;
  if (!a.cu_seqlens && a.nseq != 1) return Check::kInvalid;
  if (a.tokens < 0 || a.weight_stride < a.width) return Check::kInvalid;
  if (a.channels <= 0 || a.nseq <= 0) return Check::kNothing;
  if (a.tokens > 0 && !io) return Check::kInvalid;
  if (!a.weight) return Check::kInvalid;
  if (!is_plain_float(a.weight_dtype) || (a.bias && !is_plain_float(a.bias_dtype))) return Check::kUnsupported;
  return Check::kValid;
}

inline Check check_conv_update(const CausalConv1dUpdateArgs& a, bool io) {
  if (a.width < 1 || a.width > kConv1dMaxWidth) return Check::kInvalid;
  if (a.weight_stride < a.width) return Check::kInvalid;
  if (a.channels <= 0 || a.batch <= 0) return Check::kNothing;
  if (!io || !a.weight || (a.width > 1 && !a.conv_state)) return Check::kInvalid;
  if (!is_plain_float(a.weight_dtype) || (a.bias && !is_plain_float(a.bias_dtype))) return Check::kUnsupported;
  return Check::kValid;
}

inline Check check_args(const CausalConv1dArgs& a) { return check_conv(a, a.x && a.out); }
inline Check check_args(const CausalConv1dUpdateArgs& a) { return check_conv_update(a, a.x && a.out); }

// The int8 conv's io (kernels/ssm_q8.h) for `channels`: all four pointers
// and row strides of at least `channels`.
inline bool conv_int8_io_valid(const ConvInt8Io& io, int64_t channels) {
  return io.xq && io.x_scale && io.outq && io.out_scale && io.xq_stride >= channels && io.outq_stride >= channels;
}
inline Check check_args(const CausalConv1dQ8Args& a) {
  return check_conv(a.conv, conv_int8_io_valid(a.io, a.conv.channels));
}
inline Check check_args(const CausalConv1dUpdateQ8Args& a) {
  return check_conv_update(a.conv, conv_int8_io_valid(a.io, a.conv.channels));
}

inline Check check_args(const SelectiveScanArgs& a) {
  if (a.batch <= 0 || a.dim <= 0 || a.dstate <= 0 || a.ngroups <= 0) return Check::kNothing;
  if (a.seqlen < 0 || a.dim % a.ngroups != 0 || a.dstate > kSelectiveScanMaxDstate) return Check::kInvalid;
  if (!a.A || (a.seqlen > 0 && (!a.u || !a.delta || !a.B || !a.C || !a.out))) return Check::kInvalid;
  return Check::kValid;
}

inline Check check_args(const SsdChunkScanArgs& a) {
  if (a.tokens < 0 || a.nheads < 0 || a.headdim < 0 || a.ngroups < 0 || a.dstate < 0 || a.nseq < 0) return Check::kInvalid;
  if (a.nseq == 0 || a.nheads == 0 || a.headdim == 0) return a.tokens == 0 ? Check::kNothing : Check::kInvalid;
  if (a.ngroups == 0 || a.nheads % a.ngroups != 0 || a.dstate < 1 || a.dstate > 256 || a.chunk_size < 1)
    return Check::kInvalid;
  if (!a.cu_seqlens || !a.A || !a.final_states || !(a.dt_min <= a.dt_max)) return Check::kInvalid;
  if (a.tokens > 0) {
    const int64_t dim = a.nheads * a.headdim, bc = a.ngroups * a.dstate;
    if (!a.x || !a.dt || !a.B || !a.C || !a.out) return Check::kInvalid;
    if (a.x_stride < dim || a.dt_stride < a.nheads || a.B_stride < bc || a.C_stride < bc || a.out_stride < dim ||
        (a.z && a.z_stride < dim))
      return Check::kInvalid;
  }
  return Check::kValid;
}

inline Check check_cache(const PagedKvCache& c) {
  if (c.dtype != DType::F32 && c.dtype != DType::F16) return Check::kUnsupported;
  if (c.num_pages < 1 || c.page_size < 1 || c.n_kv_heads < 1 || c.head_dim < 1 || c.head_dim > 256)
    return Check::kInvalid;
  if (!c.k || !c.v || c.head_stride < c.head_dim || c.slot_stride < c.n_kv_heads * c.head_stride ||
      c.page_stride < c.page_size * c.slot_stride)
    return Check::kInvalid;
  return Check::kValid;
}

inline Check check_args(const KvCacheAppendArgs& a) {
  if (a.tokens < 0 || a.nseq < 0) return Check::kInvalid;
  if (a.tokens == 0) return Check::kNothing;
  const Check c = check_cache(a.cache);
  if (c != Check::kValid) return c;
  if (a.nseq < 1 || !a.k || !a.v || !a.cu_seqlens || !a.start_pos || !a.block_table || a.max_pages_per_seq < 1 ||
      a.block_table_stride < a.max_pages_per_seq)
    return Check::kInvalid;
  return Check::kValid;
}

inline Check check_args(const PagedAttentionArgs& a) {
  if (a.tokens < 0 || a.nseq < 0 || a.n_heads < 0) return Check::kInvalid;
  if (a.tokens == 0 || a.n_heads == 0) return Check::kNothing;
  const Check c = check_cache(a.cache);
  if (c != Check::kValid) return c;
  if (a.n_heads % a.cache.n_kv_heads != 0 || a.nseq < 1 || !a.q || !a.out || !a.cu_seqlens_q || !a.kv_lens ||
      !a.block_table || a.max_pages_per_seq < 1 || a.block_table_stride < a.max_pages_per_seq)
    return Check::kInvalid;
  return Check::kValid;
}

inline Check check_args(const RopeArgs& a) {
  if (a.tokens < 0 || a.n_heads < 0) return Check::kInvalid;
  if (a.tokens == 0 || a.n_heads == 0) return Check::kNothing;
  if (!a.x || !a.positions || a.rotary_dim < 2 || a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim ||
      !(a.theta > 0.0))
    return Check::kInvalid;
  return Check::kValid;
}

// Hadamard rows (m·2^k sizes, hadamard_math.cuh had_decompose): kInvalid
// for an unsupported size or bad rows / strides / pointers, kUnsupported
// past the shared-memory row (kHadamardMaxN).
inline Check check_hadamard(int64_t rows, int64_t n, const void* x, int64_t xs, const void* out, int64_t os,
                            int64_t max_n, bool (*supported)(int64_t)) {
  if (rows < 0 || !supported(n)) return Check::kInvalid;
  if (rows == 0) return Check::kNothing;
  if (!x || !out || xs < n || os < n) return Check::kInvalid;
  return n > max_n ? Check::kUnsupported : Check::kValid;
}

// The state update's checks given whether x, B and C (float, or the int8
// form's operands with their scales) are there.
inline Check check_state_update(const SelectiveStateUpdateArgs& a, bool xbc) {
  if (a.batch <= 0 || a.nheads <= 0 || a.headdim <= 0 || a.dstate <= 0 || a.ngroups <= 0) return Check::kNothing;
  if (a.nheads % a.ngroups != 0) return Check::kInvalid;
  if (!a.state || !xbc || !a.dt || !a.out || !a.A) return Check::kInvalid;
  return Check::kValid;
}
inline Check check_args(const SelectiveStateUpdateArgs& a) { return check_state_update(a, a.x && a.B && a.C); }
inline Check check_args(const SelectiveStateUpdateQ8Args& a) {
  return check_state_update(a.upd, a.x.q && a.x.scale && a.B.q && a.B.scale && a.C.q && a.C.scale);
}

// The decode GEMV (linear_cuda): M <= kGemvMaxRows (16); larger M is the
// tensor-core GEMM's, not written yet (kUnsupported).
inline Check check_args(const LinearArgs& a) {
  if (a.M < 0 || a.N < 0 || a.K < 0) return Check::kInvalid;
  const int32_t wt = (int32_t)a.w_dtype, xr = (int32_t)a.x_rounding;
  if (wt < 0 || wt >= kDTypeCount || kDTypeTable[wt].linear != LinearKernel::Float) return Check::kInvalid;
  if (xr < 0 || xr > (int32_t)ActRounding::Q8Block) return Check::kInvalid;
  if (a.w_layout != WeightLayout::Rows) return Check::kUnsupported;  // the CPU's panels: the device reads rows
  if (a.M == 0 || a.N == 0) return Check::kNothing;
  const bool blocks = a.w_dtype == DType::Q8_0 || a.w_dtype == DType::Q4_0;
  if (blocks && (a.K % kQuantBlock != 0 || a.w_stride % kQuantBlock != 0)) return Check::kInvalid;
  if (a.y_stride < a.N || a.x_stride < a.K || a.w_stride < a.K) return Check::kInvalid;
  if (!a.y || (a.K > 0 && (!a.x || !a.w))) return Check::kInvalid;
  if (a.bias && !is_plain_float(a.bias_dtype)) return Check::kUnsupported;
  return Check::kValid;  // more than 16 rows: a GEMM (cuda/linear_gemm.h)
}

// The Quamba formats (qlinear_cuda): the decode GEMV for M <= 16, the GEMM above.
inline Check check_args(const QLinearArgs& a) {
  if (a.M < 0 || a.N < 0 || a.K < 0) return Check::kInvalid;
  if (a.w_dtype != DType::I8 && a.w_dtype != DType::I4) return Check::kInvalid;
  const bool int8_in = a.x_scale > 0.0f;
  if (!int8_in && a.w_dtype == DType::I8) return Check::kInvalid;
  if (a.w_layout != WeightLayout::Rows) return Check::kUnsupported;  // the CPU's panels: the device reads rows
  if (a.M == 0 || a.N == 0) return Check::kNothing;
  if (!a.y || !a.w_scales || a.y_stride < a.N) return Check::kInvalid;
  if (a.K > 0) {
    const int64_t row = a.w_dtype == DType::I8 ? a.K : (a.K + kI4Chunk - 1) / kI4Chunk * (kI4Chunk / 2);
    if (!a.w || a.w_stride < row) return Check::kInvalid;
    const bool quantized_in = int8_in && a.xq;
    if (quantized_in ? a.xq_stride < a.K : (!a.x || a.x_stride < a.K)) return Check::kInvalid;
  }
  if (a.bias && !is_plain_float(a.bias_dtype)) return Check::kUnsupported;
  return Check::kValid;
}

// The router (moe_route_cuda): what moe_route throws on. SigmoidGrouped
// keeps its groups in a 64-bit mask: more than 64 groups with some dropped
// is kUnsupported.
inline Check check_args(const MoeRouteArgs& a) {
  if (a.T < 0 || a.E < 1 || a.k < 1 || a.k > a.E) return Check::kInvalid;
  const int32_t router = (int32_t)a.router;
  if (router < 0 || router > (int32_t)MoeRouter::SigmoidGrouped) return Check::kInvalid;
  if (a.router == MoeRouter::SigmoidGrouped) {
    if (a.n_group < 1 || a.E % a.n_group != 0) return Check::kInvalid;
    if (a.topk_group < 1 || a.topk_group > a.n_group) return Check::kInvalid;
    if (a.k > a.topk_group * (a.E / a.n_group)) return Check::kInvalid;
  }
  if (a.T == 0) return Check::kNothing;
  if (!a.logits || !a.ids || !a.weights || a.logits_stride < a.E) return Check::kInvalid;
  if (a.router == MoeRouter::SigmoidGrouped && a.topk_group < a.n_group && a.n_group > 64) return Check::kUnsupported;
  return Check::kValid;
}

// The dispatch (moe_cuda): expert weights in the float kernels' formats
// (f32 / f16 / bf16 / Q8_0 / Q4_0; the Quamba formats I8 / I4 are
// kUnsupported), gate and up in one format with one input rounding, every
// pointer (the experts tables too) a device pointer. Expert ids are the
// device's: one outside [0, E) gives NaN outputs for its token.
inline Check check_args(const MoeArgs& a) {
  if (a.T < 0 || a.d < 0 || a.I < 0 || a.E < 1 || a.k < 1 || a.k > a.E) return Check::kInvalid;
  const MoeWeight* ws[3] = {&a.gate, &a.up, &a.down};
  for (const MoeWeight* w : ws) {
    const int32_t t = (int32_t)w->dtype, r = (int32_t)w->x_rounding;
    if (t < 0 || t >= kDTypeCount) return Check::kInvalid;
    if (r < 0 || r > (int32_t)ActRounding::Q8Block) return Check::kInvalid;
  }
  if (a.T == 0 || a.d == 0) return Check::kNothing;
  if (a.I == 0) return Check::kInvalid;
  if (!a.x || !a.ids || !a.weights || !a.out || a.x_stride < a.d || a.out_stride < a.d) return Check::kInvalid;
  if (a.shared && a.shared_stride < a.d) return Check::kInvalid;
  for (int p = 0; p < 3; ++p) {
    const MoeWeight& w = *ws[p];
    const int64_t K = p < 2 ? a.d : a.I;
    const LinearKernel lk = kDTypeTable[(int32_t)w.dtype].linear;
    if (lk == LinearKernel::Quamba) {
      // I8 / I4 (a quantized checkpoint's experts): rows of row_stride
      // bytes, each expert's scales, I8 with int8 inputs (x_scale).
      if (w.layout != WeightLayout::Rows) return Check::kUnsupported;
      if (!w.experts && !w.w) return Check::kInvalid;
      if (!w.expert_scales && !w.scales) return Check::kInvalid;
      if (w.row_stride < dtype_row_bytes(w.dtype, K) || (!w.experts && w.expert_stride < 0)) return Check::kInvalid;
      if (w.dtype == DType::I8 && !w.x_scale) return Check::kInvalid;
      continue;
    }
    if (lk != LinearKernel::Float) return Check::kInvalid;
    if (!w.experts && !w.w) return Check::kInvalid;
    if (w.row_stride < K || (!w.experts && w.expert_stride < 0)) return Check::kInvalid;
    const bool blocks = w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0;
    if (blocks && (K % kQuantBlock != 0 || w.row_stride % kQuantBlock != 0)) return Check::kInvalid;
  }
  if (a.gate.dtype != a.up.dtype || a.gate.x_rounding != a.up.x_rounding) return Check::kUnsupported;
  return Check::kValid;
}

}  // namespace nm::cuda
