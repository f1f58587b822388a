// The f16 decode GEMV's variants for the bench (gemv_variants.h).
#include "gemv_variants.h"

#include "gemv_kernel.cuh"
#include "kernels_validate.h"
#include "launch_util.cuh"

namespace nm::cuda {

namespace {

template <int S, int U>
void launch_f16_m1(const LinearArgs& a, int flags, cudaStream_t s) {
  const unsigned blocks = grid_for(a.N * S * kWarpSize, kGemvWarps * kWarpSize);
  gemv_kernel<DType::F16, 8, 1, S, U><<<blocks, kGemvWarps * kWarpSize, 0, s>>>(a, flags);
}

}  // namespace

cudaError_t linear_gemv_variant_cuda(const LinearArgs& a, int warps_per_row, int batch, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  if (a.M != 1 || a.w_dtype != DType::F16 || a.x_rounding != ActRounding::None) return cudaErrorNotSupported;
  const int flags = gemv_flags(a), S = warps_per_row, U = batch;
  if (S == 1 && U == 1) launch_f16_m1<1, 1>(a, flags, stream);
  else if (S == 1 && U == 2) launch_f16_m1<1, 2>(a, flags, stream);
  else if (S == 1 && U == 4) launch_f16_m1<1, 4>(a, flags, stream);
  else if (S == 2 && U == 1) launch_f16_m1<2, 1>(a, flags, stream);
  else if (S == 2 && U == 2) launch_f16_m1<2, 2>(a, flags, stream);
  else if (S == 4 && U == 1) launch_f16_m1<4, 1>(a, flags, stream);
  else if (S == 4 && U == 2) launch_f16_m1<4, 2>(a, flags, stream);
  else return cudaErrorNotSupported;
  return cudaGetLastError();
}

}  // namespace nm::cuda
