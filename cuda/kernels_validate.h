// Argument checks shared by the CUDA launchers (cuda/*.cu) and their host
// emulation (cuda/check): what the CPU twins throw on or would misread.
// kValid: launch; kNothing: valid, nothing to do (the CPU twin returns
// early); kInvalid -> cudaErrorInvalidValue; kUnsupported ->
// cudaErrorNotSupported. Host code only.
#pragma once
#include "kernels/conv1d.h"
#include "kernels/norm.h"
#include "kernels/selective_scan.h"
#include "math_common.cuh"

namespace nm::cuda {

enum class Check { kValid, kNothing, kInvalid, kUnsupported };

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

inline Check check_args(const CausalConv1dArgs& a) {
  if (a.width < 1 || a.width > kConv1dMaxWidth) return Check::kInvalid;
  if (!a.cu_seqlens && a.nseq != 1) return Check::kInvalid;
  if (a.tokens < 0 || a.weight_stride < a.width) return Check::kInvalid;
  if (a.channels <= 0 || a.nseq <= 0) return Check::kNothing;
  if (a.tokens > 0 && (!a.x || !a.out)) return Check::kInvalid;
  if (!a.weight) return Check::kInvalid;
  if (!is_plain_float(a.weight_dtype) || (a.bias && !is_plain_float(a.bias_dtype))) return Check::kUnsupported;
  return Check::kValid;
}

inline Check check_args(const CausalConv1dUpdateArgs& a) {
  if (a.width < 1 || a.width > kConv1dMaxWidth) return Check::kInvalid;
  if (a.weight_stride < a.width) return Check::kInvalid;
  if (a.channels <= 0 || a.batch <= 0) return Check::kNothing;
  if (!a.x || !a.out || !a.weight || (a.width > 1 && !a.conv_state)) return Check::kInvalid;
  if (!is_plain_float(a.weight_dtype) || (a.bias && !is_plain_float(a.bias_dtype))) return Check::kUnsupported;
  return Check::kValid;
}

inline Check check_args(const SelectiveScanArgs& a) {
  if (a.batch <= 0 || a.dim <= 0 || a.dstate <= 0 || a.ngroups <= 0) return Check::kNothing;
  if (a.seqlen < 0 || a.dim % a.ngroups != 0 || a.dstate > kSelectiveScanMaxDstate) return Check::kInvalid;
  if (!a.A || (a.seqlen > 0 && (!a.u || !a.delta || !a.B || !a.C || !a.out))) return Check::kInvalid;
  return Check::kValid;
}

inline Check check_args(const SelectiveStateUpdateArgs& a) {
  if (a.batch <= 0 || a.nheads <= 0 || a.headdim <= 0 || a.dstate <= 0 || a.ngroups <= 0) return Check::kNothing;
  if (a.nheads % a.ngroups != 0) return Check::kInvalid;
  if (!a.state || !a.x || !a.dt || !a.B || !a.C || !a.out || !a.A) return Check::kInvalid;
  return Check::kValid;
}

}  // namespace nm::cuda
