// CUDA int8-activation SSM kernels (kernels.h; the math cuda/ssm_q8_math.cuh):
// the convs and the state update read and write int8 in the float kernels'
// code; the prefill scans dequantize into scratch from the stream-ordered
// pool and run the float kernel.
#include "conv1d_kernels.cuh"
#include "kernels.h"
#include "launch_util.cuh"
#include "pdl.cuh"
#include "ssm_q8_math.cuh"
#include "state_update_kernel.cuh"

namespace nm::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) quantize_kernel(int64_t rows, int64_t C, const float* x, int64_t xs,
                                                            const float* scale, int8_t* q, int64_t qs) {
  const int64_t n = rows * C;
  pdl_trigger();  // a programmatic GEMV may follow (cuda/pdl.cuh)
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    q[r * qs + c] = quantize_channel(x[r * xs + c], scale[c]);
  }
}

__global__ void __launch_bounds__(kThreads) dequantize_kernel(const Int8Operand o, int64_t batch, int64_t tokens,
                                                              int64_t width, float* out) {
  const int64_t n = batch * tokens * width;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dequantize_point(o, tokens, width, i, out);
}

// Float scratch of n elements from the pool (freed by release()).
class Scratch {
 public:
  explicit Scratch(cudaStream_t s) : s_(s) {}
  float* get(int64_t n) {
    void* p = nullptr;
    if (n <= 0) return nullptr;
    if (err_ == cudaSuccess) err_ = cudaMallocAsync(&p, (size_t)n * sizeof(float), s_);
    if (err_ != cudaSuccess) return nullptr;
    ptrs_[count_++] = p;
    return static_cast<float*>(p);
  }
  cudaError_t error() const { return err_; }
  cudaError_t release(cudaError_t e) {
    for (int i = 0; i < count_; ++i) {
      const cudaError_t f = cudaFreeAsync(ptrs_[i], s_);
      if (e == cudaSuccess) e = f;
    }
    return e == cudaSuccess ? err_ : e;
  }

 private:
  cudaStream_t s_;
  cudaError_t err_ = cudaSuccess;
  void* ptrs_[4] = {};
  int count_ = 0;
};

void dequantize(const Int8Operand& o, int64_t batch, int64_t tokens, int64_t width, float* out, cudaStream_t s) {
  dequantize_kernel<<<grid_for(batch * tokens * width, kThreads), kThreads, 0, s>>>(o, batch, tokens, width, out);
}

}  // namespace

cudaError_t quantize_channels_int8_cuda(int64_t rows, int64_t channels, const float* x, int64_t x_stride,
                                        const float* scale, int8_t* q, int64_t q_stride, cudaStream_t stream) {
  if (rows < 0 || channels < 0) return cudaErrorInvalidValue;
  if (rows == 0 || channels == 0) return cudaSuccess;
  if (!x || !scale || !q || x_stride < channels || q_stride < channels) return cudaErrorInvalidValue;
  quantize_kernel<<<grid_for(rows * channels, kThreads), kThreads, 0, stream>>>(rows, channels, x, x_stride, scale, q,
                                                                                q_stride);
  return cudaGetLastError();
}

// The int8 convs and the state update: the float kernels' math on int8
// activations as they read and write them (ConvQ8Io, UpdateQ8Operands), one
// launch each.
cudaError_t causal_conv1d_q8_cuda(const CausalConv1dQ8Args& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  return launch_causal_conv1d(a.conv, ConvQ8Io{a.io}, stream);
}

cudaError_t causal_conv1d_update_q8_cuda(const CausalConv1dUpdateQ8Args& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  return launch_causal_conv1d_update(a.conv, ConvQ8Io{a.io}, stream);
}

cudaError_t selective_state_update_q8_cuda(const SelectiveStateUpdateQ8Args& a, cudaStream_t stream) {
  const Check c = check_args(a);
  if (c != Check::kValid) return check_status(c);
  return launch_selective_state_update(a.upd, UpdateQ8Operands{a.x, a.B, a.C}, stream);
}

cudaError_t selective_scan_q8_cuda(const SelectiveScanQ8Args& a, cudaStream_t stream) {
  SelectiveScanArgs s = a.scan;
  const int64_t Bt = s.batch, L = s.seqlen, D = s.dim, GN = s.ngroups * s.dstate;
  if (Bt > 0 && L > 0 && (!a.u.q || !a.u.scale || !a.B.q || !a.B.scale || !a.C.q || !a.C.scale))
    return cudaErrorInvalidValue;
  Scratch sc(stream);
  float* u = sc.get(Bt * L * D);
  float* b = sc.get(Bt * L * GN);
  float* c = sc.get(Bt * L * GN);
  if (sc.error() != cudaSuccess) return sc.release(cudaSuccess);
  if (Bt > 0 && L > 0) {
    dequantize(a.u, Bt, L, D, u, stream);
    dequantize(a.B, Bt, L, GN, b, stream);
    dequantize(a.C, Bt, L, GN, c, stream);
  }
  s.u = u, s.u_batch_stride = L * D, s.u_token_stride = D;
  s.B = b, s.B_batch_stride = L * GN, s.B_token_stride = GN;
  s.C = c, s.C_batch_stride = L * GN, s.C_token_stride = GN;
  return sc.release(selective_scan_cuda(s, stream));
}


cudaError_t ssd_chunk_scan_q8_cuda(const SsdChunkScanQ8Args& a, cudaStream_t stream) {
  SsdChunkScanArgs s = a.ssd;
  const int64_t T = s.tokens, D = s.nheads * s.headdim, GN = s.ngroups * s.dstate;
  if (T > 0 && (!a.x.q || !a.x.scale || !a.B.q || !a.B.scale || !a.C.q || !a.C.scale)) return cudaErrorInvalidValue;
  Scratch sc(stream);
  float* x = sc.get(T * D);
  float* b = sc.get(T * GN);
  float* c = sc.get(T * GN);
  if (sc.error() != cudaSuccess) return sc.release(cudaSuccess);
  if (T > 0) {
    dequantize({a.x.q, 0, a.x.token_stride, a.x.scale}, 1, T, D, x, stream);
    dequantize({a.B.q, 0, a.B.token_stride, a.B.scale}, 1, T, GN, b, stream);
    dequantize({a.C.q, 0, a.C.token_stride, a.C.scale}, 1, T, GN, c, stream);
  }
  s.x = x, s.x_stride = D, s.B = b, s.B_stride = GN, s.C = c, s.C_stride = GN;
  return sc.release(ssd_chunk_scan_cuda(s, stream));
}

}  // namespace nm::cuda
