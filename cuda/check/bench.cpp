// Timings (cudaEvents) of the CUDA kernels at the benchmark shapes: the
// mamba-130m layer (d_model 768, d_inner 1536, d_state 16, conv width 4), a
// 1.4B layer (d_model 2048, d_inner 4096), Mamba-2 decode (24 heads x headdim
// 64 x d_state 128), prefill lengths 2048 and 8192, decode batch 1 and 64.
// GB/s counts the bytes each kernel must read and write once (its inputs,
// outputs and states; not re-reads a cache serves) over the time; the copy
// bandwidth is cudaMemcpyDeviceToDevice of 1 GiB, best of 5, also counted
// as read + write (2 GiB moved), so the fraction compares like with like.
#include "bench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "check_util.h"
#include "kernels.h"
#include "gemv_variants.h"
#include "linear_gemm.h"
#include "qlinear_gemm.h"
#include "model_bench.h"
#include "selective_scan_math.cuh"
#include "selective_scan_tiles_math.cuh"

namespace nm::check {

namespace {

struct Row {
  std::string kernel, shape;
  double us, bytes, flops;  // flops: 0 for memory-bound kernels
};

// Device buffers filled from a shared host vector of random values.
class DevPool {
 public:
  ~DevPool() {
    for (void* p : ptrs_) cudaFree(p);
  }
  // n floats in [-1, 1) (or, when `negative`, in [-2, -0.01): A matrices).
  float* floats(int64_t n, bool negative = false) {
    if ((int64_t)host_.size() < n) {
      Rng r(7 + host_.size());
      const size_t old = host_.size();
      host_.resize((size_t)n);
      for (size_t i = old; i < host_.size(); ++i) host_[i] = r.uniform(-1.0f, 1.0f);
    }
    void* d = nullptr;
    if ((err_ = cudaMalloc(&d, (size_t)n * 4)) != cudaSuccess) return nullptr;
    ptrs_.push_back(d);
    if (negative) {
      std::vector<float> v((size_t)n);
      for (int64_t i = 0; i < n; ++i) v[(size_t)i] = -0.01f - std::fabs(host_[(size_t)i]) * 2.0f;
      err_ = cudaMemcpy(d, v.data(), (size_t)n * 4, cudaMemcpyHostToDevice);
    } else {
      err_ = cudaMemcpy(d, host_.data(), (size_t)n * 4, cudaMemcpyHostToDevice);
    }
    return static_cast<float*>(d);
  }
  cudaError_t error() const { return err_; }

 private:
  std::vector<float> host_;
  std::vector<void*> ptrs_;
  cudaError_t err_ = cudaSuccess;
};

// Average microseconds per launch: one warm-up launch, one timed launch to
// size the repetitions (about 30 ms in all, 3..200), then the timed run.
bool time_launch(const std::function<cudaError_t()>& launch, double* us) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  bool ok = launch() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
  float ms = 0;
  if (ok) {
    cudaEventRecord(e0);
    ok = launch() == cudaSuccess;
    cudaEventRecord(e1);
    ok = ok && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
  }
  if (ok) {
    const int reps = std::max(3, std::min(200, (int)(30.0 / std::max(ms, 1e-3f))));
    cudaEventRecord(e0);
    for (int i = 0; i < reps && ok; ++i) ok = launch() == cudaSuccess;
    cudaEventRecord(e1);
    ok = ok && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
    *us = ms * 1000.0 / reps;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ok;
}

// Best of 5 cudaMemcpyDeviceToDevice of 1 GiB, as read + write GB/s (0 on failure).
double copy_bandwidth() {
  const size_t bytes = (size_t)1 << 30;
  void *a = nullptr, *b = nullptr;
  double best = 0;
  if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess &&
      cudaMemset(a, 1, bytes) == cudaSuccess) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // warm-up
    for (int i = 0; i < 5; ++i) {
      float ms = 0;
      cudaEventRecord(e0);
      cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
      cudaEventRecord(e1);
      if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) break;
      best = std::max(best, 2.0 * (double)bytes / (ms * 1e-3) / 1e9);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
  }
  if (a) cudaFree(a);
  if (b) cudaFree(b);
  cudaGetLastError();
  return best;
}

// One sequence of `tokens` queries, the last of `L` cached positions: 32
// query and 8 kv heads of 128, an f32 cache in 16-token pages in order, on
// p's device memory (contents as they come). False if the memory failed.
bool attention_bench_args(DevPool& p, int64_t tokens, int64_t L, PagedAttentionArgs& a) {
  const int64_t Hq = 32, Hkv = 8, D = 128, page = 16, pages = L / page;
  a.cache.dtype = DType::F32, a.cache.num_pages = pages, a.cache.page_size = page, a.cache.n_kv_heads = Hkv;
  a.cache.head_dim = D, a.cache.head_stride = D, a.cache.slot_stride = Hkv * D, a.cache.page_stride = page * Hkv * D;
  a.cache.k = p.floats(pages * page * Hkv * D), a.cache.v = p.floats(pages * page * Hkv * D);
  a.nseq = 1, a.tokens = tokens, a.n_heads = Hq, a.scale = 0.0884f;
  a.q = p.floats(tokens * Hq * D), a.out = p.floats(tokens * Hq * D);
  a.q_stride_tok = a.out_stride_tok = Hq * D, a.q_stride_head = a.out_stride_head = D;
  std::vector<int32_t> ints(2 + 1 + pages);
  ints[0] = 0, ints[1] = (int32_t)tokens, ints[2] = (int32_t)L;  // cu_seqlens, kv_lens
  for (int64_t j = 0; j < pages; ++j) ints[(size_t)(3 + j)] = (int32_t)j;
  float* iv = p.floats((int64_t)ints.size());
  if (p.error() != cudaSuccess ||
      cudaMemcpy(iv, ints.data(), ints.size() * sizeof(int32_t), cudaMemcpyHostToDevice) != cudaSuccess)
    return false;
  const int32_t* ip = reinterpret_cast<const int32_t*>(iv);
  a.cu_seqlens_q = ip, a.kv_lens = ip + 2, a.block_table = ip + 3;
  a.block_table_stride = a.max_pages_per_seq = pages;
  return true;
}

}  // namespace

bool run_benchmarks(const nm::cuda::RuntimeStatus& rt) {
  int dev = 0;
  cudaGetDevice(&dev);
  const nm::cuda::DeviceInfo* info = nullptr;
  for (auto& d : rt.devices)
    if (d.index == dev) info = &d;
  std::printf("benchmarks: timing each kernel/shape ...\n");
  std::fflush(stdout);
  const double copy = copy_bandwidth();
  std::vector<Row> rows;
  bool ok = true;
  auto add = [&](const std::string& kernel, const std::string& shape, double bytes, const std::function<cudaError_t()>& f) {
    if (skipped(kernel)) return;
    double us = 0;
    if (!time_launch(f, &us)) {
      const cudaError_t e = cudaGetLastError();
      std::printf("FAIL %s %s: %s\n", kernel.c_str(), shape.c_str(), cudaGetErrorName(e));
      ok = false;
      return;
    }
    rows.push_back({kernel, shape, us, bytes, 0.0});
  };
  const double F = 4.0;  // bytes per float

  for (int64_t dm : {768, 2048})
    for (int64_t T : {1, 2048, 8192}) {
      DevPool p;
      RmsNormArgs a;
      a.rows = T, a.dim = dm, a.x_stride = a.residual_in_stride = a.residual_out_stride = a.out_stride = dm;
      a.x = p.floats(T * dm), a.residual_in = p.floats(T * dm), a.residual_out = p.floats(T * dm);
      a.out = p.floats(T * dm), a.weight = p.floats(dm);
      if (p.error() != cudaSuccess) return false;
      add("rms_norm +residual", "rows " + std::to_string(T) + " x " + std::to_string(dm), F * (4.0 * T * dm + dm),
          [&] { return cuda::rms_norm_cuda(a, 0); });
    }
  for (int64_t T : {1, 2048, 8192}) {
    const int64_t di = 1536;
    DevPool p;
    GatedRmsNormArgs a;
    a.rows = T, a.dim = di, a.group_size = di, a.y_stride = a.z_stride = a.out_stride = di;
    a.y = p.floats(T * di), a.z = p.floats(T * di), a.out = p.floats(T * di), a.weight = p.floats(di);
    if (p.error() != cudaSuccess) return false;
    add("gated_rms_norm +z", "rows " + std::to_string(T) + " x 1536 (1 group)", F * (3.0 * T * di + di),
        [&] { return cuda::gated_rms_norm_cuda(a, 0); });
  }
  for (int64_t C : {1536, 4096})
    for (int64_t T : {2048, 8192}) {
      DevPool p;
      CausalConv1dArgs a;
      a.tokens = T, a.channels = C, a.width = 4, a.x_stride = a.out_stride = C, a.weight_stride = 4, a.silu = true;
      a.x = p.floats(T * C), a.out = p.floats(T * C), a.weight = p.floats(C * 4), a.bias = p.floats(C);
      a.final_state = p.floats(C * 3), a.final_seq_stride = C * 3, a.final_ch_stride = 3;
      if (p.error() != cudaSuccess) return false;
      add("causal_conv1d silu", "T " + std::to_string(T) + " x ch " + std::to_string(C) + " W4",
          F * (2.0 * T * C + 5.0 * C + 3.0 * C), [&] { return cuda::causal_conv1d_cuda(a, 0); });
    }
  for (int64_t C : {1536, 4096})
    for (int64_t B : {1, 64}) {
      DevPool p;
      CausalConv1dUpdateArgs a;
      a.batch = B, a.channels = C, a.width = 4, a.x_stride = a.out_stride = C, a.weight_stride = 4, a.silu = true;
      a.x = p.floats(B * C), a.out = p.floats(B * C), a.weight = p.floats(C * 4), a.bias = p.floats(C);
      a.conv_state = p.floats(B * C * 3), a.state_slot_stride = C * 3, a.state_ch_stride = 3;
      if (p.error() != cudaSuccess) return false;
      add("causal_conv1d_update", "batch " + std::to_string(B) + " x ch " + std::to_string(C) + " W4",
          F * (2.0 * B * C + 6.0 * B * C + 5.0 * C), [&] { return cuda::causal_conv1d_update_cuda(a, 0); });
    }
  for (int64_t D : {1536, 4096})
    for (int64_t L : {2048, 8192}) {
      const int64_t N = 16;
      DevPool p;
      SelectiveScanArgs a;
      a.batch = 1, a.seqlen = L, a.dim = D, a.dstate = N;
      a.u = p.floats(L * D), a.delta = p.floats(L * D), a.z = p.floats(L * D), a.out = p.floats(L * D);
      a.B = p.floats(L * N), a.C = p.floats(L * N), a.A = p.floats(D * N, true), a.D = p.floats(D);
      a.delta_bias = p.floats(D), a.delta_softplus = true, a.last_state = p.floats(D * N);
      a.u_batch_stride = a.delta_batch_stride = a.z_batch_stride = a.out_batch_stride = L * D;
      a.u_token_stride = a.delta_token_stride = a.z_token_stride = a.out_token_stride = D;
      a.B_batch_stride = a.C_batch_stride = L * N, a.B_token_stride = a.C_token_stride = N;
      a.last_state_batch_stride = D * N;
      if (p.error() != cudaSuccess) return false;
      // The automatic choice, the other kernel's, then other chunk lengths
      // and threads per channel (for tuning kScanTilesMinBlocks,
      // kScanMinChunk and scan_parts).
      struct Tune {
        int64_t chunk;
        int parts, method;
      };
      const int other = cuda::scan_method(a, 0) == 2 ? 1 : 2;
      for (const Tune& tn : {Tune{0, 0, 0}, Tune{0, 0, other}, Tune{32, 1, 1}, Tune{64, 1, 1}, Tune{16, 2, 1},
                             Tune{64, 2, 1}, Tune{128, 2, 1}}) {
        if ((tn.chunk != 0 || tn.parts != 0) && L != 2048) continue;
        cuda::ScanTuning t;
        t.chunk_len = tn.chunk, t.parts = tn.parts, t.method = tn.method;
        const size_t wb = cuda::selective_scan_cuda_workspace_bytes(a, t);
        float* ws = wb ? p.floats((int64_t)(wb / 4)) : nullptr;
        if (p.error() != cudaSuccess) return false;
        const int64_t len = cuda::scan_chunk_len(a, t.chunk_len);
        const std::string kernel =
            cuda::scan_method(a, t.method) == 2
                ? std::string(" tiles")
                : " chunk " + std::to_string(len) + " x" + std::to_string(cuda::scan_parts(a, t.parts));
        add("selective_scan", "L " + std::to_string(L) + " x dim " + std::to_string(D) + " N16" + kernel +
                                  (tn.method == 0 ? " (auto)" : ""),
            F * (4.0 * L * D + 2.0 * L * N + 2.0 * D * N + 2.0 * D),
            [&] { return cuda::selective_scan_cuda(a, 0, ws, t); });
      }
    }
  // Mamba-2 prefill (SSD) at the mamba2-130m shape (24 heads x 64, dstate
  // 128) and a 1.4B-like one (64 heads x 64), one sequence; bytes = x, dt,
  // z, out, B, C, the final state.
  for (int64_t H : {24, 64})
    for (int64_t L : {2048, 8192}) {
      const int64_t P = 64, N = 128, dim = H * P;
      DevPool p;
      SsdChunkScanArgs a;
      a.tokens = L, a.nheads = H, a.headdim = P, a.ngroups = 1, a.dstate = N, a.nseq = 1;
      a.x = p.floats(L * dim), a.z = p.floats(L * dim), a.out = p.floats(L * dim), a.dt = p.floats(L * H);
      a.B = p.floats(L * N), a.C = p.floats(L * N), a.A = p.floats(H, true), a.D = p.floats(H);
      a.dt_bias = p.floats(H), a.dt_softplus = true, a.final_states = p.floats(dim * N);
      a.x_stride = a.z_stride = a.out_stride = dim, a.dt_stride = H, a.B_stride = a.C_stride = N;
      float* cu = p.floats(2);  // room for two int32: 0, L
      const int32_t cuv[2] = {0, (int32_t)L};
      if (p.error() != cudaSuccess || cudaMemcpy(cu, cuv, sizeof cuv, cudaMemcpyHostToDevice) != cudaSuccess) return false;
      a.cu_seqlens = reinterpret_cast<const int32_t*>(cu);
      cuda::SsdTuning rec, mma;
      rec.method = 1, mma.method = 2;
      const size_t wb = std::max(cuda::ssd_chunk_scan_cuda_workspace_bytes(a, rec),
                                 cuda::ssd_chunk_scan_cuda_workspace_bytes(a, mma));
      float* ws = wb ? p.floats((int64_t)(wb / 4)) : nullptr;
      if (p.error() != cudaSuccess) return false;
      const std::string shape = "L " + std::to_string(L) + " x " + std::to_string(H) + "x64 N128";
      const double bytes = F * (3.0 * L * dim + L * H + 2.0 * L * N + dim * N);
      add("ssd_chunk_scan (mma)", shape, bytes, [&] { return cuda::ssd_chunk_scan_cuda(a, 0, ws, mma); });
      add("ssd_chunk_scan (rec)", shape, bytes, [&] { return cuda::ssd_chunk_scan_cuda(a, 0, ws, rec); });
    }
  struct Upd {
    const char* name;
    int64_t H, P, N;
    bool per_state;
  };
  for (const Upd& u : {Upd{"mamba1 dim 1536 N16", 1536, 1, 16, true}, Upd{"mamba1 dim 4096 N16", 4096, 1, 16, true},
                       Upd{"mamba2 24x64 N128", 24, 64, 128, false}})
    for (int64_t B : {1, 64}) {
      DevPool p;
      SelectiveStateUpdateArgs a;
      const int64_t R = u.H * u.P;
      a.batch = B, a.nheads = u.H, a.headdim = u.P, a.dstate = u.N, a.a_per_state = u.per_state;
      a.state = p.floats(B * R * u.N), a.state_batch_stride = R * u.N;
      a.x = p.floats(B * R), a.z = p.floats(B * R), a.out = p.floats(B * R), a.dt = p.floats(B * u.H);
      a.B = p.floats(B * u.N), a.C = p.floats(B * u.N), a.A = p.floats(u.per_state ? u.H * u.N : u.H, true);
      a.D = p.floats(u.H), a.dt_bias = p.floats(u.H), a.dt_softplus = true;
      a.x_batch_stride = a.z_batch_stride = a.out_batch_stride = R, a.dt_batch_stride = u.H;
      a.B_batch_stride = a.C_batch_stride = u.N;
      if (p.error() != cudaSuccess) return false;
      add("selective_state_update", std::string(u.name) + " batch " + std::to_string(B),
          F * (2.0 * B * R * u.N + 3.0 * B * R + 2.0 * B * u.N + (u.per_state ? u.H * u.N : u.H)),
          [&] { return cuda::selective_state_update_cuda(a, 0); });
    }

  // Attention prefill: one sequence of 2048 tokens (all new), 32 query and 8
  // kv heads of 128 (f32 cache, 16-token pages in order), causal; both
  // kernels. TFLOP/s counts the score and value products of the causal half
  // (2 x 2 x T^2 / 2 x heads x head_dim); bytes = q, out and the cache once.
  {
    const int64_t T = 2048, Hq = 32, Hkv = 8, D = 128;
    DevPool p;
    PagedAttentionArgs a;
    if (!attention_bench_args(p, T, T, a)) return false;
    const double bytes = F * (2.0 * T * Hq * D + 2.0 * T * Hkv * D), flops = 2.0 * T * T * Hq * D;
    for (int method : {2, 1}) {
      const size_t before = rows.size();
      add(method == 2 ? "paged_attention (tiles)" : "paged_attention (warp/q)",
          "prefill T 2048 x 32/8 heads x 128", bytes, [&] { return cuda::paged_attention_cuda(a, 0, method); });
      if (rows.size() > before) rows.back().flops = flops;
    }
  }

  // Decode attention: one query over 8192 cached positions, 32 heads on 8 kv
  // heads of 128 (f32 cache, 16-token pages in order); bytes = the cache read.
  {
    const int64_t L = 8192, Hkv = 8, D = 128;
    DevPool p;
    PagedAttentionArgs a;
    if (!attention_bench_args(p, 1, L, a)) return false;
    add("paged_attention (warp/q)", "decode kv 8192 x 32/8 heads x 128", F * 2.0 * L * Hkv * D,
        [&] { return cuda::paged_attention_cuda(a, 0, 0); });
  }

  // Decode GEMV at M = 1: the mamba-130m in_proj (K 768, N 3072) and the 1.4B
  // one (K 2048, N 8192), each weight format; bytes = the weights (and their
  // scales) + x + y. Weight contents are random bytes (the timing does not
  // depend on them).
  for (int64_t K : {768, 2048}) {
    const int64_t N = 4 * K;
    const std::string shape = "M 1 x K " + std::to_string(K) + " x N " + std::to_string(N);
    for (DType wt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
      DevPool p;
      LinearArgs a;
      const double wbytes = (double)dtype_row_bytes(wt, K) * N;
      a.M = 1, a.N = N, a.K = K, a.x_stride = a.w_stride = K, a.y_stride = N, a.w_dtype = wt;
      a.x = p.floats(K), a.y = p.floats(N), a.w = p.floats((int64_t)(wbytes / 4) + 1);
      if (p.error() != cudaSuccess) return false;
      if (wt == DType::Q8_0 || wt == DType::Q4_0) {  // finite block scales: 1.0 in every block
        std::vector<uint8_t> w((size_t)wbytes);
        const int64_t bb = dtype_block_bytes(wt);
        for (size_t b = 0; b < w.size(); b += (size_t)bb) w[b] = 0x00, w[b + 1] = 0x3c;
        if (cudaMemcpy(const_cast<void*>(a.w), w.data(), w.size(), cudaMemcpyHostToDevice) != cudaSuccess) return false;
      }
      add(std::string("linear ") + dtype_name(wt), shape, wbytes + F * (K + N), [&] { return cuda::linear_cuda(a, 0); });
      if (wt == DType::Q8_0 || wt == DType::Q4_0) {  // the GGUF models' rounding: the integer GEMV
        a.x_rounding = ActRounding::Q8Block;
        add(std::string("linear ") + dtype_name(wt) + " q8-in", shape, wbytes + F * (K + N),
            [&] { return cuda::linear_cuda(a, 0); });
      }
    }
    for (int scheme = 0; scheme < 3; ++scheme) {
      DevPool p;
      QLinearArgs a;
      const DType wt = scheme == 0 ? DType::I8 : DType::I4;
      const int64_t G = (K + kI4Group - 1) / kI4Group, rb = dtype_row_bytes(wt, K);
      const double wbytes = (double)rb * N + F * (scheme == 0 ? N : N * G);
      a.M = 1, a.N = N, a.K = K, a.x_stride = K, a.w_stride = rb, a.y_stride = N, a.w_dtype = wt;
      a.x_scale = scheme < 2 ? 0.01f : 0.0f;
      a.x = p.floats(K), a.y = p.floats(N), a.w = p.floats(rb * N / 4 + 1);
      a.w_scales = p.floats(scheme == 0 ? N : N * G);
      if (p.error() != cudaSuccess) return false;
      add(scheme == 0 ? "qlinear w8a8" : scheme == 1 ? "qlinear w4a8" : "qlinear w4a16", shape,
          wbytes + F * (K + N), [&] { return cuda::qlinear_cuda(a, 0); });
      if (scheme < 2) {  // int8 inputs given (as the Hadamard-quantize before out_proj leaves them): no staging
        a.xq = reinterpret_cast<const int8_t*>(p.floats(K / 4 + 1)), a.xq_stride = K;
        if (p.error() != cudaSuccess) return false;
        add(scheme == 0 ? "qlinear w8a8 int8-in" : "qlinear w4a8 int8-in", shape, wbytes + K + F * N,
            [&] { return cuda::qlinear_cuda(a, 0); });
      }
    }
  }

  // The other decode GEMVs of a 1.4B Mamba-1 step (f16 weights, float
  // inputs): x_proj (K 4096 -> dt_rank 128 + 2 x 16), dt_proj (128 -> 4096),
  // out_proj (4096 -> 2048) and the head (2048 -> 50280).
  struct Gemv {
    const char* name;
    int64_t K, N;
  };
  for (const Gemv& g : {Gemv{"x_proj", 4096, 160}, Gemv{"dt_proj", 128, 4096}, Gemv{"out_proj", 4096, 2048},
                        Gemv{"head", 2048, 50280}}) {
    DevPool p;
    LinearArgs a;
    a.M = 1, a.N = g.N, a.K = g.K, a.x_stride = a.w_stride = g.K, a.y_stride = g.N, a.w_dtype = DType::F16;
    a.x = p.floats(g.K), a.y = p.floats(g.N), a.w = p.floats(g.K * g.N / 2 + 1);
    if (p.error() != cudaSuccess) return false;
    add(std::string("linear f16 ") + g.name, "M 1 x K " + std::to_string(g.K) + " x N " + std::to_string(g.N),
        2.0 * g.K * g.N + F * (g.K + g.N), [&] { return cuda::linear_cuda(a, 0); });
  }
  // The f16 GEMV's variants (linear_gemv_variant_cuda: warps per row S,
  // chunk loads issued together U) at the 1.4B in_proj, out_proj and x_proj.
  for (const Gemv& g : {Gemv{"in_proj", 2048, 8192}, Gemv{"out_proj", 4096, 2048}, Gemv{"x_proj", 4096, 160}}) {
    DevPool p;
    LinearArgs a;
    a.M = 1, a.N = g.N, a.K = g.K, a.x_stride = a.w_stride = g.K, a.y_stride = g.N, a.w_dtype = DType::F16;
    a.x = p.floats(g.K), a.y = p.floats(g.N), a.w = p.floats(g.K * g.N / 2 + 1);
    if (p.error() != cudaSuccess) return false;
    for (const auto& v : {std::pair<int, int>{1, 1}, {1, 2}, {1, 4}, {2, 1}, {2, 2}, {4, 1}, {4, 2}})
      add(std::string("gemv f16 ") + g.name + " S" + std::to_string(v.first) + " U" + std::to_string(v.second),
          "M 1 x K " + std::to_string(g.K) + " x N " + std::to_string(g.N), 2.0 * g.K * g.N + F * (g.K + g.N),
          [&] { return cuda::linear_gemv_variant_cuda(a, v.first, v.second, 0); });
  }

  // Prefill GEMMs (tensor cores, bf16 weights, bf16-rounded inputs) at 2048
  // tokens: the mamba-130m in_proj, the 1.4B in_proj and out_proj.
  // The same on the CUDA cores (f32 weights: the SIMT GEMM) at the 1.4B in_proj.
  struct Gemm {
    int64_t K, N;
    DType wt;
  };
  for (const Gemm& g : {Gemm{768, 3072, DType::BF16}, Gemm{2048, 8192, DType::BF16}, Gemm{4096, 2048, DType::BF16},
                        Gemm{2048, 8192, DType::F32}}) {
    const int64_t M = 2048;
    DevPool p;
    LinearArgs a;
    a.M = M, a.N = g.N, a.K = g.K, a.x_stride = a.w_stride = g.K, a.y_stride = g.N, a.w_dtype = g.wt;
    a.x_rounding = g.wt == DType::BF16 ? ActRounding::BF16 : ActRounding::None;
    const double wbytes = (double)dtype_row_bytes(g.wt, g.K) * g.N;
    a.x = p.floats(M * g.K), a.y = p.floats(M * g.N), a.w = p.floats((int64_t)(wbytes / 4));
    if (p.error() != cudaSuccess) return false;
    const std::string shape = "M 2048 x K " + std::to_string(g.K) + " x N " + std::to_string(g.N);
    const double bytes = wbytes + F * (M * g.K + M * g.N), flops = 2.0 * M * g.N * g.K;
    size_t before = rows.size();
    add(g.wt == DType::BF16 ? "linear bf16 GEMM (mma)" : "linear f32 GEMM (simt)", shape, bytes,
        [&] { return cuda::linear_cuda(a, 0); });
    if (rows.size() > before) rows.back().flops = flops;
    if (g.wt == DType::BF16) {  // the first tensor-core kernel, for comparison
      before = rows.size();
      add("linear bf16 GEMM (wmma)", shape, bytes, [&] { return cuda::linear_gemm_bf16(a, 0); });
      if (rows.size() > before) rows.back().flops = flops;
    }
  }

  // f16 weights with float inputs at 2048 tokens, the 1.4B in_proj: the f16
  // tensor cores on split inputs (two f16 products per multiply-add, staging
  // included; flops still 2 M N K) and the SIMT GEMM.
  {
    const int64_t M = 2048, K = 2048, N = 8192;
    DevPool p;
    LinearArgs a;
    a.M = M, a.N = N, a.K = K, a.x_stride = a.w_stride = K, a.y_stride = N, a.w_dtype = DType::F16;
    const double wbytes = 2.0 * K * N;
    a.x = p.floats(M * K), a.y = p.floats(M * N), a.w = p.floats((int64_t)(wbytes / 4));  // random bits: finite halves mostly
    if (p.error() != cudaSuccess) return false;
    const std::string shape = "M 2048 x K 2048 x N 8192";
    const double bytes = wbytes + F * (M * K + M * N), flops = 2.0 * M * N * K;
    size_t before = rows.size();
    add("linear f16 GEMM (mma)", shape, bytes, [&] { return cuda::linear_gemm_f16_mma(a, 0); });
    if (rows.size() > before) rows.back().flops = flops;
    before = rows.size();
    add("linear f16 GEMM (simt)", shape, bytes, [&] { return cuda::linear_gemm_simt(a, 0); });
    if (rows.size() > before) rows.back().flops = flops;
  }

  // Q8_0 / Q4_0 weights with Q8Block inputs (GGUF models' default rounding)
  // at 2048 tokens, the 1.4B in_proj: the int8 tensor cores (staging
  // included) and the SIMT GEMM. Block scales 1.0.
  for (DType wt : {DType::Q8_0, DType::Q4_0}) {
    const int64_t M = 2048, K = 2048, N = 8192;
    DevPool p;
    LinearArgs a;
    a.M = M, a.N = N, a.K = K, a.x_stride = a.w_stride = K, a.y_stride = N, a.w_dtype = wt;
    a.x_rounding = ActRounding::Q8Block;
    const double wbytes = (double)dtype_row_bytes(wt, K) * N;
    a.x = p.floats(M * K), a.y = p.floats(M * N), a.w = p.floats((int64_t)(wbytes / 4) + 1);
    if (p.error() != cudaSuccess) return false;
    std::vector<uint8_t> w((size_t)wbytes);
    const int64_t bb = dtype_block_bytes(wt);
    for (size_t b = 0; b < w.size(); b += (size_t)bb) {
      w[b] = 0x00, w[b + 1] = 0x3c;
      for (int64_t j = 2; j < bb; ++j) w[b + (size_t)j] = (uint8_t)(b * 7 + (size_t)j * 13);
    }
    if (cudaMemcpy(const_cast<void*>(a.w), w.data(), w.size(), cudaMemcpyHostToDevice) != cudaSuccess) return false;
    const std::string shape = "M 2048 x K 2048 x N 8192";
    const double bytes = wbytes + F * (M * K + M * N), flops = 2.0 * M * N * K;
    size_t before = rows.size();
    add(std::string("linear ") + dtype_name(wt) + " GEMM (mma)", shape, bytes, [&] { return cuda::linear_gemm_q8_mma(a, 0); });
    if (rows.size() > before) rows.back().flops = flops;
    before = rows.size();
    add(std::string("linear ") + dtype_name(wt) + " GEMM (simt)", shape, bytes, [&] { return cuda::linear_gemm_simt(a, 0); });
    if (rows.size() > before) rows.back().flops = flops;
  }

  // Prefill GEMMs of the Quamba formats at 2048 tokens, the 1.4B in_proj, on
  // the tensor cores (W8A8 and W4A8 int8 mma.sync, W4A16 f16 on split inputs;
  // staging included) and on the CUDA cores. flops = 2 M N K.
  for (int scheme = 0; scheme < 3; ++scheme) {
    const int64_t M = 2048, K = 2048, N = 8192;
    DevPool p;
    QLinearArgs a;
    const DType wt = scheme == 0 ? DType::I8 : DType::I4;
    const int64_t G = (K + kI4Group - 1) / kI4Group, rb = dtype_row_bytes(wt, K);
    a.M = M, a.N = N, a.K = K, a.x_stride = K, a.w_stride = rb, a.y_stride = N, a.w_dtype = wt;
    a.x_scale = scheme < 2 ? 0.01f : 0.0f;
    a.x = p.floats(M * K), a.y = p.floats(M * N), a.w = p.floats(rb * N / 4 + 1);
    a.w_scales = p.floats(scheme == 0 ? N : N * G);
    if (p.error() != cudaSuccess) return false;
    const std::string shape = "M 2048 x K 2048 x N 8192";
    const char* name = scheme == 0 ? "w8a8" : scheme == 1 ? "w4a8" : "w4a16";
    const double bytes = (double)rb * N + F * (M * K + M * N), flops = 2.0 * M * N * K;
    const float inv = scheme < 2 ? 100.0f : 0.0f;
    size_t before = rows.size();
    add(std::string("qlinear ") + name + " GEMM (mma)", shape, bytes, [&] {
      return scheme < 2 ? cuda::qlinear_gemm_int8_mma(a, inv, 0) : cuda::qlinear_gemm_w4a16_mma(a, 0);
    });
    if (rows.size() > before) rows.back().flops = flops;
    before = rows.size();
    add(std::string("qlinear ") + name + " GEMM (simt)", shape, bytes, [&] { return cuda::qlinear_gemm_simt(a, inv, 0); });
    if (rows.size() > before) rows.back().flops = flops;
  }

  // The fused MoE dispatch at the Granite-4.0-H-Tiny shape (d 1536, 64
  // experts of I 512, top-6, gate|up packed): f16 experts (the CUDA cores),
  // bf16 experts with bf16 inputs and Q8_0 experts with Q8Block inputs (the
  // tensor cores); decode (1 and 64 tokens: bytes = the chosen experts'
  // weights read once) and a 2048-token prefill (flops = 2 · T · k · 3 · I ·
  // d). Routing: token t's k experts (7t + 11j) mod E, every expert used.
  // Weight contents: random bits (Q8_0 scales 1.0).
  struct MoeFormat {
    DType wt;
    ActRounding r;
    const char* name;
  };
  for (const MoeFormat& mf : {MoeFormat{DType::F16, ActRounding::None, "moe f16 (simt)"},
                              MoeFormat{DType::BF16, ActRounding::BF16, "moe bf16 (mma)"},
                              MoeFormat{DType::Q8_0, ActRounding::Q8Block, "moe q8_0 (mma)"}})
  for (int64_t T : {1, 64, 2048}) {
    const int64_t d = 1536, I = 512, E = 64, k = 6;
    DevPool p;
    MoeArgs a;
    a.T = T, a.d = d, a.I = I, a.E = E, a.k = k, a.x_stride = a.out_stride = d;
    a.x = p.floats(T * d), a.out = p.floats(T * d);
    const int64_t gu_row = dtype_row_bytes(mf.wt, d), dn_row = dtype_row_bytes(mf.wt, I);
    const int64_t gu_bytes = E * 2 * I * gu_row, dn_bytes = E * d * dn_row;
    const float* gu = p.floats(gu_bytes / 4 + 1);
    const float* dn = p.floats(dn_bytes / 4 + 1);
    float* w = p.floats(T * k);
    float* ids_f = p.floats(T * k);
    std::vector<int32_t> ids((size_t)(T * k));
    std::vector<char> used((size_t)E, 0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < k; ++j) ids[(size_t)(t * k + j)] = (int32_t)((7 * t + 11 * j) % E), used[(size_t)((7 * t + 11 * j) % E)] = 1;
    if (p.error() != cudaSuccess ||
        cudaMemcpy(ids_f, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice) != cudaSuccess)
      return false;
    if (mf.wt == DType::Q8_0) {  // finite block scales: 1.0 in every block
      for (auto [ptr, bytes] : {std::pair<const float*, int64_t>{gu, gu_bytes}, {dn, dn_bytes}}) {
        std::vector<uint8_t> blocks((size_t)bytes);
        for (size_t b = 0; b + 34 <= blocks.size(); b += 34) {
          blocks[b] = 0x00, blocks[b + 1] = 0x3c;
          for (size_t j = 2; j < 34; ++j) blocks[b + j] = (uint8_t)(b * 7 + j * 13);
        }
        if (cudaMemcpy(const_cast<float*>(ptr), blocks.data(), blocks.size(), cudaMemcpyHostToDevice) != cudaSuccess)
          return false;
      }
    }
    a.ids = reinterpret_cast<const int32_t*>(ids_f), a.weights = w;
    for (MoeWeight* m : {&a.gate, &a.up, &a.down}) m->dtype = mf.wt, m->x_rounding = mf.r;
    a.gate.w = gu, a.up.w = reinterpret_cast<const char*>(gu) + I * gu_row;
    a.gate.row_stride = a.up.row_stride = d, a.gate.expert_stride = a.up.expert_stride = 2 * I * gu_row;
    a.down.w = dn, a.down.row_stride = I, a.down.expert_stride = d * dn_row;
    const size_t wsb = cuda::moe_cuda_workspace_bytes(a);
    float* ws = p.floats((int64_t)(wsb / 4) + 1);
    if (p.error() != cudaSuccess) return false;
    int64_t experts = 0;
    for (char u : used) experts += u;
    const double wbytes = (double)experts * (2 * I * gu_row + d * dn_row);
    const size_t before = rows.size();
    add(mf.name, "T " + std::to_string(T) + " d 1536 E 64 I 512 k 6", wbytes + F * 2.0 * T * d,
        [&] { return cuda::moe_cuda(a, 0, ws); });
    if (rows.size() > before && T > 64) rows.back().flops = 2.0 * T * k * 3 * I * d;
  }

  std::printf("\n== node-mamba CUDA kernels: %s, compute capability %d.%d, %d SMs, CUDA runtime %d, driver %d ==\n",
              info ? info->name.c_str() : "?", info ? info->compute_major : 0, info ? info->compute_minor : 0,
              info ? info->multiprocessors : 0, rt.runtime_version, rt.driver_version);
  std::printf("device copy bandwidth: %.1f GB/s (cudaMemcpy D2D 1 GiB, best of 5, read + write)\n", copy);
  std::printf("%-26s %-32s %12s %10s %8s %9s\n", "kernel", "shape", "time (us)", "GB/s", "of copy", "TFLOP/s");
  for (const Row& r : rows) {
    const double gbs = r.bytes / (r.us * 1e-6) / 1e9;
    std::printf("%-26s %-32s %12.2f %10.1f %7.1f%%", r.kernel.c_str(), r.shape.c_str(), r.us, gbs,
                copy > 0 ? 100.0 * gbs / copy : 0.0);
    if (r.flops > 0) std::printf(" %9.1f", r.flops / (r.us * 1e-6) / 1e12);
    std::printf("\n");
  }
  if (!run_model_benchmarks(copy)) ok = false;
  return ok;
}

}  // namespace nm::check
