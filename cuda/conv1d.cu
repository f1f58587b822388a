// CUDA causal_conv1d / causal_conv1d_update (kernels.h) on float
// activations; the kernels are cuda/conv1d_kernels.cuh, the math
// cuda/conv1d_math.cuh.
#include "conv1d_kernels.cuh"
#include "kernels.h"

namespace nm::cuda {

cudaError_t causal_conv1d_cuda(const CausalConv1dArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  return launch_causal_conv1d(a, ConvFloatIo::of(a), stream);
}

cudaError_t causal_conv1d_update_cuda(const CausalConv1dUpdateArgs& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  return launch_causal_conv1d_update(a, ConvFloatIo::of(a), stream);
}

}  // namespace nm::cuda
