// nm_gpu_check: the CUDA kernels (cuda/kernels.h) against their CPU twins
// (csrc/kernels), standalone (no Node.js). scripts/gpu-check.sh builds and
// runs it.
//
//   nm_gpu_check --emulate   any machine: the CUDA kernels' per-thread math
//                            run on the host (cuda/check/emulate.cpp)
//   nm_gpu_check             a CUDA device: the real kernels, then timings
//                            at the benchmark shapes (--no-bench: skip them;
//                            --bench-only: the timings alone, for profilers)
//
// Random inputs at awkward sizes; one line per case and a summary. Errors are
// max |got - ref| over max |ref| of each output buffer (padding included),
// against a tolerance per output: 0 (bit-exact) where both sides do the same
// float operations in the same order, else float32 rounding of differently
// ordered sums and of expf / log1pf. Exit 0: all passed; 1: a mismatch or an
// error; 2: no usable CUDA device (default mode only).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <numeric>
#include <string>

#include "bench.h"
#include "check_util.h"
#include "cpu/cpu_features.h"
#include "kernels/attention.h"
#include "kernels/hadamard.h"
#include "kernels/linear.h"
#include "kernels/moe.h"
#include "kernels/qlinear.h"
#include "kernels/ssd.h"
#include "kernels/ssm_q8.h"
#include "emulate.h"
#include "model_bench.h"
#include "model_check.h"
#include "selective_scan_tiles_math.cuh"
#include "attention_tiles_math.cuh"
#include "recorder_check.h"
#include "kernels.h"
#include "linear_gemm.h"
#include "qlinear_gemm.h"
#include "runtime.h"

namespace nm::check {

namespace {

bool g_gpu = false;
// Bit-exact comparisons hold when the CPU kernels' fmadd is a fused
// multiply-add (AVX2 and up); the scalar level spells it a * b + c.
double g_exact = 0.0;
constexpr double kTolF32 = 1e-5;   // one reduction / a few transcendental ops
constexpr double kTolScan = 2e-5;  // a recurrence over up to 600 tokens
constexpr double kTolGemm = 2e-5;  // tensor-core sums of up to 2304 exact bf16 products
constexpr int64_t kLinearGemvRows = 16;  // linear_cuda's GEMV; more rows: the GEMM

struct Stats {
  int cases = 0, failed = 0;
  std::map<std::string, double> worst;  // kernel -> worst error
};
Stats g_stats;

struct Out {
  const char* name;
  const std::vector<float>* ref;
  const std::vector<float>* got;
  double tol;
};

void report(const char* kernel, const std::string& desc, cudaError_t e, std::initializer_list<Out> outs) {
  ++g_stats.cases;
  bool ok = e == cudaSuccess;
  std::string detail;
  if (!ok) detail = std::string(" error ") + cudaGetErrorName(e);
  double& w = g_stats.worst[kernel];
  for (const Out& o : outs) {
    if (!ok && e != cudaSuccess) break;
    const double err = rel_error(*o.ref, *o.got);
    w = std::max(w, err);
    char buf[128];
    std::snprintf(buf, sizeof buf, " %s %.2e%s", o.name, err, o.tol == 0 ? " (exact)" : "");
    detail += buf;
    if (!(err <= o.tol)) {
      ok = false;
      std::snprintf(buf, sizeof buf, " > tol %.0e", o.tol);
      detail += buf;
    }
  }
  if (!ok) ++g_stats.failed;
  std::printf("%s %-24s %s:%s\n", ok ? "ok  " : "FAIL", kernel, desc.c_str(), detail.c_str());
}

// An argument set the launcher must refuse with `want`.
void report_reject(const char* kernel, const char* what, cudaError_t got, cudaError_t want) {
  ++g_stats.cases;
  const bool ok = got == want;
  if (!ok) ++g_stats.failed;
  std::printf("%s %-24s rejects %s: %s (want %s)\n", ok ? "ok  " : "FAIL", kernel, what, cudaGetErrorName(got),
              cudaGetErrorName(want));
}

cudaError_t launch(const RmsNormArgs& a) { return g_gpu ? cuda::rms_norm_cuda(a, 0) : cuda::emulate::rms_norm(a); }
cudaError_t launch(const GatedRmsNormArgs& a) {
  return g_gpu ? cuda::gated_rms_norm_cuda(a, 0) : cuda::emulate::gated_rms_norm(a);
}
cudaError_t launch(const CausalConv1dArgs& a) {
  return g_gpu ? cuda::causal_conv1d_cuda(a, 0) : cuda::emulate::causal_conv1d(a);
}
cudaError_t launch(const CausalConv1dUpdateArgs& a) {
  return g_gpu ? cuda::causal_conv1d_update_cuda(a, 0) : cuda::emulate::causal_conv1d_update(a);
}
cudaError_t launch(const SelectiveScanArgs& a, cuda::ScanTuning t = {}) {
  return g_gpu ? cuda::selective_scan_cuda(a, 0, nullptr, t) : cuda::emulate::selective_scan(a, t);
}
cudaError_t launch(const SsdChunkScanArgs& a, cuda::SsdTuning t = {}) {
  return g_gpu ? cuda::ssd_chunk_scan_cuda(a, 0, nullptr, t) : cuda::emulate::ssd_chunk_scan(a, t);
}
cudaError_t launch(const KvCacheAppendArgs& a) {
  return g_gpu ? cuda::kv_cache_append_cuda(a, 0) : cuda::emulate::kv_cache_append(a);
}
cudaError_t launch(const PagedAttentionArgs& a, int method = 0) {
  return g_gpu ? cuda::paged_attention_cuda(a, 0, method) : cuda::emulate::paged_attention(a, method);
}
cudaError_t launch(const RopeArgs& a) { return g_gpu ? cuda::rope_cuda(a, 0) : cuda::emulate::rope(a); }
cudaError_t launch(const HadamardArgs& a) {
  return g_gpu ? cuda::hadamard_transform_cuda(a, 0) : cuda::emulate::hadamard_transform(a);
}
cudaError_t launch(const HadamardQuantArgs& a) {
  return g_gpu ? cuda::hadamard_quantize_cuda(a, 0) : cuda::emulate::hadamard_quantize(a);
}
cudaError_t launch(const SelectiveStateUpdateArgs& a) {
  return g_gpu ? cuda::selective_state_update_cuda(a, 0) : cuda::emulate::selective_state_update(a);
}
// With g_force_simt, products of more than 16 rows take the CUDA-core GEMMs
// (what devices before sm_80 run) instead of the tensor cores.
bool g_force_simt = false;
cudaError_t launch(const LinearArgs& a) {
  if (g_force_simt && a.M > kLinearGemvRows) {
    if (!g_gpu) return cuda::emulate::linear_gemm_simt(a);
    return cuda::linear_gemm_simt(a, 0);
  }
  return g_gpu ? cuda::linear_cuda(a, 0) : cuda::emulate::linear(a);
}
cudaError_t launch(const QLinearArgs& a) {
  if (g_force_simt && a.M > kLinearGemvRows) {
    if (!g_gpu) return cuda::emulate::qlinear_gemm_simt(a);
    QLinearArgs b = a;
    if (!(b.x_scale > 0.0f)) b.xq = nullptr;
    return cuda::qlinear_gemm_simt(b, b.x_scale > 0.0f ? 1.0f / b.x_scale : 0.0f, 0);
  }
  return g_gpu ? cuda::qlinear_cuda(a, 0) : cuda::emulate::qlinear(a);
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// A random permutation of `n` distinct slots out of `pool`.
std::vector<int32_t> rand_slots(Rng& r, int64_t n, int64_t pool) {
  std::vector<int32_t> all((size_t)pool);
  for (int64_t i = 0; i < pool; ++i) all[(size_t)i] = (int32_t)i;
  for (int64_t i = pool - 1; i > 0; --i) std::swap(all[(size_t)i], all[(size_t)r.below(i + 1)]);
  all.resize((size_t)n);
  return all;
}

// ---------------------------------------------------------------- embedding and elementwise

cudaError_t launch(const EmbeddingArgs& a) { return g_gpu ? cuda::embedding_cuda(a, 0) : cuda::emulate::embedding(a); }

// A [rows, dim] table of `t` with valid scales: random values (f32 / f16 /
// bf16), blocks with an f16 scale and random quants (Q8_0 / Q4_0), random
// int8 / nibbles with float scales in `scales` (I8 / I4).
std::vector<uint8_t> rand_table(Rng& r, DType t, int64_t rows, int64_t dim, std::vector<float>& scales) {
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16) return rand_typed(r, rows * dim, t, -2, 2);
  const int64_t rb = dtype_row_bytes(t, dim);
  std::vector<uint8_t> v((size_t)(rows * rb));
  for (auto& b : v) b = (uint8_t)r.below(256);
  if (t == DType::Q8_0 || t == DType::Q4_0) {
    const int64_t bb = t == DType::Q8_0 ? 34 : 18;
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t b = 0; b < dim / 32; ++b) {
        const uint16_t d = f32_to_f16(r.uniform(0.01f, 0.1f));
        std::memcpy(v.data() + row * rb + b * bb, &d, 2);
      }
  } else {
    if (t == DType::I8)
      for (auto& b : v) b = (uint8_t)(int8_t)((int)r.below(255) - 127);
    scales = rand_vec(r, dtype_scale_count(t, rows, dim), 0.001f, 0.05f);
  }
  return v;
}

void case_embedding(Rng& r, DType t, int64_t rows, int64_t dim, int64_t n) {
  std::vector<float> scales;
  auto table = rand_table(r, t, rows, dim, scales);
  std::vector<int32_t> tokens((size_t)n);
  for (auto& id : tokens) id = (int32_t)r.below(rows);
  auto out = rand_vec(r, n * dim), cout = out;
  EmbeddingArgs a;
  a.dtype = t, a.rows = rows, a.dim = dim, a.n = n;
  EmbeddingArgs c = a;
  c.table = table.data(), c.scales = scales.empty() ? nullptr : scales.data(), c.tokens = tokens.data(), c.out = cout.data();
  nm::embedding(c);
  Side s(g_gpu);
  EmbeddingArgs d = a;
  d.table = s.put(table), d.scales = s.put(scales), d.tokens = s.put(tokens), d.out = s.put(out);
  const cudaError_t e = s.finish(launch(d));
  report("embedding", fmt("%s rows=%ld dim=%ld n=%ld", dtype_name(t), (long)rows, (long)dim, (long)n), e,
         {{"out", &cout, &out, 0.0}});
}

void case_swiglu(Rng& r, int64_t rows, int64_t I, bool packed) {
  const int64_t gs = packed ? 2 * I + 3 : I, up = packed ? I : rows * I, hs = I + 1;
  auto gu = rand_vec(r, packed ? rows * gs : 2 * rows * I, -6, 6);
  auto h = rand_vec(r, rows * hs), ch = h;
  nm::swiglu_rows(gu.data(), gs, up, ch.data(), hs, rows, I);
  Side s(g_gpu);
  float* dgu = s.put(gu);
  float* dh = s.put(h);
  const cudaError_t e = s.finish(g_gpu ? cuda::swiglu_rows_cuda(dgu, gs, up, dh, hs, rows, I, 0)
                                       : cuda::emulate::swiglu_rows(dgu, gs, up, dh, hs, rows, I));
  report("swiglu_rows", fmt("rows=%ld I=%ld %s", (long)rows, (long)I, packed ? "gate|up rows" : "gate rows, then up rows"),
         e, {{"h", &ch, &h, kTolF32}});
}

void case_scale_add(Rng& r, int64_t n) {
  auto x = rand_vec(r, n, -3, 3), y = rand_vec(r, n, -3, 3), out = rand_vec(r, n);
  std::vector<float> cx = x, cout = out;
  for (int64_t i = 0; i < n; ++i) cx[(size_t)i] = cx[(size_t)i] * 0.37f;
  for (int64_t i = 0; i < n; ++i) cout[(size_t)i] = cx[(size_t)i] + y[(size_t)i];
  Side s(g_gpu);
  float* dx = s.put(x);
  float* dy = s.put(y);
  float* dout = s.put(out);
  cudaError_t e = g_gpu ? cuda::scale_cuda(dx, n, 0.37f, 0) : cuda::emulate::scale(dx, n, 0.37f);
  if (e == cudaSuccess) e = g_gpu ? cuda::add_cuda(dx, dy, dout, n, 0) : cuda::emulate::add(dx, dy, dout, n);
  e = s.finish(e);
  report("scale_add", fmt("n=%ld", (long)n), e, {{"x", &cx, &x, 0.0}, {"out", &cout, &out, 0.0}});
}

void elementwise_cases(Rng& r) {
  const DType types[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::I8, DType::I4};
  for (DType t : types) {
    const bool blocks = t == DType::Q8_0 || t == DType::Q4_0;
    case_embedding(r, t, 97, blocks ? 64 : 75, 9);
    case_embedding(r, t, 300, blocks ? 768 : 200, 3);
    if (!blocks) case_embedding(r, t, 5, 1, 1);
  }
  case_swiglu(r, 1, 7, true);
  case_swiglu(r, 9, 130, false);
  case_swiglu(r, 33, 512, true);
  case_scale_add(r, 1);
  case_scale_add(r, 10007);

  Side s(g_gpu);
  std::vector<uint8_t> table(34 * 4);
  std::vector<int32_t> tok(1, 0);
  std::vector<float> out(64);
  EmbeddingArgs a;
  a.table = s.put(table), a.tokens = s.put(tok), a.out = s.put(out), a.dtype = DType::Q8_0, a.rows = 2, a.dim = 48, a.n = 1;
  report_reject("embedding", "a q8_0 row of 48", launch(a), cudaErrorInvalidValue);
  a.dtype = DType::I8, a.dim = 16, a.scales = nullptr;
  report_reject("embedding", "an i8 table without scales", launch(a), cudaErrorInvalidValue);
  std::vector<float> sc(2, 1.0f);
  a.scales = s.put(sc), a.layout = WeightLayout::Panels;
  report_reject("embedding", "an i8 table in panels", launch(a), cudaErrorNotSupported);
}

// ---------------------------------------------------------------- norms

void case_rms_norm(Rng& r, int64_t rows, int64_t dim, bool res_in, bool res_out, DType wt, bool inplace) {
  const int64_t xs = dim + 3, rs = dim + 1, ros = inplace ? rs : dim + 5, os = inplace ? xs : dim + 2;
  auto x = rand_vec(r, rows * xs, -2, 2), res = res_in ? rand_vec(r, rows * rs) : std::vector<float>{};
  auto ro = res_out && !(inplace && res_in) ? rand_vec(r, rows * ros) : std::vector<float>{};
  auto out = inplace ? std::vector<float>{} : rand_vec(r, rows * os);
  auto w = rand_typed(r, dim, wt, 0.5f, 1.5f);
  auto cx = x, cres = res, cro = ro, cout = out;  // the CPU twin's copies
  RmsNormArgs a;
  a.rows = rows, a.dim = dim, a.x_stride = xs, a.residual_in_stride = rs, a.residual_out_stride = ros;
  a.out_stride = os, a.weight_dtype = wt, a.eps = 1e-5f;
  auto bind = [&](RmsNormArgs& b, auto&& P, std::vector<float>& X, std::vector<float>& R, std::vector<float>& RO,
                  std::vector<float>& O, std::vector<uint8_t>& W) {
    b.x = P(X);
    b.residual_in = P(R);
    b.residual_out = res_out ? (inplace && res_in ? P(R) : P(RO)) : nullptr;
    b.out = inplace ? P(X) : P(O);
    b.weight = P(W);
  };
  RmsNormArgs c = a;
  auto host = [](auto& v) { return v.empty() ? nullptr : v.data(); };
  bind(c, host, cx, cres, cro, cout, w);
  nm::rms_norm(c);
  Side s(g_gpu);
  RmsNormArgs t = a;
  bind(t, [&](auto& v) { return s.put(v); }, x, res, ro, out, w);
  const cudaError_t e = s.finish(launch(t));
  const std::string d = fmt("rows=%ld dim=%ld res_in=%d res_out=%d w=%s%s", (long)rows, (long)dim, res_in, res_out,
                            dtype_name(wt), inplace ? " in-place" : "");
  if (inplace) report("rms_norm", d, e, {{"out", &cx, &x, kTolF32}, {"residual", &cres, &res, 0.0}});
  else report("rms_norm", d, e, {{"out", &cout, &out, kTolF32}, {"residual_out", &cro, &ro, 0.0}});
}

void case_gated_rms_norm(Rng& r, int64_t rows, int64_t dim, int64_t group, bool gate, DType wt) {
  const int64_t ys = dim + 1, zs = dim + 4, os = dim + 2;
  auto y = rand_vec(r, rows * ys, -2, 2), z = gate ? rand_vec(r, rows * zs, -3, 3) : std::vector<float>{};
  auto out = rand_vec(r, rows * os);
  auto w = rand_typed(r, dim, wt, 0.5f, 1.5f);
  auto cout = out;
  GatedRmsNormArgs a;
  a.rows = rows, a.dim = dim, a.group_size = group, a.y_stride = ys, a.z_stride = zs, a.out_stride = os;
  a.weight_dtype = wt, a.eps = 1e-5f;
  GatedRmsNormArgs c = a;
  c.y = y.data(), c.z = gate ? z.data() : nullptr, c.weight = w.data(), c.out = cout.data();
  nm::gated_rms_norm(c);
  Side s(g_gpu);
  GatedRmsNormArgs t = a;
  t.y = s.put(y), t.z = s.put(z), t.weight = s.put(w), t.out = s.put(out);
  const cudaError_t e = s.finish(launch(t));
  report("gated_rms_norm",
         fmt("rows=%ld dim=%ld group=%ld z=%d w=%s", (long)rows, (long)dim, (long)group, gate, dtype_name(wt)), e,
         {{"out", &cout, &out, kTolF32}});
}

void norm_cases(Rng& r) {
  // Up to 16 rows of up to 4096: a block of 1024 threads per row, the row in
  // registers; more rows, or longer ones: 256 threads.
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {7, 129}, {3, 600}, {2, 768}, {129, 33}, {2, 2049},
                               {1, 4096}, {16, 2048}, {17, 768}, {1, 4097}};
  const DType types[] = {DType::F32, DType::F16, DType::BF16};
  int i = 0;
  for (auto& sh : shapes)
    for (int mode = 0; mode < 4; ++mode) {
      const bool res_in = mode & 1, res_out = mode & 2;
      case_rms_norm(r, sh[0], sh[1], res_in, res_out, types[i++ % 3], false);
    }
  case_rms_norm(r, 7, 129, true, true, DType::F32, true);
  case_rms_norm(r, 3, 600, false, false, DType::BF16, true);
  const int64_t g[][3] = {{1, 8, 8}, {3, 96, 32}, {7, 129, 129}, {2, 600, 120}, {5, 1536, 1536}, {1, 2048, 256}, {4, 7, 1}};
  for (auto& sh : g)
    for (int gate = 0; gate < 2; ++gate) case_gated_rms_norm(r, sh[0], sh[1], sh[2], gate, types[i++ % 3]);

  Side s(g_gpu);
  std::vector<float> buf(64, 1.0f);
  std::vector<uint8_t> w(64, 0);
  RmsNormArgs a;
  a.rows = 1, a.dim = 32, a.x = s.put(buf), a.out = s.put(buf), a.weight = s.put(w), a.x_stride = a.out_stride = 32;
  a.weight_dtype = DType::Q8_0;
  report_reject("rms_norm", "a q8_0 weight", launch(a), cudaErrorNotSupported);
  GatedRmsNormArgs ga;
  ga.rows = 1, ga.dim = 32, ga.group_size = 5, ga.y = a.x, ga.out = a.out, ga.weight = a.weight;
  report_reject("gated_rms_norm", "dim % group_size != 0", launch(ga), cudaErrorInvalidValue);
}

// ---------------------------------------------------------------- conv1d

// Packed sequences of the given lengths (a single one without cu_seqlens
// when `packed` is false).
void case_conv1d(Rng& r, std::vector<int32_t> lens, bool packed, int64_t channels, int64_t W, bool init, bool fin,
                 bool silu, bool bias, DType wt, DType bt) {
  const int64_t nseq = (int64_t)lens.size();
  std::vector<int32_t> cu(1, 0);
  for (int32_t l : lens) cu.push_back(cu.back() + l);
  const int64_t T = cu.back(), xs = channels + 3, os = channels + 1, ws = W + 1;
  const int64_t ics = W == 1 ? 1 : W - 1, fcs = W, iss = channels * ics + 2, fss = channels * fcs + 1;
  auto x = rand_vec(r, T * xs), out = rand_vec(r, T * os);
  auto w = rand_typed(r, channels * ws, wt, -0.5f, 0.5f);
  auto bv = bias ? rand_typed(r, channels, bt) : std::vector<uint8_t>{};
  auto is = init ? rand_vec(r, nseq * iss) : std::vector<float>{};
  auto fs = fin ? rand_vec(r, nseq * fss) : std::vector<float>{};
  auto cout = out, cfs = fs;
  CausalConv1dArgs a;
  a.tokens = T, a.channels = channels, a.width = W, a.nseq = nseq, a.x_stride = xs, a.weight_dtype = wt;
  a.weight_stride = ws, a.bias_dtype = bt, a.init_seq_stride = iss, a.init_ch_stride = ics;
  a.final_seq_stride = fss, a.final_ch_stride = fcs, a.silu = silu, a.out_stride = os;
  CausalConv1dArgs c = a;
  c.cu_seqlens = packed ? cu.data() : nullptr, c.x = x.data(), c.weight = w.data(), c.bias = bias ? bv.data() : nullptr;
  c.initial_state = init ? is.data() : nullptr, c.final_state = fin ? cfs.data() : nullptr, c.out = cout.data();
  nm::causal_conv1d(c);
  Side s(g_gpu);
  CausalConv1dArgs t = a;
  std::vector<int32_t> cu_t = packed ? cu : std::vector<int32_t>{};
  t.cu_seqlens = s.put(cu_t), t.x = s.put(x), t.weight = s.put(w), t.bias = s.put(bv), t.initial_state = s.put(is);
  t.final_state = s.put(fs), t.out = s.put(out);
  const cudaError_t e = s.finish(launch(t));
  std::string ls;
  for (size_t i = 0; i < lens.size() && i < 6; ++i) ls += (i ? "," : "") + std::to_string(lens[i]);
  if (lens.size() > 6) ls += ",..";
  report("causal_conv1d",
         fmt("seqs=[%s]%s ch=%ld W=%ld init=%d final=%d silu=%d bias=%s w=%s", ls.c_str(), packed ? " packed" : "",
             (long)channels, (long)W, init, fin, silu, bias ? dtype_name(bt) : "-", dtype_name(wt)),
         e, {{"out", &cout, &out, silu ? kTolF32 : g_exact}, {"final_state", &cfs, &fs, 0.0}});
}

void case_conv1d_update(Rng& r, int64_t batch, int64_t channels, int64_t W, bool indices, bool silu, bool bias,
                        DType wt, bool contiguous, bool inplace) {
  const int64_t pool = indices ? batch + 3 : batch, xs = channels + 2, os = inplace ? xs : channels + 1;
  const int64_t cs = contiguous ? (W > 1 ? W - 1 : 1) : W + 1, ss = channels * cs + 3, ws = contiguous ? W : W + 2;
  auto x = rand_vec(r, batch * xs), out = inplace ? std::vector<float>{} : rand_vec(r, batch * os);
  auto st = rand_vec(r, pool * ss);
  auto w = rand_typed(r, channels * ws, wt, -0.5f, 0.5f);
  auto bv = bias ? rand_typed(r, channels, wt) : std::vector<uint8_t>{};
  auto idx = indices ? rand_slots(r, batch, pool) : std::vector<int32_t>{};
  auto cx = x, cout = out, cst = st;
  CausalConv1dUpdateArgs a;
  a.batch = batch, a.channels = channels, a.width = W, a.x_stride = xs, a.weight_dtype = wt, a.weight_stride = ws;
  a.bias_dtype = wt, a.state_slot_stride = ss, a.state_ch_stride = cs, a.silu = silu, a.out_stride = os;
  CausalConv1dUpdateArgs c = a;
  c.x = cx.data(), c.weight = w.data(), c.bias = bias ? bv.data() : nullptr, c.conv_state = cst.data();
  c.state_indices = indices ? idx.data() : nullptr, c.out = inplace ? cx.data() : cout.data();
  nm::causal_conv1d_update(c);
  Side s(g_gpu);
  CausalConv1dUpdateArgs t = a;
  t.x = s.put(x), t.weight = s.put(w), t.bias = s.put(bv), t.conv_state = s.put(st), t.state_indices = s.put(idx);
  t.out = inplace ? s.put(x) : s.put(out);
  const cudaError_t e = s.finish(launch(t));
  const std::string d = fmt("batch=%ld ch=%ld W=%ld indices=%d silu=%d bias=%d w=%s state=%s%s", (long)batch,
                            (long)channels, (long)W, indices, silu, bias, dtype_name(wt),
                            contiguous ? "contiguous" : "strided", inplace ? " in-place" : "");
  const double tol = silu ? kTolF32 : g_exact;
  if (inplace) report("causal_conv1d_update", d, e, {{"out", &cx, &x, tol}, {"conv_state", &cst, &st, 0.0}});
  else report("causal_conv1d_update", d, e, {{"out", &cout, &out, tol}, {"conv_state", &cst, &st, 0.0}});
}

void conv_cases(Rng& r) {
  const DType types[] = {DType::F32, DType::F16, DType::BF16};
  int i = 0;
  const int64_t widths[] = {4, 1, 2, 3, 8};
  const int32_t single[] = {1, 7, 129, 600, 2};
  const int64_t chans[] = {1, 7, 129, 33, 600};
  for (int k = 0; k < 5; ++k)
    for (int flags = 0; flags < 4; ++flags) {
      const bool init = flags & 1, fin = flags & 2;
      case_conv1d(r, {single[k]}, false, chans[(k + flags) % 5], widths[(k + flags) % 5], init, fin, (k + flags) & 1,
                  flags != 1, types[i % 3], types[(i + 1) % 3]);
      ++i;
    }
  const std::vector<int32_t> packs[] = {{3, 0, 7, 1, 129, 2}, {600, 1}, {0, 0, 5}, {1, 1, 1, 1, 1, 1, 1}, {2, 3, 64, 7}};
  for (int k = 0; k < 5; ++k)
    for (int flags = 0; flags < 4; ++flags) {
      const bool init = flags & 1, fin = flags & 2;
      case_conv1d(r, packs[k], true, chans[(k + flags + 2) % 5], widths[(k + 2 * flags) % 5], init, fin, flags & 1,
                  true, types[i % 3], types[(i + 2) % 3]);
      ++i;
    }
  case_conv1d(r, {0}, false, 9, 4, true, true, false, true, DType::F32, DType::F32);  // empty: state passes through
  const int64_t batches[] = {1, 3, 7, 16};
  for (int k = 0; k < 5; ++k)
    for (int flags = 0; flags < 4; ++flags) {
      case_conv1d_update(r, batches[(k + flags) % 4], chans[k], widths[(k + flags) % 5], flags & 1, flags & 2,
                         (k + flags) % 3 != 0, types[i % 3], (k + flags) % 2 == 0, false);
      ++i;
    }
  case_conv1d_update(r, 5, 129, 4, true, true, true, DType::F32, true, true);
  case_conv1d_update(r, 2, 64, 3, false, false, false, DType::BF16, false, true);

  Side s(g_gpu);
  std::vector<float> buf(64, 1.0f);
  std::vector<uint8_t> w(256, 0);
  CausalConv1dArgs a;
  a.tokens = 4, a.channels = 8, a.width = 4, a.x = s.put(buf), a.out = s.put(buf), a.weight = s.put(w);
  a.x_stride = a.out_stride = 8, a.weight_stride = 4;
  a.weight_dtype = DType::Q4_0;
  report_reject("causal_conv1d", "a q4_0 weight", launch(a), cudaErrorNotSupported);
  a.weight_dtype = DType::F32, a.width = 9, a.weight_stride = 9;
  report_reject("causal_conv1d", "width 9", launch(a), cudaErrorInvalidValue);
  a.width = 4, a.nseq = 2;
  report_reject("causal_conv1d", "nseq 2 without cu_seqlens", launch(a), cudaErrorInvalidValue);
  CausalConv1dUpdateArgs u;
  u.batch = 1, u.channels = 8, u.width = 0, u.x = a.x, u.out = s.put(buf), u.weight = a.weight, u.conv_state = s.put(buf);
  report_reject("causal_conv1d_update", "width 0", launch(u), cudaErrorInvalidValue);
  u.width = 4, u.weight_stride = 4, u.bias = a.weight, u.bias_dtype = DType::I8;
  report_reject("causal_conv1d_update", "an i8 bias", launch(u), cudaErrorNotSupported);
}

// ---------------------------------------------------------------- selective scan

// chunk / parts: the chunked CUDA scan's tokens per chunk and threads per
// channel (0: its own choice); alias: the initial and last state in one
// buffer (in place); method: ScanTuning::method (0: the kernel's choice,
// 1: chunks, 2: tiles); packed: rows without padding (B / C rows 16-byte
// aligned where N is a multiple of 4: the tile scan's vector loads).
void case_scan(Rng& r, int64_t batch, int64_t L, int64_t dim, int64_t N, int64_t G, bool D, bool z, bool bias,
               bool softplus, bool init, bool last, int64_t chunk = 0, bool alias = false, int parts = 0,
               int method = 0, bool packed = false) {
  const int64_t pad = packed ? 0 : 1;
  const int64_t ts = dim + pad, bs = L * ts + 2 * pad, gts = G * N + pad, gbs = L * gts + 3 * pad;
  auto u = rand_vec(r, batch * bs), delta = rand_vec(r, batch * bs, softplus ? -3.0f : 0.0f, softplus ? 1.0f : 0.2f);
  auto Bv = rand_vec(r, batch * gbs), Cv = rand_vec(r, batch * gbs);
  auto zv = z ? rand_vec(r, batch * bs, -3, 3) : std::vector<float>{};
  auto out = rand_vec(r, batch * bs);
  std::vector<float> A = rand_vec(r, dim * N, -4.0f, 0.0f);
  for (auto& v : A) v = -std::exp(v) * 2.0f;  // negative, as -exp(A_log)
  auto Dv = D ? rand_vec(r, dim) : std::vector<float>{};
  auto bv = bias ? rand_vec(r, dim, -1, 1) : std::vector<float>{};
  const int64_t sbs = dim * N + 5 * pad;
  auto is = init ? rand_vec(r, batch * sbs) : std::vector<float>{};
  auto ls = last ? rand_vec(r, batch * sbs) : std::vector<float>{};
  auto cout = out, cls = ls;
  SelectiveScanArgs a;
  a.batch = batch, a.seqlen = L, a.dim = dim, a.dstate = N, a.ngroups = G;
  a.u_batch_stride = a.delta_batch_stride = a.z_batch_stride = a.out_batch_stride = bs;
  a.u_token_stride = a.delta_token_stride = a.z_token_stride = a.out_token_stride = ts;
  a.B_batch_stride = a.C_batch_stride = gbs, a.B_token_stride = a.C_token_stride = gts;
  a.delta_softplus = softplus, a.initial_state_batch_stride = a.last_state_batch_stride = sbs;
  auto host = [](auto& v) { return v.empty() ? nullptr : v.data(); };
  SelectiveScanArgs c = a;
  c.u = u.data(), c.delta = delta.data(), c.B = Bv.data(), c.C = Cv.data(), c.z = host(zv), c.out = cout.data();
  if (alias) cls = is;
  c.A = A.data(), c.D = host(Dv), c.delta_bias = host(bv), c.initial_state = alias ? cls.data() : host(is);
  c.last_state = host(cls);
  nm::selective_scan(c);
  Side s(g_gpu);
  SelectiveScanArgs t = a;
  t.u = s.put(u), t.delta = s.put(delta), t.B = s.put(Bv), t.C = s.put(Cv), t.z = s.put(zv), t.out = s.put(out);
  t.A = s.put(A), t.D = s.put(Dv), t.delta_bias = s.put(bv);
  if (alias) {
    ls = is;
    t.last_state = s.put(ls), t.initial_state = t.last_state;
  } else {
    t.initial_state = s.put(is), t.last_state = s.put(ls);
  }
  cuda::ScanTuning tune;
  tune.chunk_len = chunk, tune.parts = parts, tune.method = method;
  const cudaError_t e = s.finish(launch(t, tune));
  const char* kernel = cuda::scan_method(a, method) == 2 ? "tiles" : "chunks";
  report("selective_scan",
         fmt("%s batch=%ld L=%ld dim=%ld N=%ld G=%ld D=%d z=%d bias=%d softplus=%d init=%d last=%d chunk=%ld parts=%d%s%s",
             kernel, (long)batch, (long)L, (long)dim, (long)N, (long)G, D, z, bias, softplus, init, last, (long)chunk,
             parts, alias ? " in-place state" : "", packed ? " packed" : ""),
         e, {{"out", &cout, &out, kTolScan}, {"last_state", &cls, &ls, kTolScan}});
}

void case_update(Rng& r, int64_t batch, int64_t H, int64_t P, int64_t N, int64_t G, bool per_state, bool indices,
                 bool D, bool z, bool bias, bool softplus, bool clamp, bool inplace) {
  const int64_t R = H * P, pool = indices ? batch + 2 : batch, sbs = R * N + 3;
  const int64_t xbs = R + 1, zbs = inplace ? xbs : R + 2, obs = inplace ? xbs : R + 3, dtbs = H + 1, gbs = G * N + 2;
  auto st = rand_vec(r, pool * sbs), x = rand_vec(r, batch * xbs);
  auto dt = rand_vec(r, batch * dtbs, softplus ? -3.0f : 0.0f, softplus ? 1.0f : 0.2f);
  auto Bv = rand_vec(r, batch * gbs), Cv = rand_vec(r, batch * gbs);
  auto zv = z ? rand_vec(r, batch * zbs, -3, 3) : std::vector<float>{};
  auto out = inplace ? std::vector<float>{} : rand_vec(r, batch * obs);
  std::vector<float> A = rand_vec(r, per_state ? H * N : H, -4.0f, 0.0f);
  for (auto& v : A) v = -std::exp(v) * 2.0f;
  auto Dv = D ? rand_vec(r, H) : std::vector<float>{};
  auto bv = bias ? rand_vec(r, H) : std::vector<float>{};
  auto idx = indices ? rand_slots(r, batch, pool) : std::vector<int32_t>{};
  auto cst = st, cx = x, cout = out;
  SelectiveStateUpdateArgs a;
  a.batch = batch, a.nheads = H, a.headdim = P, a.dstate = N, a.ngroups = G, a.a_per_state = per_state;
  a.state_batch_stride = sbs, a.x_batch_stride = xbs, a.dt_batch_stride = dtbs, a.B_batch_stride = a.C_batch_stride = gbs;
  a.z_batch_stride = zbs, a.out_batch_stride = obs, a.dt_softplus = softplus;
  if (clamp) a.dt_min = 0.01f, a.dt_max = 0.3f;
  auto host = [](auto& v) { return v.empty() ? nullptr : v.data(); };
  SelectiveStateUpdateArgs c = a;
  c.state = cst.data(), c.state_indices = host(idx), c.x = cx.data(), c.dt = dt.data(), c.B = Bv.data(), c.C = Cv.data();
  c.z = host(zv), c.out = inplace ? cx.data() : cout.data(), c.A = A.data(), c.D = host(Dv), c.dt_bias = host(bv);
  nm::selective_state_update(c);
  Side s(g_gpu);
  SelectiveStateUpdateArgs t = a;
  t.state = s.put(st), t.state_indices = s.put(idx), t.x = s.put(x), t.dt = s.put(dt), t.B = s.put(Bv);
  t.C = s.put(Cv), t.z = s.put(zv), t.out = inplace ? s.put(x) : s.put(out), t.A = s.put(A), t.D = s.put(Dv);
  t.dt_bias = s.put(bv);
  const cudaError_t e = s.finish(launch(t));
  const std::string d = fmt("%s batch=%ld H=%ld P=%ld N=%ld G=%ld idx=%d D=%d z=%d bias=%d softplus=%d clamp=%d%s",
                            per_state ? "mamba1" : "mamba2", (long)batch, (long)H, (long)P, (long)N, (long)G, indices,
                            D, z, bias, softplus, clamp, inplace ? " in-place" : "");
  if (inplace) report("selective_state_update", d, e, {{"out", &cx, &x, kTolF32}, {"state", &cst, &st, kTolF32}});
  else report("selective_state_update", d, e, {{"out", &cout, &out, kTolF32}, {"state", &cst, &st, kTolF32}});
}

// Mamba-2 prefill: packed sequences of the given lengths (empty ones too),
// every option; chunk: the recurrence's tokens per chunk (0: its choice), or
// kSsdChunks for the tensor-core chunks.
constexpr int64_t kSsdChunks = -1;
void case_ssd(Rng& r, const std::vector<int32_t>& lens, int64_t H, int64_t P, int64_t G, int64_t N, bool D, bool z,
              bool bias, bool softplus, bool clamp, bool init, int64_t chunk) {
  std::vector<int32_t> cu(1, 0);
  for (int32_t l : lens) cu.push_back(cu.back() + l);
  const int64_t T = cu.back(), S = (int64_t)lens.size(), dim = H * P;
  const int64_t xs = dim + 3, dts = H + 1, bs = G * N + 2, zs = dim + 1, os = dim + 2;
  auto x = rand_vec(r, T * xs), Bv = rand_vec(r, T * bs), Cv = rand_vec(r, T * bs);
  auto dt = rand_vec(r, T * dts, softplus ? -3.0f : 0.0f, softplus ? 1.0f : 0.2f);
  auto zv = z ? rand_vec(r, T * zs, -3, 3) : std::vector<float>{};
  std::vector<float> A = rand_vec(r, H, -3.0f, 0.5f);
  for (auto& v : A) v = -std::exp(v);
  auto Dv = D ? rand_vec(r, H) : std::vector<float>{};
  auto bv = bias ? rand_vec(r, H) : std::vector<float>{};
  auto is = init ? rand_vec(r, S * dim * N) : std::vector<float>{};
  auto out = rand_vec(r, T * os), fs = rand_vec(r, S * dim * N);
  auto cout = out, cfs = fs;
  SsdChunkScanArgs a;
  a.tokens = T, a.nheads = H, a.headdim = P, a.ngroups = G, a.dstate = N, a.nseq = S, a.chunk_size = 16;
  a.x_stride = xs, a.dt_stride = dts, a.B_stride = a.C_stride = bs, a.z_stride = zs, a.out_stride = os;
  a.dt_softplus = softplus;
  if (clamp) a.dt_min = 0.01f, a.dt_max = 0.5f;
  auto host = [](auto& v) { return v.empty() ? nullptr : v.data(); };
  SsdChunkScanArgs c = a;
  c.x = x.data(), c.dt = dt.data(), c.A = A.data(), c.B = Bv.data(), c.C = Cv.data(), c.D = host(Dv), c.z = host(zv);
  c.dt_bias = host(bv), c.cu_seqlens = cu.data(), c.initial_states = host(is), c.out = cout.data();
  c.final_states = cfs.data();
  nm::ssd_chunk_scan(c);
  Side s(g_gpu);
  SsdChunkScanArgs t = a;
  t.x = s.put(x), t.dt = s.put(dt), t.A = s.put(A), t.B = s.put(Bv), t.C = s.put(Cv), t.D = s.put(Dv), t.z = s.put(zv);
  t.dt_bias = s.put(bv), t.cu_seqlens = s.put(cu), t.initial_states = s.put(is), t.out = s.put(out);
  t.final_states = s.put(fs);
  cuda::SsdTuning tune;
  if (chunk == kSsdChunks) tune.method = 2;
  else tune.method = 1, tune.chunk_len = chunk;
  const cudaError_t e = s.finish(launch(t, tune));
  std::string ls;
  for (int32_t l : lens) ls += (ls.empty() ? "" : ",") + std::to_string(l);
  const std::string how = chunk == kSsdChunks ? "mma chunks" : "chunk=" + std::to_string(chunk);
  report("ssd_chunk_scan",
         fmt("seqs=[%s] H=%ld P=%ld G=%ld N=%ld D=%d z=%d bias=%d softplus=%d clamp=%d init=%d %s", ls.c_str(),
             (long)H, (long)P, (long)G, (long)N, D, z, bias, softplus, clamp, init, how.c_str()),
         e, {{"out", &cout, &out, kTolScan}, {"final_states", &cfs, &fs, kTolScan}});
}

void ssd_cases(Rng& r) {
  // Sequences that start and end inside chunks, empty ones, one token;
  // dstate 128 (8 lanes), 16, 5 and 200 (16 lanes, a partial one).
  case_ssd(r, {37}, 2, 8, 1, 16, true, true, true, true, false, true, 0);
  case_ssd(r, {37}, 2, 8, 1, 16, true, true, true, true, false, true, 8);
  case_ssd(r, {5, 0, 19, 1, 40}, 4, 6, 2, 128, true, true, true, true, true, true, 7);
  case_ssd(r, {5, 0, 19, 1, 40}, 4, 6, 2, 128, false, false, false, false, false, false, 16);
  case_ssd(r, {0, 0, 3}, 3, 4, 3, 5, true, false, true, true, false, true, 2);
  case_ssd(r, {64, 64}, 2, 16, 1, 200, true, true, false, true, true, true, 64);
  case_ssd(r, {130, 7, 0}, 6, 16, 2, 64, true, true, true, true, false, true, 0);
  case_ssd(r, {300}, 24, 8, 1, 128, true, true, true, true, false, false, 32);
  // The tensor-core chunks (64 tokens, restarting per sequence): sequences
  // of one to several chunks with partial last ones, empty ones, 64 and 65
  // tokens; headdim 5 to 128, dstate 5 to 200, several groups.
  case_ssd(r, {37}, 2, 8, 1, 16, true, true, true, true, false, true, kSsdChunks);
  case_ssd(r, {5, 0, 19, 1, 40}, 4, 6, 2, 128, true, true, true, true, true, true, kSsdChunks);
  case_ssd(r, {5, 0, 19, 1, 40}, 4, 6, 2, 128, false, false, false, false, false, false, kSsdChunks);
  case_ssd(r, {0, 0, 3}, 3, 4, 3, 5, true, false, true, true, false, true, kSsdChunks);
  case_ssd(r, {64, 65}, 2, 16, 1, 200, true, true, false, true, true, true, kSsdChunks);
  case_ssd(r, {130, 7, 0, 200}, 6, 16, 2, 64, true, true, true, true, false, true, kSsdChunks);
  case_ssd(r, {300}, 24, 8, 1, 128, true, true, true, true, false, false, kSsdChunks);
  case_ssd(r, {200, 70}, 2, 64, 1, 128, true, true, true, true, false, true, kSsdChunks);
  case_ssd(r, {129}, 2, 128, 1, 64, true, false, true, true, false, false, kSsdChunks);
  case_ssd(r, {100}, 2, 5, 1, 7, false, true, false, false, false, true, kSsdChunks);
  Side s(g_gpu);
  std::vector<float> buf(64, 1.0f);
  std::vector<int32_t> cu = {0, 4};
  SsdChunkScanArgs a;
  a.tokens = 4, a.nheads = 2, a.headdim = 2, a.ngroups = 3, a.dstate = 4, a.nseq = 1;
  a.x = a.dt = a.A = a.B = a.C = s.put(buf), a.out = a.final_states = s.put(buf), a.cu_seqlens = s.put(cu);
  a.x_stride = a.out_stride = 4, a.dt_stride = 2, a.B_stride = a.C_stride = 12;
  report_reject("ssd_chunk_scan", "ngroups 3 for 2 heads", launch(a), cudaErrorInvalidValue);
  a.ngroups = 1, a.dstate = 257, a.B_stride = a.C_stride = 257;
  report_reject("ssd_chunk_scan", "dstate 257", launch(a), cudaErrorInvalidValue);
  a.dstate = 4, a.B_stride = a.C_stride = 4, a.cu_seqlens = nullptr;
  report_reject("ssd_chunk_scan", "no cu_seqlens", launch(a), cudaErrorInvalidValue);
  a.cu_seqlens = s.put(cu), a.headdim = 129;
  std::vector<float> big(4 * 2 * 129, 1.0f), fin(2 * 129 * 4, 0.0f);
  a.x = a.out = s.put(big), a.final_states = s.put(fin), a.x_stride = a.out_stride = 2 * 129;
  cuda::SsdTuning chunks;
  chunks.method = 2;
  report_reject("ssd_chunk_scan", "mma chunks at headdim 129", launch(a, chunks), cudaErrorNotSupported);
}

// ---------------------------------------------------------------- attention

// Sequences with q_lens[s] new tokens and kv_lens[s] positions in the cache,
// pages assigned at random; the cache (f32 or f16) random. Appends the new
// tokens' K / V (compared as cache bytes turned to floats), then attends.
// method: paged_attention_cuda's (0: its choice, 1: a warp per query, 2: tiles).
void case_attention(Rng& r, const std::vector<int32_t>& q_lens, const std::vector<int32_t>& kv_lens, int64_t Hq,
                    int64_t Hkv, int64_t D, int64_t page, DType dt, float scale, int method = 0) {
  const int64_t S = (int64_t)q_lens.size();
  std::vector<int32_t> cu(1, 0), start((size_t)S);
  int64_t maxp = 1, pages = 2;
  for (int64_t s = 0; s < S; ++s) {
    cu.push_back(cu.back() + q_lens[(size_t)s]);
    start[(size_t)s] = kv_lens[(size_t)s] - q_lens[(size_t)s];
    maxp = std::max<int64_t>(maxp, (kv_lens[(size_t)s] + page - 1) / page);
    pages += (kv_lens[(size_t)s] + page - 1) / page;
  }
  const int64_t T = cu.back(), bts = maxp + 1;
  std::vector<int32_t> table((size_t)(S * bts), 0), perm = rand_slots(r, pages, pages);
  int64_t next = 0;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t j = 0; j < (kv_lens[(size_t)s] + page - 1) / page; ++j) table[(size_t)(s * bts + j)] = perm[(size_t)next++];
  const int64_t hs = D + 1, ss = Hkv * hs, ps = page * ss + 3, es = dt == DType::F16 ? 1 : 2;  // es: floats per 2 elements
  const int64_t cache_elems = pages * ps;
  // The cache as floats (f32) or f16 bits packed two per float.
  auto kc = rand_vec(r, dt == DType::F16 ? (cache_elems + 1) / 2 : cache_elems);
  auto vc = rand_vec(r, dt == DType::F16 ? (cache_elems + 1) / 2 : cache_elems);
  if (dt == DType::F16)
    for (auto* v : {&kc, &vc})
      for (auto& f : *v) {
        const uint32_t b = (uint32_t)f32_to_f16(r.uniform(-1, 1)) | ((uint32_t)f32_to_f16(r.uniform(-1, 1)) << 16);
        std::memcpy(&f, &b, 4);
      }
  (void)es;
  const int64_t kts = Hkv * D + 2, qts = Hq * D + 5, ots = Hq * D + 1;
  auto k = rand_vec(r, T * kts), v = rand_vec(r, T * kts), q = rand_vec(r, T * qts), out = rand_vec(r, T * ots);
  auto ckc = kc, cvc = vc, cout = out;
  PagedKvCache c;
  c.dtype = dt, c.num_pages = pages, c.page_size = page, c.n_kv_heads = Hkv, c.head_dim = D;
  c.page_stride = ps, c.slot_stride = ss, c.head_stride = hs;
  KvCacheAppendArgs ap;
  ap.nseq = S, ap.tokens = T, ap.k_stride_tok = ap.v_stride_tok = kts, ap.k_stride_head = ap.v_stride_head = D;
  ap.block_table_stride = bts, ap.max_pages_per_seq = maxp;
  PagedAttentionArgs at;
  at.nseq = S, at.tokens = T, at.n_heads = Hq, at.scale = scale, at.q_stride_tok = qts, at.q_stride_head = D;
  at.out_stride_tok = ots, at.out_stride_head = D, at.block_table_stride = bts, at.max_pages_per_seq = maxp;
  // CPU reference.
  {
    KvCacheAppendArgs a = ap;
    a.cache = c, a.cache.k = ckc.data(), a.cache.v = cvc.data();
    a.k = k.data(), a.v = v.data(), a.cu_seqlens = cu.data(), a.start_pos = start.data(), a.block_table = table.data();
    nm::kv_cache_append(a);
    PagedAttentionArgs b = at;
    b.cache = a.cache, b.q = q.data(), b.out = cout.data(), b.cu_seqlens_q = cu.data(), b.kv_lens = kv_lens.data();
    b.block_table = table.data();
    nm::paged_attention(b);
  }
  Side s(g_gpu);
  KvCacheAppendArgs a = ap;
  a.cache = c, a.cache.k = s.put(kc), a.cache.v = s.put(vc);
  a.k = s.put(k), a.v = s.put(v), a.cu_seqlens = s.put(cu), a.start_pos = s.put(start), a.block_table = s.put(table);
  std::vector<int32_t> kvl = kv_lens;
  PagedAttentionArgs b = at;
  b.cache = a.cache, b.q = s.put(q), b.out = s.put(out), b.cu_seqlens_q = a.cu_seqlens, b.kv_lens = s.put(kvl);
  b.block_table = a.block_table;
  cudaError_t e = launch(a);
  if (e == cudaSuccess) e = launch(b, method);
  e = s.finish(e);
  std::string ql, kl;
  for (int64_t i = 0; i < S; ++i) {
    ql += (i ? "," : "") + std::to_string(q_lens[(size_t)i]);
    kl += (i ? "," : "") + std::to_string(kv_lens[(size_t)i]);
  }
  report("paged_attention",
         fmt("%s q=[%s] kv=[%s] H=%ld/%ld D=%ld page=%ld %s scale=%g (and kv_cache_append)",
             cuda::attention_method(b, method) == 2 ? "tiles" : "warp/query", ql.c_str(), kl.c_str(), (long)Hq,
             (long)Hkv, (long)D, (long)page, dtype_name(dt), scale),
         e, {{"k_cache", &ckc, &kc, 0.0}, {"v_cache", &cvc, &vc, 0.0}, {"out", &cout, &out, kTolF32}});
}

void case_rope(Rng& r, int64_t T, int64_t H, int64_t D, int64_t rot, bool interleaved, double theta) {
  const int64_t hs = D + 2, ts = H * hs + 1;
  auto x = rand_vec(r, T * ts, -2, 2);
  std::vector<int32_t> pos((size_t)T);
  for (auto& p : pos) p = (int32_t)r.below(100000);
  auto cx = x;
  RopeArgs a;
  a.tokens = T, a.n_heads = H, a.head_dim = D, a.x_stride_tok = ts, a.x_stride_head = hs, a.rotary_dim = rot;
  a.theta = theta, a.interleaved = interleaved;
  RopeArgs c = a;
  c.x = cx.data(), c.positions = pos.data();
  nm::rope(c);
  Side s(g_gpu);
  a.x = s.put(x), a.positions = s.put(pos);
  const cudaError_t e = s.finish(launch(a));
  report("rope", fmt("T=%ld H=%ld D=%ld rotary=%ld %s theta=%g", (long)T, (long)H, (long)D, (long)rot,
                     interleaved ? "interleaved" : "neox", theta),
         e, {{"x", &cx, &x, kTolF32}});
}

// ---------------------------------------------------------------- hadamard

// rows x n (a supported size), strided, transform (both directions, in place
// too) and the fused quantization (NaN and Inf rows included): bit for bit.
void case_hadamard(Rng& r, int64_t rows, int64_t n, bool inplace) {
  const int64_t xs = n + 3, os = inplace ? xs : n + 1;
  auto x = rand_vec(r, rows * xs, -3, 3);
  if (rows > 2) x[(size_t)(xs + 1)] = NAN, x[(size_t)(2 * xs + 2)] = INFINITY;
  for (bool tr : {false, true}) {
    auto out = inplace ? x : rand_vec(r, rows * os);
    auto cx = x, cout = out;
    HadamardArgs a;
    a.rows = rows, a.n = n, a.x_stride = xs, a.transpose = tr, a.out_stride = os;
    HadamardArgs c = a;
    c.x = cx.data(), c.out = inplace ? cx.data() : cout.data();
    nm::hadamard_transform(c);
    Side s(g_gpu);
    auto gx = x;
    a.x = s.put(gx), a.out = inplace ? const_cast<float*>(a.x) : s.put(out);
    const cudaError_t e = s.finish(launch(a));
    if (inplace)
      report("hadamard_transform", fmt("rows=%ld n=%ld %s in place", (long)rows, (long)n, tr ? "T^T" : "T"), e,
             {{"x", &cx, &gx, 0.0}});
    else
      report("hadamard_transform", fmt("rows=%ld n=%ld %s", (long)rows, (long)n, tr ? "T^T" : "T"), e,
             {{"out", &cout, &out, 0.0}});
  }
  std::vector<int8_t> q((size_t)(rows * os), 5), cq = q;
  HadamardQuantArgs a;
  a.rows = rows, a.n = n, a.x_stride = xs, a.inv_scale = 7.3f, a.out_stride = os;
  HadamardQuantArgs c = a;
  c.x = x.data(), c.out = cq.data();
  nm::hadamard_quantize(c);
  Side s(g_gpu);
  a.x = s.put(x), a.out = s.put(q);
  const cudaError_t e = s.finish(launch(a));
  std::vector<float> fq(q.begin(), q.end()), fcq(cq.begin(), cq.end());
  report("hadamard_quantize", fmt("rows=%ld n=%ld", (long)rows, (long)n), e, {{"q", &fcq, &fq, 0.0}});
}

void hadamard_cases(Rng& r) {
  for (int64_t n : {1, 2, 8, 12, 24, 40, 80, 256, 768, 1536, 2560, 5120})
    case_hadamard(r, n >= 1536 ? 3 : 5, n, n == 24 || n == 1536);
  Side s(g_gpu);
  std::vector<float> buf(64, 1.0f);
  HadamardArgs a;
  a.rows = 1, a.n = 24 * 3, a.x = s.put(buf), a.out = s.put(buf), a.x_stride = a.out_stride = 72;
  report_reject("hadamard_transform", "n 72", launch(a), cudaErrorInvalidValue);
}

// ---------------------------------------------------------------- int8 SSM

// Per-channel scales of `width` channels, and int8 values [rows, stride].
std::vector<float> rand_scales(Rng& r, int64_t width) { return rand_vec(r, width, 0.003f, 0.05f); }
std::vector<int8_t> rand_q(Rng& r, int64_t n) {
  std::vector<int8_t> q((size_t)n);
  for (auto& v : q) v = (int8_t)((int)r.below(255) - 127);
  return q;
}

void case_q8_quantize(Rng& r, int64_t rows, int64_t C) {
  const int64_t xs = C + 2, qs = C + 3;
  auto x = rand_vec(r, rows * xs, -4, 4);
  if (rows > 1) x[(size_t)(xs + 1)] = NAN, x[2] = 1e9f;
  auto sc = rand_scales(r, C);
  std::vector<int8_t> q((size_t)(rows * qs), 9), cq = q;
  nm::quantize_channels_int8(rows, C, x.data(), xs, sc.data(), cq.data(), qs);
  Side s(g_gpu);
  const float* gx = s.put(x);
  const float* gs = s.put(sc);
  int8_t* gq = s.put(q);
  const cudaError_t e = s.finish(g_gpu ? cuda::quantize_channels_int8_cuda(rows, C, gx, xs, gs, gq, qs, 0)
                                       : cuda::emulate::quantize_channels_int8(rows, C, gx, xs, gs, gq, qs));
  std::vector<float> f(q.begin(), q.end()), cf(cq.begin(), cq.end());
  report("quantize_channels_int8", fmt("rows=%ld C=%ld", (long)rows, (long)C), e, {{"q", &cf, &f, 0.0}});
}

// The int8 conv prefill (one sequence) and the int8 Mamba-1 scan.
void case_q8_conv_scan(Rng& r, int64_t L, int64_t D, int64_t N) {
  // conv: int8 x [L, D], weights [D, 4], bias; int8 out.
  const int64_t W = 4;
  auto xq = rand_q(r, L * (D + 1));
  auto xs = rand_scales(r, D), os = rand_scales(r, D);
  auto w = rand_vec(r, D * W), bias = rand_vec(r, D), st = rand_vec(r, D * (W - 1)), fin = rand_vec(r, D * (W - 1));
  std::vector<int8_t> oq((size_t)(L * D), 0), coq = oq;
  auto cfin = fin;
  CausalConv1dQ8Args a;
  a.conv.tokens = L, a.conv.channels = D, a.conv.width = W, a.conv.nseq = 1, a.conv.weight_stride = W;
  a.conv.init_seq_stride = a.conv.final_seq_stride = D * (W - 1), a.conv.init_ch_stride = a.conv.final_ch_stride = W - 1;
  a.conv.silu = true;
  a.io.xq_stride = D + 1, a.io.outq_stride = D;
  CausalConv1dQ8Args c = a;
  c.conv.weight = w.data(), c.conv.bias = bias.data(), c.conv.initial_state = st.data(), c.conv.final_state = cfin.data();
  c.io.xq = xq.data(), c.io.x_scale = xs.data(), c.io.outq = coq.data(), c.io.out_scale = os.data();
  nm::causal_conv1d_q8(c);
  {
    Side s(g_gpu);
    CausalConv1dQ8Args t = a;
    t.conv.weight = s.put(w), t.conv.bias = s.put(bias), t.conv.initial_state = s.put(st), t.conv.final_state = s.put(fin);
    t.io.xq = s.put(xq), t.io.x_scale = s.put(xs), t.io.outq = s.put(oq), t.io.out_scale = s.put(os);
    const cudaError_t e = s.finish(g_gpu ? cuda::causal_conv1d_q8_cuda(t, 0) : cuda::emulate::causal_conv1d_q8(t));
    std::vector<float> f(oq.begin(), oq.end()), cf(coq.begin(), coq.end());
    // The requantized output may differ by one step where the float conv
    // rounds differently before SiLU (it does not here: same order).
    // out_q: within one quantization step (the device's expf in SiLU may
    // differ from the host's in the last bit); the state is exact.
    report("causal_conv1d_q8", fmt("L=%ld D=%ld", (long)L, (long)D), e,
           {{"out_q", &cf, &f, 1.01 / 127.0}, {"final_state", &cfin, &fin, 0.0}});
  }
  // scan: int8 u [1, L, D], B / C [1, L, N].
  auto uq = rand_q(r, L * D), bq = rand_q(r, L * N), cq = rand_q(r, L * N);
  auto us = rand_scales(r, D), bs = rand_scales(r, N), csc = rand_scales(r, N);
  auto delta = rand_vec(r, L * D, -3, 1), z = rand_vec(r, L * D, -3, 3), out = rand_vec(r, L * D);
  std::vector<float> A = rand_vec(r, D * N, -4.0f, 0.0f);
  for (auto& v : A) v = -std::exp(v) * 2.0f;
  auto Dv = rand_vec(r, D), db = rand_vec(r, D), last = rand_vec(r, D * N);
  auto cout = out, clast = last;
  SelectiveScanQ8Args q;
  q.scan.batch = 1, q.scan.seqlen = L, q.scan.dim = D, q.scan.dstate = N;
  q.scan.delta_batch_stride = q.scan.z_batch_stride = q.scan.out_batch_stride = L * D;
  q.scan.delta_token_stride = q.scan.z_token_stride = q.scan.out_token_stride = D;
  q.scan.delta_softplus = true, q.scan.last_state_batch_stride = D * N;
  q.u.batch_stride = L * D, q.u.token_stride = D, q.B.batch_stride = q.C.batch_stride = L * N;
  q.B.token_stride = q.C.token_stride = N;
  SelectiveScanQ8Args cq8 = q;
  cq8.scan.delta = delta.data(), cq8.scan.z = z.data(), cq8.scan.out = cout.data(), cq8.scan.A = A.data();
  cq8.scan.D = Dv.data(), cq8.scan.delta_bias = db.data(), cq8.scan.last_state = clast.data();
  cq8.u.q = uq.data(), cq8.u.scale = us.data(), cq8.B.q = bq.data(), cq8.B.scale = bs.data(), cq8.C.q = cq.data();
  cq8.C.scale = csc.data();
  nm::selective_scan_q8(cq8);
  Side s(g_gpu);
  SelectiveScanQ8Args t = q;
  t.scan.delta = s.put(delta), t.scan.z = s.put(z), t.scan.out = s.put(out), t.scan.A = s.put(A), t.scan.D = s.put(Dv);
  t.scan.delta_bias = s.put(db), t.scan.last_state = s.put(last);
  t.u.q = s.put(uq), t.u.scale = s.put(us), t.B.q = s.put(bq), t.B.scale = s.put(bs), t.C.q = s.put(cq);
  t.C.scale = s.put(csc);
  const cudaError_t e = s.finish(g_gpu ? cuda::selective_scan_q8_cuda(t, 0) : cuda::emulate::selective_scan_q8(t));
  report("selective_scan_q8", fmt("L=%ld D=%ld N=%ld", (long)L, (long)D, (long)N), e,
         {{"out", &cout, &out, kTolScan}, {"last_state", &clast, &last, kTolScan}});
}

// The int8 Mamba-2 prefill: int8 x [T, H*P], B / C [T, G*N] (token strides).
void case_q8_ssd(Rng& r, const std::vector<int32_t>& lens, int64_t H, int64_t P, int64_t G, int64_t N) {
  std::vector<int32_t> cu(1, 0);
  for (int32_t l : lens) cu.push_back(cu.back() + l);
  const int64_t T = cu.back(), S = (int64_t)lens.size(), dim = H * P, GN = G * N;
  auto xq = rand_q(r, T * (dim + 1)), bq = rand_q(r, T * GN), cq = rand_q(r, T * GN);
  auto xs = rand_scales(r, dim), bs = rand_scales(r, GN), cs = rand_scales(r, GN);
  auto dt = rand_vec(r, T * H, -3, 1), z = rand_vec(r, T * dim, -3, 3), out = rand_vec(r, T * dim);
  std::vector<float> A = rand_vec(r, H, -3.0f, 0.5f);
  for (auto& v : A) v = -std::exp(v);
  auto Dv = rand_vec(r, H), db = rand_vec(r, H), init = rand_vec(r, S * dim * N), fin = rand_vec(r, S * dim * N);
  auto cout = out, cfin = fin;
  SsdChunkScanQ8Args a;
  a.ssd.tokens = T, a.ssd.nheads = H, a.ssd.headdim = P, a.ssd.ngroups = G, a.ssd.dstate = N, a.ssd.nseq = S;
  a.ssd.chunk_size = 16, a.ssd.dt_stride = H, a.ssd.z_stride = a.ssd.out_stride = dim, a.ssd.dt_softplus = true;
  a.x.token_stride = dim + 1, a.B.token_stride = a.C.token_stride = GN;
  SsdChunkScanQ8Args c = a;
  c.ssd.dt = dt.data(), c.ssd.A = A.data(), c.ssd.D = Dv.data(), c.ssd.z = z.data(), c.ssd.dt_bias = db.data();
  c.ssd.cu_seqlens = cu.data(), c.ssd.initial_states = init.data(), c.ssd.out = cout.data();
  c.ssd.final_states = cfin.data();
  c.x.q = xq.data(), c.x.scale = xs.data(), c.B.q = bq.data(), c.B.scale = bs.data(), c.C.q = cq.data();
  c.C.scale = cs.data();
  nm::ssd_chunk_scan_q8(c);
  Side s(g_gpu);
  SsdChunkScanQ8Args t = a;
  t.ssd.dt = s.put(dt), t.ssd.A = s.put(A), t.ssd.D = s.put(Dv), t.ssd.z = s.put(z), t.ssd.dt_bias = s.put(db);
  t.ssd.cu_seqlens = s.put(cu), t.ssd.initial_states = s.put(init), t.ssd.out = s.put(out);
  t.ssd.final_states = s.put(fin);
  t.x.q = s.put(xq), t.x.scale = s.put(xs), t.B.q = s.put(bq), t.B.scale = s.put(bs), t.C.q = s.put(cq);
  t.C.scale = s.put(cs);
  const cudaError_t e = s.finish(g_gpu ? cuda::ssd_chunk_scan_q8_cuda(t, 0) : cuda::emulate::ssd_chunk_scan_q8(t));
  report("ssd_chunk_scan_q8", fmt("T=%ld H=%ld P=%ld G=%ld N=%ld", (long)T, (long)H, (long)P, (long)G, (long)N), e,
         {{"out", &cout, &out, kTolScan}, {"final_states", &cfin, &fin, kTolScan}});
}

// The int8 decode wrappers: the conv update (int8 x and out, a state pool
// with indices) and the state update (Mamba-1: per-state A, headdim 1;
// Mamba-2: scalar A per head, headdim 16, groups), int8 x / B / C with batch
// strides. bc_rows: B and C in one row per batch entry (B | C, as Mamba-1's
// x_proj columns are quantized).
void case_q8_decode(Rng& r, int64_t B, int64_t H, int64_t P, int64_t G, int64_t N, bool mamba1,
                    bool bc_rows = false) {
  const int64_t R = H * P, GN = G * N, W = 4, slots = B + 2;
  {  // conv update over R channels
    auto xq = rand_q(r, B * (R + 3));
    auto xs = rand_scales(r, R), os = rand_scales(r, R);
    auto w = rand_vec(r, R * W), bias = rand_vec(r, R), st = rand_vec(r, slots * R * (W - 1));
    // Distinct slots (two sequences never share one): a stride coprime to
    // the slot count. Shared slots would race on the device.
    int64_t stride = 3;
    while (std::gcd(stride, slots) != 1) stride += 2;
    std::vector<int32_t> idx;
    for (int64_t b = 0; b < B; ++b) idx.push_back((int32_t)((b * stride + 1) % slots));
    std::vector<int8_t> oq((size_t)(B * R), 0), coq = oq;
    auto cst = st;
    CausalConv1dUpdateQ8Args a;
    a.conv.batch = B, a.conv.channels = R, a.conv.width = W, a.conv.weight_stride = W, a.conv.silu = true;
    a.conv.state_slot_stride = R * (W - 1), a.conv.state_ch_stride = W - 1;
    a.io.xq_stride = R + 3, a.io.outq_stride = R;
    CausalConv1dUpdateQ8Args c = a;
    c.conv.weight = w.data(), c.conv.bias = bias.data(), c.conv.conv_state = cst.data(), c.conv.state_indices = idx.data();
    c.io.xq = xq.data(), c.io.x_scale = xs.data(), c.io.outq = coq.data(), c.io.out_scale = os.data();
    nm::causal_conv1d_update_q8(c);
    Side s(g_gpu);
    CausalConv1dUpdateQ8Args t = a;
    t.conv.weight = s.put(w), t.conv.bias = s.put(bias), t.conv.conv_state = s.put(st), t.conv.state_indices = s.put(idx);
    t.io.xq = s.put(xq), t.io.x_scale = s.put(xs), t.io.outq = s.put(oq), t.io.out_scale = s.put(os);
    const cudaError_t e =
        s.finish(g_gpu ? cuda::causal_conv1d_update_q8_cuda(t, 0) : cuda::emulate::causal_conv1d_update_q8(t));
    std::vector<float> f(oq.begin(), oq.end()), cf(coq.begin(), coq.end());
    report("causal_conv1d_update_q8", fmt("batch=%ld C=%ld indices", (long)B, (long)R), e,
           {{"out_q", &cf, &f, 1.01 / 127.0}, {"conv_state", &cst, &st, 0.0}});
  }
  auto xq = rand_q(r, B * (R + 5)), bq = rand_q(r, B * GN * (bc_rows ? 2 : 1)), cq = rand_q(r, bc_rows ? 0 : B * GN);
  auto xs = rand_scales(r, R), bs = rand_scales(r, GN), cs = rand_scales(r, GN);
  const int64_t c_off = bc_rows ? GN : 0;  // C's offset in its rows
  auto dt = rand_vec(r, B * H, -3, 1), z = rand_vec(r, B * R, -3, 3), out = rand_vec(r, B * R);
  std::vector<float> A = rand_vec(r, mamba1 ? H * N : H, -3.0f, 0.5f);
  for (auto& v : A) v = -std::exp(v);
  auto Dv = rand_vec(r, H), db = rand_vec(r, H), st = rand_vec(r, slots * R * N);
  std::vector<int32_t> idx;
  for (int64_t b = 0; b < B; ++b) idx.push_back((int32_t)(slots - 1 - b));  // distinct, reversed
  auto cout = out, cst = st;
  SelectiveStateUpdateQ8Args a;
  a.upd.batch = B, a.upd.nheads = H, a.upd.headdim = P, a.upd.dstate = N, a.upd.ngroups = G, a.upd.a_per_state = mamba1;
  a.upd.state_batch_stride = R * N, a.upd.dt_batch_stride = H, a.upd.z_batch_stride = a.upd.out_batch_stride = R;
  a.upd.dt_softplus = true;
  a.x.batch_stride = R + 5, a.B.batch_stride = a.C.batch_stride = bc_rows ? 2 * GN : GN;
  SelectiveStateUpdateQ8Args c = a;
  c.upd.state = cst.data(), c.upd.state_indices = idx.data(), c.upd.dt = dt.data(), c.upd.z = z.data();
  c.upd.out = cout.data(), c.upd.A = A.data(), c.upd.D = Dv.data(), c.upd.dt_bias = db.data();
  c.x.q = xq.data(), c.x.scale = xs.data(), c.B.q = bq.data(), c.B.scale = bs.data();
  c.C.q = (bc_rows ? bq.data() : cq.data()) + c_off, c.C.scale = cs.data();
  nm::selective_state_update_q8(c);
  Side s(g_gpu);
  SelectiveStateUpdateQ8Args t = a;
  t.upd.state = s.put(st), t.upd.state_indices = s.put(idx), t.upd.dt = s.put(dt), t.upd.z = s.put(z);
  t.upd.out = s.put(out), t.upd.A = s.put(A), t.upd.D = s.put(Dv), t.upd.dt_bias = s.put(db);
  t.x.q = s.put(xq), t.x.scale = s.put(xs), t.B.q = s.put(bq), t.B.scale = s.put(bs);
  t.C.q = (bc_rows ? t.B.q : s.put(cq)) + c_off, t.C.scale = s.put(cs);
  const cudaError_t e =
      s.finish(g_gpu ? cuda::selective_state_update_q8_cuda(t, 0) : cuda::emulate::selective_state_update_q8(t));
  report("selective_state_update_q8",
         fmt("batch=%ld H=%ld P=%ld G=%ld N=%ld %s%s", (long)B, (long)H, (long)P, (long)G, (long)N,
             mamba1 ? "mamba1" : "mamba2", bc_rows ? " B|C rows" : ""),
         e, {{"out", &cout, &out, kTolScan}, {"state", &cst, &st, kTolScan}});
}

void q8_cases(Rng& r) {
  case_q8_decode(r, 3, 129, 1, 1, 16, true);
  case_q8_decode(r, 5, 6, 16, 2, 64, false);
  case_q8_decode(r, 1, 24, 64, 1, 128, false);
  case_q8_decode(r, 4, 96, 1, 1, 16, true, true);

  // An int8 operand without its scales is refused before any launch.
  Side s(g_gpu);
  std::vector<float> buf(64, 1.0f);
  std::vector<int8_t> q(64, 1), oq(64, 0);
  CausalConv1dUpdateQ8Args u;
  u.conv.batch = 1, u.conv.channels = 8, u.conv.width = 4, u.conv.weight_stride = 4;
  u.conv.weight = s.put(buf), u.conv.conv_state = s.put(buf), u.conv.state_slot_stride = 24, u.conv.state_ch_stride = 3;
  u.io.xq = s.put(q), u.io.xq_stride = 8, u.io.x_scale = s.put(buf), u.io.outq = s.put(oq), u.io.outq_stride = 8;
  report_reject("causal_conv1d_update_q8", "no output scales",
                g_gpu ? cuda::causal_conv1d_update_q8_cuda(u, 0) : cuda::emulate::causal_conv1d_update_q8(u),
                cudaErrorInvalidValue);
  SelectiveStateUpdateQ8Args v;
  v.upd.batch = 1, v.upd.nheads = 8, v.upd.dstate = 4;
  v.upd.state = v.upd.out = s.put(buf), v.upd.dt = v.upd.A = v.upd.state;
  v.x = {u.io.xq, 8, 0, u.io.x_scale}, v.B = v.x, v.C = {u.io.xq, 8, 0, nullptr};
  report_reject("selective_state_update_q8", "C without scales",
                g_gpu ? cuda::selective_state_update_q8_cuda(v, 0) : cuda::emulate::selective_state_update_q8(v),
                cudaErrorInvalidValue);
  case_q8_ssd(r, {40, 0, 90}, 4, 8, 2, 64);
  case_q8_quantize(r, 5, 37);
  case_q8_quantize(r, 64, 1536);
  case_q8_conv_scan(r, 37, 48, 16);
  case_q8_conv_scan(r, 300, 129, 16);
}

void attention_cases(Rng& r) {
  case_attention(r, {1}, {1}, 2, 1, 8, 4, DType::F32, 0.35f);
  case_attention(r, {5, 1, 3}, {5, 9, 40}, 4, 2, 64, 16, DType::F16, 0.125f);
  case_attention(r, {17, 1}, {17, 70}, 6, 3, 100, 7, DType::F32, 0.1f);
  case_attention(r, {1, 1, 1, 1}, {33, 1, 64, 257}, 8, 8, 128, 16, DType::F16, 0.0884f);
  case_attention(r, {40}, {100}, 3, 1, 256, 32, DType::F32, 0.0625f);
  // Decode over long contexts: each (query, head) over 8 warps' key ranges (fewer keys than warps too).
  case_attention(r, {1, 1, 1}, {3001, 700, 5}, 8, 2, 128, 16, DType::F16, 0.0884f);
  case_attention(r, {1}, {2048}, 12, 4, 64, 64, DType::F32, 0.125f, 1);
  // Both kernels where both apply; the tiles at prefill shapes: several
  // tiles of keys and of queries, a block's queries from three sequences
  // (one without queries), head_dim not a multiple of 4, head_dim 1.
  case_attention(r, {5, 1, 3}, {5, 9, 40}, 4, 2, 64, 16, DType::F16, 0.125f, 2);
  case_attention(r, {17, 1}, {17, 70}, 6, 3, 100, 7, DType::F32, 0.1f, 1);
  case_attention(r, {1, 1, 1, 1}, {33, 1, 64, 257}, 8, 8, 128, 16, DType::F16, 0.0884f, 2);
  case_attention(r, {100}, {100}, 8, 2, 128, 16, DType::F16, 0.0884f, 2);
  case_attention(r, {70, 0, 33}, {90, 5, 33}, 4, 4, 64, 16, DType::F32, 0.125f, 2);
  case_attention(r, {257}, {300}, 2, 1, 99, 32, DType::F32, 0.1f, 2);
  case_attention(r, {13, 2, 40}, {13, 50, 41}, 3, 1, 1, 5, DType::F32, 0.5f, 2);
  case_attention(r, {64}, {64}, 4, 2, 128, 16, DType::F32, 0.0884f, 1);
  case_rope(r, 7, 3, 64, 64, false, 10000.0);
  case_rope(r, 5, 4, 96, 32, false, 500000.0);
  case_rope(r, 9, 2, 64, 64, true, 10000.0);
  Side s(g_gpu);
  std::vector<float> buf(64, 1.0f);
  RopeArgs a;
  a.tokens = 1, a.n_heads = 1, a.head_dim = 8, a.x = s.put(buf), a.rotary_dim = 3;
  std::vector<int32_t> pos = {0};
  a.positions = s.put(pos);
  report_reject("rope", "an odd rotary_dim", launch(a), cudaErrorInvalidValue);
  PagedAttentionArgs p;
  p.tokens = 1, p.nseq = 1, p.n_heads = 2, p.cache.dtype = DType::BF16, p.cache.num_pages = 1, p.cache.page_size = 1;
  p.cache.n_kv_heads = 1, p.cache.head_dim = 8;
  report_reject("paged_attention", "a bf16 cache", launch(p), cudaErrorNotSupported);
  p.cache.dtype = DType::F32, p.cache.head_dim = 300;
  report_reject("paged_attention", "head_dim 300", launch(p), cudaErrorInvalidValue);
}

void scan_cases(Rng& r) {
  // batch, L, dim, N, G
  const int64_t shapes[][5] = {{1, 1, 7, 16, 1},   {2, 7, 33, 16, 3},  {1, 129, 129, 16, 1}, {1, 600, 24, 16, 2},
                               {2, 129, 7, 5, 7},   {1, 7, 9, 1, 1},    {1, 33, 17, 64, 1},   {1, 20, 5, 256, 1},
                               {3, 0, 8, 16, 1}};
  int i = 0;
  for (auto& sh : shapes)
    for (int flags = 0; flags < 3; ++flags, ++i) {
      const bool all = flags == 0, none = flags == 2;
      // Chunks of the CUDA scan: its own choice, then several uneven ones.
      const int64_t chunk = flags == 1 ? sh[1] / 3 + 1 : 0;
      for (int method : {1, 2})
        case_scan(r, sh[0], sh[1], sh[2], sh[3], sh[4], !none && (i & 1) == 0, all || (i % 3 == 1), all,
                  !none, all || (i & 2), !none, chunk, false, 0, method);
    }
  // The tile scan: tokens past several tiles (256 each) and a partial last
  // one, one token, channels past a multiple of 8 and groups that start
  // inside a block, states past a multiple of 4 and the most (256), the
  // state in place, rows packed (16-byte B / C loads on the device).
  case_scan(r, 1, 1000, 64, 16, 1, true, true, true, true, true, true, 0, false, 0, 2, true);
  case_scan(r, 2, 513, 44, 8, 11, true, true, true, true, true, true, 0, true, 0, 2, true);
  case_scan(r, 1, 257, 19, 7, 1, true, true, false, true, true, true, 0, true, 0, 2, false);
  case_scan(r, 3, 1, 24, 16, 3, true, false, true, true, true, true, 0, false, 0, 2, true);
  case_scan(r, 1, 300, 16, 256, 1, true, true, true, true, true, true, 0, true, 0, 2, true);
  case_scan(r, 1, 777, 8, 12, 2, false, true, false, true, false, true, 0, false, 0, 2, true);
  // One token per chunk; a state updated in place across chunks; the
  // automatic choice at a shape that takes several chunks (10 of 64 tokens).
  case_scan(r, 2, 9, 33, 16, 3, true, true, true, true, true, true, 1);
  case_scan(r, 1, 130, 40, 16, 2, true, true, true, true, true, true, 7, true);
  case_scan(r, 2, 77, 9, 5, 1, true, false, true, true, true, true, 16, true);
  case_scan(r, 1, 600, 24, 16, 2, true, true, true, true, true, true, 0, true);
  // One thread per channel where two is the default, and the reverse refused.
  case_scan(r, 2, 129, 33, 16, 3, true, true, true, true, true, true, 0, false, 1);
  case_scan(r, 1, 77, 40, 16, 1, true, true, true, true, true, true, 9, true, 1);
  // batch, H, P, N, G, per_state
  const int64_t up[][6] = {{1, 7, 1, 16, 1, 1},  {3, 129, 1, 16, 1, 1},  {2, 600, 1, 5, 3, 1},  {16, 33, 1, 16, 11, 1},
                           {1, 3, 7, 16, 1, 0},  {4, 24, 64, 128, 1, 0}, {3, 6, 5, 128, 3, 0}, {2, 5, 64, 1, 5, 0},
                           {1, 24, 64, 128, 1, 0}};
  for (auto& u : up)
    for (int flags = 0; flags < 3; ++flags, ++i) {
      const bool all = flags == 0, none = flags == 2;
      case_update(r, u[0], u[1], u[2], u[3], u[4], u[5] != 0, !none, !none, all || (i & 1), !none, !none,
                  all && !u[5], false);
    }
  case_update(r, 3, 24, 8, 16, 1, false, true, true, true, true, true, true, true);
  case_update(r, 2, 17, 1, 16, 1, true, false, true, true, true, true, false, true);

  Side s(g_gpu);
  std::vector<float> buf(1024, 1.0f);
  SelectiveScanArgs a;
  a.batch = 1, a.seqlen = 1, a.dim = 2, a.dstate = 257, a.u = a.delta = a.B = a.C = a.A = s.put(buf);
  a.out = s.put(buf);
  report_reject("selective_scan", "dstate 257", launch(a), cudaErrorInvalidValue);
  a.dstate = 4, a.ngroups = 3;
  report_reject("selective_scan", "ngroups 3 for dim 2", launch(a), cudaErrorInvalidValue);
  a.ngroups = 1;
  cuda::ScanTuning two;
  two.parts = 2;
  report_reject("selective_scan", "2 threads per channel for dstate 4", launch(a, two), cudaErrorInvalidValue);
  cuda::ScanTuning neg;
  neg.chunk_len = -1;
  report_reject("selective_scan", "chunk length -1", launch(a, neg), cudaErrorInvalidValue);
  SelectiveStateUpdateArgs u;
  u.batch = 1, u.nheads = 4, u.headdim = 2, u.dstate = 4, u.ngroups = 3;
  u.state = u.out = s.put(buf), u.x = u.dt = u.B = u.C = u.A = u.state;
  report_reject("selective_state_update", "ngroups 3 for 4 heads", launch(u), cudaErrorInvalidValue);
}

// ---------------------------------------------------------------- linear / qlinear

// N rows of a Q8_0 / Q4_0 weight, rows `ws` elements apart (multiples of 32).
std::vector<uint8_t> rand_blocks(Rng& r, int64_t N, int64_t ws, DType t) {
  const int64_t bb = dtype_block_bytes(t), nb = N * ws / kQuantBlock;
  std::vector<uint8_t> v((size_t)(nb * bb));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* p = v.data() + b * bb;
    const uint16_t d = f32_to_f16(r.uniform(0.002f, 0.03f));
    std::memcpy(p, &d, 2);
    for (int64_t j = 2; j < bb; ++j) p[j] = (uint8_t)r.below(256);
  }
  return v;
}

const char* rounding_name(ActRounding m) {
  return m == ActRounding::None ? "none" : m == ActRounding::BF16 ? "bf16" : "q8block";
}

// `pad`: extra elements between rows of x (and of w, rounded up to a block
// for the block formats), so that the device takes its element-wise loads.
// Rows of x gathered by x_rows (LinearArgs / QLinearArgs::x_rows, the
// mixture-of-experts dispatch's tokens): M indices into a buffer of M + 3
// rows, out of order and with a repeat. Empty when `gather` is false.
std::vector<int32_t> gather_rows(int64_t M, bool gather) {
  std::vector<int32_t> rows;
  if (!gather) return rows;
  for (int64_t m = 0; m < M; ++m) rows.push_back((int32_t)((7 * m + 2) % (M + 3)));
  if (M > 2) rows[(size_t)(M - 1)] = rows[0];
  return rows;
}

// `range`: 1, row 0 of x scaled by 3e5 (beyond f16's range); 2, every row
// by 1e-7 (below f16's normals): the f16 tensor-core GEMM's per-row scaling.
void case_linear(Rng& r, int64_t M, int64_t K, int64_t N, DType wt, ActRounding mode, bool bias, DType bt, int64_t pad,
                 bool gather = false, int range = 0) {
  if (skipped("linear")) return;
  const bool tensor_cores = M > kLinearGemvRows && ((wt == DType::BF16 && mode == ActRounding::BF16) ||
                                                    (wt == DType::F16 && mode == ActRounding::None));
  const bool blocks = wt == DType::Q8_0 || wt == DType::Q4_0;
  const int64_t xs = K + pad, ws = blocks ? K + (pad ? 32 : 0) : K + pad, ys = N + 2;
  // Rows of W 16-byte aligned: the pipelined mma.sync GEMM (emulated lane by
  // lane); else the WMMA one, which has no host emulation.
  if (tensor_cores && wt == DType::BF16 && !g_gpu && ws % 8 != 0) {
    std::printf("skip linear                   M=%ld K=%ld N=%ld w=%s strided: the WMMA GEMM runs on a GPU only\n",
                (long)M, (long)K, (long)N, dtype_name(wt));
    return;
  }
  auto xr = gather_rows(M, gather);
  auto x = rand_vec(r, (gather ? M + 3 : M) * xs, -2, 2), y = rand_vec(r, M * ys);
  if (M > 1 && K > 5) x[(size_t)(xs + 5)] = 0.0f;  // a zero, and a zero block below
  if (M > 2 && K >= 32)
    for (int64_t k = 0; k < 32; ++k) x[(size_t)(2 * xs + k)] = 0.0f;
  if (range == 1)
    for (int64_t k = 0; k < K; ++k) x[(size_t)k] *= 3e5f;
  if (range == 2) {  // y too (its padding counts in the error's scale)
    for (float& v : x) v *= 1e-7f;
    for (float& v : y) v *= 1e-7f;
  }
  auto w = blocks ? rand_blocks(r, N, ws, wt) : rand_typed(r, N * ws, wt, -0.5f, 0.5f);
  auto bv = bias ? rand_typed(r, N, bt) : std::vector<uint8_t>{};
  auto cy = y;
  LinearArgs a;
  a.M = M, a.N = N, a.K = K, a.x_stride = xs, a.w_stride = ws, a.w_dtype = wt, a.bias_dtype = bt, a.y_stride = ys;
  a.x_rounding = mode;
  LinearArgs c = a;
  c.x = x.data(), c.w = w.data(), c.bias = bias ? bv.data() : nullptr, c.y = cy.data();
  c.x_rows = gather ? xr.data() : nullptr;
  nm::linear(c);
  Side s(g_gpu);
  LinearArgs t = a;
  t.x = s.put(x), t.w = s.put(w), t.bias = s.put(bv), t.y = s.put(y);
  t.x_rows = gather ? s.put(xr) : nullptr;
  const cudaError_t e = s.finish(launch(t));
  report("linear", fmt("M=%ld K=%ld N=%ld w=%s x=%s bias=%s%s%s%s", (long)M, (long)K, (long)N, dtype_name(wt),
                       rounding_name(mode), bias ? dtype_name(bt) : "-", pad ? " strided" : "",
                       gather ? " gathered" : "", range == 1 ? " row0x3e5" : range == 2 ? " x1e-7" : ""),
         e, {{"y", &cy, &y, tensor_cores ? kTolGemm : kTolF32}});
}

// Scheme by weight and input: I8 + int8 in (W8A8), I4 + int8 in (W4A8), I4
// + float in (W4A16). `pre`: inputs already quantized (xq); `nan_row`: a
// NaN in row 1 of float inputs.
void case_qlinear(Rng& r, int64_t M, int64_t K, int64_t N, DType wt, bool int8_in, bool pre, bool bias, DType bt,
                  int64_t pad, bool nan_row, bool gather = false) {
  if (skipped("qlinear")) return;
  const int64_t G = (K + kI4Group - 1) / kI4Group;
  const int64_t row = wt == DType::I8 ? K : dtype_row_bytes(DType::I4, K), ws = row + pad;
  const int64_t xs = K + pad, ys = N + 1;
  const float xscale = int8_in ? 0.0157f : 0.0f;
  auto xr = gather_rows(M, gather && !pre);  // x_rows gathers float inputs only
  auto x = rand_vec(r, (xr.empty() ? M : M + 3) * xs, -2, 2), y = rand_vec(r, M * ys);
  if (nan_row && K > 3) x[(size_t)((M > 1 ? xs : 0) + 3)] = NAN;  // row 1, or the only row
  if (M > 0 && K > 0) x[0] = 100.0f;  // clamps to 127
  std::vector<int8_t> xq;
  if (pre) {
    xq.resize((size_t)(M * xs));
    for (auto& q : xq) q = (int8_t)(r.below(255) - 127);
  }
  std::vector<uint8_t> w((size_t)(N * ws));
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* p = w.data() + n * ws;
    for (int64_t b = 0; b < ws; ++b) p[b] = (uint8_t)r.below(256);
    if (wt == DType::I8) {
      for (int64_t k = 0; k < K; ++k) p[k] = (uint8_t)(int8_t)(r.below(255) - 127);
    } else {  // nibbles past K hold 8 (q = 0)
      for (int64_t k = K; k < row * 2; ++k) {
        uint8_t& b = p[(k / kI4Chunk) * (kI4Chunk / 2) + (k % kI4Chunk) % 32];
        b = (k % kI4Chunk) < 32 ? (uint8_t)((b & 0xf0) | 8) : (uint8_t)((b & 0x0f) | 0x80);
      }
    }
  }
  auto sc = rand_vec(r, wt == DType::I8 ? N : N * G, 0.001f, 0.02f);
  auto bv = bias ? rand_typed(r, N, bt) : std::vector<uint8_t>{};
  auto cy = y;
  QLinearArgs a;
  a.M = M, a.N = N, a.K = K, a.x_stride = xs, a.xq_stride = xs, a.x_scale = xscale, a.w_stride = ws, a.w_dtype = wt;
  a.bias_dtype = bt, a.y_stride = ys;
  QLinearArgs c = a;
  c.x = x.data(), c.xq = pre ? xq.data() : nullptr, c.w = w.data(), c.w_scales = sc.data();
  c.bias = bias ? bv.data() : nullptr, c.y = cy.data();
  c.x_rows = xr.empty() ? nullptr : xr.data();
  nm::qlinear(c);
  Side s(g_gpu);
  QLinearArgs t = a;
  t.x = s.put(x), t.xq = s.put(xq), t.w = s.put(w), t.w_scales = s.put(sc), t.bias = s.put(bv), t.y = s.put(y);
  t.x_rows = xr.empty() ? nullptr : s.put(xr);
  const cudaError_t e = s.finish(launch(t));
  const char* scheme = wt == DType::I8 ? "w8a8" : int8_in ? "w4a8" : "w4a16";
  report(int8_in ? (wt == DType::I8 ? "qlinear w8a8" : "qlinear w4a8") : "qlinear w4a16",
         fmt("M=%ld K=%ld N=%ld %s x=%s bias=%s%s%s%s", (long)M, (long)K, (long)N, scheme,
             int8_in ? (pre ? "int8" : "f32->int8") : "f32", bias ? dtype_name(bt) : "-", pad ? " strided" : "",
             nan_row ? " nan-row" : "", xr.empty() ? "" : " gathered"),
         e, {{"y", &cy, &y, int8_in ? 0.0 : M > kLinearGemvRows ? kTolGemm : kTolF32}});
}

void linear_cases(Rng& r) {
  const int64_t Ms[] = {1, 2, 3, 8, 16};
  const int64_t Ns[] = {1, 7, 33, 1000};
  const int64_t Ks[] = {32, 64, 96, 768, 1000, 1024, 1};
  const DType wts[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};
  const DType bts[] = {DType::F32, DType::F16, DType::BF16};
  const ActRounding modes[] = {ActRounding::None, ActRounding::BF16, ActRounding::Q8Block};
  int i = 0;
  for (DType wt : wts)
    for (ActRounding mode : modes)
      for (int k = 0; k < 7; ++k, ++i) {
        const int64_t K = Ks[k];
        if ((wt == DType::Q8_0 || wt == DType::Q4_0) && K % 32 != 0) continue;
        const int64_t N = K >= 768 && i % 3 == 0 ? 1000 : Ns[i % 3];
        case_linear(r, Ms[i % 5], K, N, wt, mode, i % 2 == 0, bts[i % 3], i % 4 == 1 ? 3 : 0);
      }
  case_linear(r, 16, 2048, 33, DType::BF16, ActRounding::BF16, true, DType::BF16, 0);
  // Split K (N <= 1024, K >= 1024: four warps per row): a Mamba x_proj's
  // shape, K not a multiple of the chunk, one row, gathered rows.
  case_linear(r, 1, 4096, 160, DType::F16, ActRounding::None, false, DType::F32, 0);
  case_linear(r, 3, 1030, 9, DType::F32, ActRounding::None, true, DType::F32, 3);
  case_linear(r, 5, 1024, 1, DType::BF16, ActRounding::BF16, true, DType::F16, 0, true);
  case_linear(r, 4, 0, 7, DType::F32, ActRounding::None, true, DType::F32, 0);  // K = 0: y = bias
  // More than 16 rows: the tensor-core GEMM (bf16 weights, bf16 rounding):
  // edges in M, N and K, strided rows, every bias type.
  case_linear(r, 17, 32, 8, DType::BF16, ActRounding::BF16, false, DType::F32, 0);
  case_linear(r, 130, 100, 129, DType::BF16, ActRounding::BF16, true, DType::F32, 3);
  case_linear(r, 300, 768, 200, DType::BF16, ActRounding::BF16, true, DType::BF16, 0);
  case_linear(r, 257, 2304, 385, DType::BF16, ActRounding::BF16, true, DType::F16, 1);
  // The pipelined mma.sync GEMM (rows of W 16-byte aligned): K not a multiple
  // of 8 or of the 32-wide k tile (partial copies), gathered rows.
  case_linear(r, 130, 100, 129, DType::BF16, ActRounding::BF16, true, DType::F32, 4);
  case_linear(r, 257, 200, 385, DType::BF16, ActRounding::BF16, false, DType::F32, 0);
  case_linear(r, 140, 64, 70, DType::BF16, ActRounding::BF16, true, DType::BF16, 0, true);
  // f16 weights with float inputs on the f16 tensor cores (rows of W 16-byte
  // aligned; inputs split in two f16 terms): inputs beyond and below f16's
  // range, a partial group of 8 rows, K not a multiple of 8, gathered rows.
  case_linear(r, 300, 768, 385, DType::F16, ActRounding::None, true, DType::F16, 0, false, 1);
  case_linear(r, 17, 100, 9, DType::F16, ActRounding::None, false, DType::F32, 4, false, 2);
  case_linear(r, 140, 2048, 130, DType::F16, ActRounding::None, true, DType::BF16, 0, true);
  case_linear(r, 129, 37, 200, DType::F16, ActRounding::None, false, DType::F32, 3);
  // Q8_0 / Q4_0 weights with Q8Block inputs on the int8 tensor cores: several
  // block tiles, a half k tile at the end (K = 96), strided block rows,
  // gathered rows.
  case_linear(r, 300, 1024, 385, DType::Q8_0, ActRounding::Q8Block, true, DType::F16, 3);
  case_linear(r, 257, 96, 200, DType::Q4_0, ActRounding::Q8Block, false, DType::F32, 0);
  case_linear(r, 140, 2048, 130, DType::Q4_0, ActRounding::Q8Block, true, DType::BF16, 0, true);
  case_linear(r, 17, 32, 9, DType::Q8_0, ActRounding::Q8Block, false, DType::F32, 0);
  // More than 16 rows on the CUDA cores (the SIMT GEMM): every other format
  // and rounding, edges in M, N and K, strided rows.
  case_linear(r, 17, 40, 9, DType::F32, ActRounding::None, true, DType::F32, 0);
  case_linear(r, 70, 129, 65, DType::F16, ActRounding::None, false, DType::F32, 3);
  case_linear(r, 130, 96, 33, DType::BF16, ActRounding::None, true, DType::BF16, 1);
  case_linear(r, 65, 256, 130, DType::Q8_0, ActRounding::Q8Block, true, DType::F16, 0);
  case_linear(r, 33, 320, 64, DType::Q4_0, ActRounding::None, false, DType::F32, 2);
  case_linear(r, 200, 768, 96, DType::Q4_0, ActRounding::Q8Block, false, DType::F32, 0);
  case_linear(r, 18, 1000, 70, DType::F32, ActRounding::BF16, false, DType::F32, 0);
  // Gathered rows (x_rows, as the MoE dispatch passes one expert's tokens):
  // GEMV, span kernel, SIMT GEMM and tensor-core GEMM.
  case_linear(r, 5, 96, 33, DType::F32, ActRounding::None, true, DType::F32, 0, true);
  case_linear(r, 3, 100, 7, DType::F16, ActRounding::BF16, false, DType::F32, 3, true);
  case_linear(r, 7, 768, 40, DType::Q8_0, ActRounding::Q8Block, false, DType::F32, 0, true);
  case_linear(r, 2, 512, 9, DType::Q4_0, ActRounding::None, true, DType::F16, 0, true);
  case_linear(r, 40, 129, 33, DType::F32, ActRounding::None, true, DType::F32, 1, true);
  case_linear(r, 33, 256, 20, DType::Q8_0, ActRounding::Q8Block, false, DType::F32, 0, true);
  case_linear(r, 50, 96, 40, DType::BF16, ActRounding::BF16, true, DType::F32, 0, true);
  // Q8_0 / Q4_0 with K a multiple of 256 (the shared-memory span kernel):
  // partial and whole spans, padded rows (then the plain kernel), rounding.
  for (DType wt : {DType::Q8_0, DType::Q4_0}) {
    case_linear(r, 3, 256, 7, wt, ActRounding::None, true, DType::F16, 0);
    case_linear(r, 16, 1280, 5, wt, ActRounding::Q8Block, false, DType::F32, 3);
    case_linear(r, 2, 2304, 33, wt, ActRounding::None, true, DType::F32, 0);
    case_linear(r, 5, 512, 9, wt, ActRounding::None, false, DType::F32, 1);
  }

  const int64_t qK[] = {32, 64, 96, 768, 1000, 129, 2048};
  for (int scheme = 0; scheme < 3; ++scheme)
    for (int k = 0; k < 7; ++k, ++i) {
      const DType wt = scheme == 0 ? DType::I8 : DType::I4;
      const bool int8_in = scheme < 2;
      const int64_t N = qK[k] >= 768 && i % 2 == 0 ? 1000 : Ns[i % 3];
      case_qlinear(r, Ms[i % 5], qK[k], N, wt, int8_in, int8_in && k % 3 == 2, i % 2 == 0, bts[i % 3],
                   i % 4 == 1 ? 5 : 0, int8_in && k % 3 == 1);
    }
  for (int64_t M : Ms) case_qlinear(r, M, 768, 33, DType::I4, true, false, true, DType::F32, 0, true);
  for (int64_t M : Ms) case_qlinear(r, M, 1000, 7, DType::I8, true, false, false, DType::F32, 16, M == 3);
  // More than 16 rows: the quantized GEMM (prefill), each scheme, edges in
  // M, N and K (partial W4A8 groups), NaN rows, given int8 inputs, strides.
  case_qlinear(r, 17, 128, 9, DType::I8, true, false, true, DType::F32, 0, true);
  case_qlinear(r, 70, 300, 65, DType::I8, true, true, false, DType::F32, 5, false);
  case_qlinear(r, 65, 200, 70, DType::I4, true, false, true, DType::F16, 0, true);
  case_qlinear(r, 130, 768, 33, DType::I4, true, true, false, DType::F32, 3, false);
  case_qlinear(r, 33, 1000, 64, DType::I4, false, false, true, DType::BF16, 0, false);
  case_qlinear(r, 200, 129, 129, DType::I4, false, false, false, DType::F32, 1, false);
  // W8A8 / W4A8 on the tensor cores (sm_80+; the emulation runs it lane by
  // lane): several block tiles in M and N, K not a multiple of 16 (W8A8 rows
  // then staged, not read in place) or of a W4A8 group, a single group, K = 1,
  // strided rows read in place, NaN rows, given int8 inputs, gathered rows.
  case_qlinear(r, 300, 1000, 385, DType::I8, true, false, true, DType::F16, 0, true);
  case_qlinear(r, 257, 768, 200, DType::I8, true, false, false, DType::F32, 0, true);
  case_qlinear(r, 140, 2048, 130, DType::I8, true, true, true, DType::BF16, 16, false);
  case_qlinear(r, 17, 1, 9, DType::I8, true, false, true, DType::F32, 0, false);
  case_qlinear(r, 300, 1000, 385, DType::I4, true, false, true, DType::F32, 0, true);
  case_qlinear(r, 20, 64, 140, DType::I4, true, true, false, DType::F32, 0, false);
  case_qlinear(r, 129, 2048, 260, DType::I4, true, false, false, DType::F16, 3, false);
  case_qlinear(r, 130, 200, 129, DType::I4, true, false, true, DType::F32, 0, true, true);
  case_qlinear(r, 200, 300, 70, DType::I8, true, false, false, DType::F32, 0, true, true);
  // W4A16 on the f16 tensor cores: several block tiles, partial groups, a
  // partial group of 8 rows, strides, gathered rows.
  case_qlinear(r, 300, 1000, 385, DType::I4, false, false, true, DType::F16, 0, false);
  case_qlinear(r, 129, 2048, 260, DType::I4, false, false, false, DType::F32, 3, false);
  case_qlinear(r, 140, 37, 70, DType::I4, false, false, true, DType::F32, 0, false, true);
  // The CUDA-core GEMMs that devices before sm_80 run for the formats above
  // (forced here): Q8_0 / Q4_0 with Q8Block inputs, f16, each Quamba scheme.
  g_force_simt = true;
  std::printf("(the next %d cases force the CUDA-core GEMMs)\n", 8);
  case_linear(r, 130, 256, 129, DType::Q8_0, ActRounding::Q8Block, true, DType::F32, 0);
  case_linear(r, 70, 96, 65, DType::Q4_0, ActRounding::Q8Block, false, DType::F16, 0, true);
  case_linear(r, 129, 200, 33, DType::F16, ActRounding::None, true, DType::F32, 0);
  case_qlinear(r, 130, 300, 129, DType::I8, true, false, true, DType::F32, 0, true);
  case_qlinear(r, 70, 1000, 65, DType::I8, true, true, false, DType::F32, 16, false);
  case_qlinear(r, 65, 200, 70, DType::I4, true, false, true, DType::F16, 0, true, true);
  case_qlinear(r, 129, 300, 40, DType::I4, false, false, false, DType::F32, 3, false);
  case_qlinear(r, 33, 1000, 64, DType::I4, false, false, true, DType::BF16, 0, false, true);
  g_force_simt = false;
  // W4A8 at up to 8 input rows (the block-of-rows kernel, qlinear_row_math.cuh):
  // a partial chunk and group, rows the blocks do not divide, unaligned float
  // rows, one to nine rows per block, given int8 inputs, NaN inputs, gathered
  // rows, and K or M x K past the kernel's reach (the general kernels).
  case_qlinear(r, 1, 100, 45, DType::I4, true, true, true, DType::F32, 3, false);
  case_qlinear(r, 1, 129, 70, DType::I4, true, false, true, DType::F16, 0, true);
  case_qlinear(r, 1, 4096, 70, DType::I4, true, false, false, DType::F32, 5, false);
  case_qlinear(r, 1, 2048, 40, DType::I4, true, false, true, DType::BF16, 0, false);
  case_qlinear(r, 1, 8256, 9, DType::I4, true, true, false, DType::F32, 0, false);
  case_qlinear(r, 1, 20000, 5, DType::I4, true, false, true, DType::F32, 0, true);
  case_qlinear(r, 1, 768, 33, DType::I4, true, false, false, DType::F32, 0, false, true);
  case_qlinear(r, 1, 33000, 3, DType::I4, true, false, false, DType::F32, 0, false);
  case_qlinear(r, 2, 4096, 70, DType::I4, true, true, true, DType::F32, 0, false);
  case_qlinear(r, 5, 4096, 17, DType::I4, true, false, false, DType::F16, 3, true);
  case_qlinear(r, 3, 129, 40, DType::I4, true, true, false, DType::F32, 5, false);
  case_qlinear(r, 7, 200, 70, DType::I4, true, false, true, DType::F32, 0, true, true);
  case_qlinear(r, 4, 2048, 33, DType::I4, true, false, false, DType::BF16, 0, false);
  case_qlinear(r, 8, 8192, 9, DType::I4, true, false, true, DType::F32, 0, true);
  // W8A8 on the same kernel: a partial 16-byte piece and step, one to 32
  // steps per row, K past the kernel's reach, given int8 inputs, NaN inputs,
  // gathered rows, strides.
  case_qlinear(r, 1, 100, 45, DType::I8, true, true, true, DType::F32, 3, false);
  case_qlinear(r, 1, 2048, 70, DType::I8, true, false, false, DType::F32, 0, true);
  case_qlinear(r, 1, 16384, 9, DType::I8, true, false, true, DType::F16, 0, true);
  case_qlinear(r, 1, 16385, 5, DType::I8, true, false, false, DType::F32, 0, false);
  case_qlinear(r, 3, 1000, 40, DType::I8, true, true, false, DType::F32, 5, false);
  case_qlinear(r, 8, 4096, 17, DType::I8, true, false, false, DType::F32, 0, true);
  case_qlinear(r, 5, 777, 70, DType::I8, true, false, true, DType::F32, 0, true, true);
  case_qlinear(r, 2, 5000, 33, DType::I8, true, false, true, DType::BF16, 1, false);
  // Float inputs too many to stage in shared memory (M x K over 48 KiB):
  // quantized where they are read.
  case_qlinear(r, 16, 3100, 9, DType::I4, true, false, true, DType::F32, 0, true);
  case_qlinear(r, 16, 3100, 9, DType::I8, true, false, false, DType::F32, 16, true);
  // Gathered rows (x_rows, as the MoE dispatch passes one expert's tokens):
  // the GEMV (<= 16 rows) and the GEMM of each scheme.
  case_qlinear(r, 5, 768, 33, DType::I8, true, false, true, DType::F32, 0, false, true);
  case_qlinear(r, 3, 256, 9, DType::I4, true, false, false, DType::F32, 0, false, true);
  case_qlinear(r, 7, 300, 17, DType::I4, false, false, true, DType::F32, 3, false, true);
  case_qlinear(r, 40, 256, 33, DType::I8, true, false, false, DType::F32, 0, false, true);
  case_qlinear(r, 33, 300, 20, DType::I4, true, false, true, DType::F32, 1, false, true);
  case_qlinear(r, 20, 130, 9, DType::I4, false, false, false, DType::F32, 0, false, true);

  Side s(g_gpu);
  std::vector<float> buf(64 * 32, 1.0f);
  std::vector<uint8_t> wb(64 * 64, 0);
  LinearArgs a;
  a.M = 17, a.N = 8, a.K = 32, a.x = s.put(buf), a.y = s.put(buf), a.w = s.put(wb);
  a.x_stride = a.w_stride = 32, a.y_stride = 8;
  a.M = 1, a.w_dtype = DType::Q8_0, a.K = 48, a.x_stride = a.w_stride = 48;
  report_reject("linear", "q8_0 with K 48", launch(a), cudaErrorInvalidValue);
  a.w_dtype = DType::I8, a.K = 32;
  report_reject("linear", "an i8 weight", launch(a), cudaErrorInvalidValue);
  a.w_dtype = DType::Q8_0, a.x_stride = a.w_stride = 32, a.x_rounding = ActRounding::Q8Block, a.w_layout = WeightLayout::Panels;
  report_reject("linear", "q8_0 in the CPU's panel layout", launch(a), cudaErrorNotSupported);
  QLinearArgs q;
  q.M = 1, q.N = 8, q.K = 32, q.x = a.x, q.y = a.y, q.w = a.w, q.w_scales = a.x, q.x_stride = q.w_stride = 32;
  q.y_stride = 8, q.w_dtype = DType::I8;
  report_reject("qlinear", "i8 weights with float inputs", launch(q), cudaErrorInvalidValue);
  q.w_dtype = DType::Q4_0, q.x_scale = 0.1f;
  report_reject("qlinear", "a q4_0 weight", launch(q), cudaErrorInvalidValue);
  q.w_dtype = DType::I8, q.w_layout = WeightLayout::Panels;
  report_reject("qlinear", "i8 in the CPU's panel layout", launch(q), cudaErrorNotSupported);
}

// ---------------------------------------------------------------- mixture of experts

cudaError_t launch(const MoeRouteArgs& a) { return g_gpu ? cuda::moe_route_cuda(a, 0) : cuda::emulate::moe_route(a); }
cudaError_t launch(const MoeArgs& a) { return g_gpu ? cuda::moe_cuda(a, 0) : cuda::emulate::moe(a); }

const char* router_name(MoeRouter r) {
  return r == MoeRouter::SoftmaxTopk ? "softmax-topk" : r == MoeRouter::TopkSoftmax ? "topk-softmax" : "sigmoid-grouped";
}

// Router logits [T, E] (stride E + 1); `skew`: experts 0 and 1 lifted for
// most tokens, so that their runs span several row blocks.
std::vector<float> moe_logits(Rng& r, int64_t T, int64_t E, bool skew) {
  auto l = rand_vec(r, T * (E + 1), -2, 2);
  if (skew)
    for (int64_t t = 0; t < T; ++t)
      if (r.below(8) != 0) l[(size_t)(t * (E + 1))] += 4.0f, l[(size_t)(t * (E + 1) + 1)] += 3.0f;
  return l;
}

void case_moe_route(Rng& r, int64_t T, int64_t E, int64_t k, MoeRouter router, int64_t groups = 1, int64_t keep = 1,
                    bool bias = false) {
  if (skipped("moe_route")) return;
  auto logits = moe_logits(r, T, E, false);
  auto b = rand_vec(r, E, -0.3f, 0.3f);
  MoeRouteArgs a;
  a.T = T, a.E = E, a.k = k, a.logits_stride = E + 1, a.router = router;
  a.n_group = groups, a.topk_group = keep, a.norm_topk_prob = groups > 1, a.routed_scaling_factor = groups > 1 ? 2.5f : 1.0f;
  std::vector<int32_t> cids((size_t)(T * k));
  std::vector<float> cw((size_t)(T * k));
  MoeRouteArgs c = a;
  c.logits = logits.data(), c.bias = bias ? b.data() : nullptr, c.ids = cids.data(), c.weights = cw.data();
  nm::moe_route(c);
  std::vector<int32_t> ids((size_t)(T * k), -7);
  std::vector<float> w((size_t)(T * k), -7.0f);
  Side s(g_gpu);
  MoeRouteArgs d = a;
  d.logits = s.put(logits), d.bias = bias ? s.put(b) : nullptr, d.ids = s.put(ids), d.weights = s.put(w);
  const cudaError_t e = s.finish(launch(d));
  std::vector<float> cidf(cids.begin(), cids.end()), idf(ids.begin(), ids.end());
  report("moe_route",
         fmt("%s T=%ld E=%ld k=%ld%s%s", router_name(router), (long)T, (long)E, (long)k,
             groups > 1 ? fmt(" groups=%ld keep=%ld", (long)groups, (long)keep).c_str() : "", bias ? " bias" : ""),
         e, {{"ids", &cidf, &idf, 0.0}, {"weights", &cw, &w, kTolF32}});
}

// E experts of a projection, R rows of K each, in `t`, one buffer: weights of
// about the size trained experts have (|w| < ~0.25).
// I8 / I4: the quants alone (I8 in [-127, 127]; their scales: moe_scales).
std::vector<uint8_t> moe_experts(Rng& r, DType t, int64_t E, int64_t R, int64_t K) {
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16) return rand_typed(r, E * R * K, t, -0.1f, 0.1f);
  if (t == DType::I8 || t == DType::I4) {
    std::vector<uint8_t> v((size_t)(E * R * dtype_row_bytes(t, K)));
    for (auto& x : v) x = t == DType::I8 ? (uint8_t)(int8_t)((int)r.below(255) - 127) : (uint8_t)r.below(256);
    return v;
  }
  const int64_t bb = t == DType::Q8_0 ? 34 : 18, blocks = E * R * K / 32;
  std::vector<uint8_t> v((size_t)(blocks * bb));
  for (auto& x : v) x = (uint8_t)r.below(256);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint16_t d = f32_to_f16(t == DType::Q8_0 ? r.uniform(0.0005f, 0.002f) : r.uniform(0.005f, 0.02f));
    std::memcpy(v.data() + b * bb, &d, 2);
  }
  return v;
}

// Tables of E experts of each of three projections, expert e at block E - 1 - e
// of base[p] (blocks step[p] elements apart): experts stored anywhere.
template <class T>
void reversed_tables(std::vector<const T*> (&tab)[3], std::initializer_list<const T*> base,
                     std::initializer_list<int64_t> step, int64_t E) {
  for (int p = 0; p < 3; ++p) {
    tab[p].resize((size_t)E);
    for (int64_t e = 0; e < E; ++e) tab[p][(size_t)e] = base.begin()[p] + (E - 1 - e) * step.begin()[p];
  }
}

// I8 / I4 scales of E experts of R rows of K (|w| as moe_experts' Q8_0 / Q4_0).
std::vector<float> moe_scales(Rng& r, DType t, int64_t E, int64_t R, int64_t K) {
  if (t != DType::I8 && t != DType::I4) return {};
  return rand_vec(r, E * R * dtype_scale_count(t, 1, K), t == DType::I8 ? 0.0005f : 0.005f, t == DType::I8 ? 0.002f : 0.02f);
}

// The dispatch against moe() on the CPU's routing. packed: gate and up as one
// [E, 2I, d] tensor (Granite), experts evenly spaced; else each projection
// reached through an experts table, in reverse order (experts anywhere), and
// I8 / I4 scales likewise through tables. I8 / I4: int8_in, each expert's
// own input scale per projection (W8A8 / W4A8); else float inputs (W4A16).
void case_moe(Rng& r, int64_t T, int64_t d, int64_t I, int64_t E, int64_t k, DType wt, ActRounding xr, bool packed,
              bool shared, MoeRouter router, bool skew, double tol, bool int8_in = true) {
  if (skipped("moe")) return;
  const int64_t xs = d + 3, os = d + 1;
  auto x = rand_vec(r, T * xs);
  auto logits = moe_logits(r, T, E, skew);
  std::vector<int32_t> ids((size_t)(T * k));
  std::vector<float> w((size_t)(T * k));
  MoeRouteArgs ra;
  ra.T = T, ra.E = E, ra.k = k, ra.logits = logits.data(), ra.logits_stride = E + 1, ra.router = router;
  ra.ids = ids.data(), ra.weights = w.data();
  nm::moe_route(ra);
  auto gu = moe_experts(r, wt, E, 2 * I, d), g = moe_experts(r, wt, E, I, d), u = moe_experts(r, wt, E, I, d);
  auto dn = moe_experts(r, wt, E, d, I);
  const bool quamba = wt == DType::I8 || wt == DType::I4;
  auto sgu = moe_scales(r, wt, E, 2 * I, d), sg = moe_scales(r, wt, E, I, d), su = moe_scales(r, wt, E, I, d);
  auto sdn = moe_scales(r, wt, E, d, I);
  const bool xq = quamba && int8_in;
  auto xsg = xq ? rand_vec(r, E, 0.005f, 0.02f) : std::vector<float>{};
  auto xsu = xq ? rand_vec(r, E, 0.005f, 0.02f) : std::vector<float>{};
  auto xsd = xq ? rand_vec(r, E, 0.005f, 0.02f) : std::vector<float>{};
  auto sh = rand_vec(r, T * d);
  auto out = rand_vec(r, T * os), cout = out;
  const int64_t gu_rows = dtype_row_bytes(wt, d), dn_rows = dtype_row_bytes(wt, I);
  const int64_t gu_spr = quamba ? dtype_scale_count(wt, 1, d) : 0, dn_spr = quamba ? dtype_scale_count(wt, 1, I) : 0;
  MoeArgs a;
  a.T = T, a.d = d, a.I = I, a.E = E, a.k = k, a.x_stride = xs, a.out_stride = os, a.shared_stride = d;
  for (MoeWeight* m : {&a.gate, &a.up, &a.down}) m->dtype = wt, m->x_rounding = xr;
  a.gate.row_stride = a.up.row_stride = quamba ? gu_rows : d, a.down.row_stride = quamba ? dn_rows : I;
  // I8 / I4: the scales (as the quants: packed, or through tables in `stabs`)
  // and input scales, host or device.
  std::vector<const float*> stabs[3];
  auto wire_scales = [&](MoeArgs& m, const float* fgu, const float* fg, const float* fu, const float* fdn,
                         const float* xg, const float* xu, const float* xd) {
    if (!quamba) return;
    m.gate.x_scale = xg, m.up.x_scale = xu, m.down.x_scale = xd;
    if (packed) {
      m.gate.scales = fgu, m.up.scales = fgu + I * gu_spr, m.gate.scales_expert_stride = m.up.scales_expert_stride = 2 * I * gu_spr;
      m.down.scales = fdn, m.down.scales_expert_stride = d * dn_spr;
      return;
    }
    reversed_tables(stabs, {fg, fu, fdn}, {I * gu_spr, I * gu_spr, d * dn_spr}, E);
  };
  // Points the projections at their buffers (host or device), the tables in `tabs`.
  std::vector<const void*> tabs[3];
  auto wire = [&](MoeArgs& m, const uint8_t* bgu, const uint8_t* bg, const uint8_t* bu, const uint8_t* bdn) {
    if (packed) {
      m.gate.w = bgu, m.up.w = bgu + I * gu_rows, m.gate.expert_stride = m.up.expert_stride = 2 * I * gu_rows;
      m.down.w = bdn, m.down.expert_stride = d * dn_rows;
      return;
    }
    std::vector<const uint8_t*> bt[3];
    reversed_tables(bt, {bg, bu, bdn}, {I * gu_rows, I * gu_rows, d * dn_rows}, E);
    for (int p = 0; p < 3; ++p) tabs[p].assign(bt[p].begin(), bt[p].end());
  };
  MoeArgs c = a;
  c.x = x.data(), c.ids = ids.data(), c.weights = w.data(), c.shared = shared ? sh.data() : nullptr, c.out = cout.data();
  // The CPU reads the same bytes: in the reversed-table layout expert e is block E-1-e.
  wire(c, gu.data(), g.data(), u.data(), dn.data());
  wire_scales(c, sgu.data(), sg.data(), su.data(), sdn.data(), xq ? xsg.data() : nullptr, xq ? xsu.data() : nullptr,
              xq ? xsd.data() : nullptr);
  std::vector<const void*> ctabs[3] = {tabs[0], tabs[1], tabs[2]};
  std::vector<const float*> cstabs[3] = {stabs[0], stabs[1], stabs[2]};
  if (!packed) c.gate.experts = ctabs[0].data(), c.up.experts = ctabs[1].data(), c.down.experts = ctabs[2].data();
  if (!packed && quamba)
    c.gate.expert_scales = cstabs[0].data(), c.up.expert_scales = cstabs[1].data(), c.down.expert_scales = cstabs[2].data();
  nm::moe(c);
  Side s(g_gpu);
  MoeArgs t = a;
  t.x = s.put(x), t.ids = s.put(ids), t.weights = s.put(w), t.shared = shared ? s.put(sh) : nullptr, t.out = s.put(out);
  wire(t, packed ? s.put(gu) : nullptr, packed ? nullptr : s.put(g), packed ? nullptr : s.put(u), s.put(dn));
  wire_scales(t, packed ? s.put(sgu) : nullptr, packed ? nullptr : s.put(sg), packed ? nullptr : s.put(su), s.put(sdn),
              s.put(xsg), s.put(xsu), s.put(xsd));
  if (!packed) t.gate.experts = s.put(tabs[0]), t.up.experts = s.put(tabs[1]), t.down.experts = s.put(tabs[2]);
  if (!packed && quamba)
    t.gate.expert_scales = s.put(stabs[0]), t.up.expert_scales = s.put(stabs[1]), t.down.expert_scales = s.put(stabs[2]);
  const cudaError_t e = s.finish(launch(t));
  report("moe", fmt("%s%s T=%ld d=%ld I=%ld E=%ld k=%ld %s %s%s%s", dtype_name(wt),
                    quamba ? (int8_in ? "/int8-inputs" : "/float-inputs")
                    : xr == ActRounding::Q8Block ? "/q8-inputs" : xr == ActRounding::BF16 ? "/bf16-inputs" : "",
                    (long)T, (long)d, (long)I, (long)E, (long)k, router_name(router),
                    packed ? "packed gate|up" : "experts table", shared ? " +shared" : "", skew ? " skewed" : ""),
         e, {{"out", &cout, &out, tol}});
}

void moe_cases(Rng& r) {
  case_moe_route(r, 1, 8, 2, MoeRouter::SoftmaxTopk);
  case_moe_route(r, 37, 64, 6, MoeRouter::TopkSoftmax);
  case_moe_route(r, 300, 16, 2, MoeRouter::SoftmaxTopk);
  case_moe_route(r, 29, 7, 7, MoeRouter::TopkSoftmax);
  case_moe_route(r, 33, 128, 8, MoeRouter::SigmoidGrouped, 8, 4, true);
  case_moe_route(r, 5, 12, 3, MoeRouter::SigmoidGrouped, 12, 5, false);  // one expert per group
  case_moe_route(r, 9, 64, 4, MoeRouter::SigmoidGrouped, 1, 1, true);

  // Float experts: float32 sums in another order (kTolF32 per reduction, two
  // of them). Q8_0 / Q4_0 with Q8Block inputs: an h element that differs by
  // that rounding may land on the neighbouring int8 step of its 32-element
  // block before the down product (kTolQ8Moe).
  constexpr double kTolMoe = 2 * kTolF32, kTolQ8Moe = 2e-3;
  case_moe(r, 1, 64, 96, 8, 2, DType::F32, ActRounding::None, true, true, MoeRouter::TopkSoftmax, false, kTolMoe);
  case_moe(r, 7, 75, 33, 5, 2, DType::F32, ActRounding::None, false, false, MoeRouter::SoftmaxTopk, false, kTolMoe);
  case_moe(r, 37, 96, 130, 16, 4, DType::F16, ActRounding::None, true, true, MoeRouter::TopkSoftmax, true, kTolMoe);
  case_moe(r, 45, 128, 64, 6, 2, DType::BF16, ActRounding::BF16, false, true, MoeRouter::SoftmaxTopk, true, kTolMoe);
  // bf16 experts with bf16 inputs on the tensor cores: I and d not multiples
  // of the 128-column tile or of the 32-wide k tile, many row blocks, packed
  // and tabled experts; bf16 weights with exact inputs stay on the CUDA cores.
  case_moe(r, 130, 96, 130, 8, 2, DType::BF16, ActRounding::BF16, true, true, MoeRouter::TopkSoftmax, true, kTolMoe);
  case_moe(r, 37, 75, 200, 5, 3, DType::BF16, ActRounding::BF16, false, false, MoeRouter::SoftmaxTopk, false, kTolMoe);
  case_moe(r, 3, 160, 48, 16, 4, DType::BF16, ActRounding::BF16, true, false, MoeRouter::TopkSoftmax, false, kTolMoe);
  case_moe(r, 20, 64, 40, 4, 2, DType::BF16, ActRounding::None, true, true, MoeRouter::SoftmaxTopk, false, kTolMoe);
  // Q8_0 / Q4_0 experts with Q8Block inputs on the int8 tensor cores: d or I
  // a multiple of 32 but not of the 64-wide k tile, I past one 128-column
  // tile, many row blocks; with float inputs they stay on the CUDA cores.
  case_moe(r, 130, 96, 160, 8, 2, DType::Q8_0, ActRounding::Q8Block, true, true, MoeRouter::TopkSoftmax, true,
           kTolQ8Moe);
  case_moe(r, 37, 160, 96, 5, 3, DType::Q4_0, ActRounding::Q8Block, false, false, MoeRouter::SoftmaxTopk, false,
           kTolQ8Moe);
  case_moe(r, 11, 64, 64, 6, 2, DType::Q8_0, ActRounding::None, true, false, MoeRouter::TopkSoftmax, false, kTolMoe);
  case_moe(r, 19, 64, 96, 8, 3, DType::Q8_0, ActRounding::Q8Block, true, false, MoeRouter::TopkSoftmax, true,
           kTolQ8Moe);
  case_moe(r, 23, 128, 64, 4, 2, DType::Q4_0, ActRounding::Q8Block, false, true, MoeRouter::SoftmaxTopk, false,
           kTolQ8Moe);
  case_moe(r, 130, 64, 32, 64, 6, DType::F16, ActRounding::None, true, true, MoeRouter::TopkSoftmax, true, kTolMoe);
  // I8 / I4 experts of a quantized checkpoint (W8A8, W4A8, W4A16) on the
  // CUDA cores: int8 sums exact on both sides; an h element that differs
  // by the float32 order (or SiLU's rounding) may land on the neighbouring
  // int8 step of the down product's input (kTolQ8Moe). d and I not
  // multiples of 128 (I4's last group partial) or of the 32-wide k tile.
  case_moe(r, 37, 96, 130, 8, 2, DType::I8, ActRounding::None, true, true, MoeRouter::TopkSoftmax, true, kTolQ8Moe);
  case_moe(r, 9, 200, 75, 6, 3, DType::I8, ActRounding::None, false, false, MoeRouter::SoftmaxTopk, false, kTolQ8Moe);
  case_moe(r, 23, 160, 300, 5, 2, DType::I4, ActRounding::None, false, true, MoeRouter::TopkSoftmax, false, kTolQ8Moe);
  case_moe(r, 1, 256, 64, 16, 4, DType::I4, ActRounding::None, true, false, MoeRouter::SoftmaxTopk, false, kTolQ8Moe);
  case_moe(r, 19, 130, 200, 6, 2, DType::I4, ActRounding::None, false, true, MoeRouter::TopkSoftmax, true, kTolMoe,
           false);
  case_moe(r, 1, 64, 96, 4, 2, DType::I4, ActRounding::None, true, false, MoeRouter::SoftmaxTopk, false, kTolMoe, false);

  Side s(g_gpu);
  std::vector<float> buf(64 * 64, 0.5f);
  std::vector<int32_t> idb(64, 0);
  std::vector<uint8_t> wb(64 * 64 * 8, 0);
  MoeArgs a;
  a.T = 2, a.d = 32, a.I = 32, a.E = 4, a.k = 2, a.x = s.put(buf), a.x_stride = 32, a.ids = s.put(idb);
  a.weights = a.x, a.out = s.put(buf) + 1024, a.out_stride = 32;
  for (MoeWeight* m : {&a.gate, &a.up, &a.down}) m->w = s.put(wb), m->row_stride = 32, m->expert_stride = 32 * 32 * 4;
  MoeArgs b = a;
  b.k = 5;
  report_reject("moe", "k above E", launch(b), cudaErrorInvalidValue);
  b = a, b.gate.dtype = b.up.dtype = b.down.dtype = DType::I8;
  for (MoeWeight* m : {&b.gate, &b.up, &b.down}) m->scales = a.x, m->x_scale = a.x;
  b.gate.x_scale = nullptr;
  report_reject("moe", "i8 experts without input scales", launch(b), cudaErrorInvalidValue);
  b.gate.x_scale = a.x, b.down.scales = nullptr;
  report_reject("moe", "i8 experts without weight scales", launch(b), cudaErrorInvalidValue);
  b.down.scales = a.x, b.up.row_stride = 31;
  report_reject("moe", "i8 rows shorter than d", launch(b), cudaErrorInvalidValue);
  b.up.row_stride = 32, b.gate.layout = b.up.layout = WeightLayout::Panels;
  report_reject("moe", "i8 experts in panels", launch(b), cudaErrorNotSupported);
  b = a, b.up.dtype = DType::F16;
  report_reject("moe", "gate f32, up f16", launch(b), cudaErrorNotSupported);
  b = a, b.d = 48, b.x_stride = 48, b.out_stride = 48, b.gate.dtype = b.up.dtype = DType::Q8_0, b.gate.row_stride = 48;
  b.up.row_stride = 48;
  report_reject("moe", "q8_0 experts with d 48", launch(b), cudaErrorInvalidValue);
  MoeRouteArgs ra;
  ra.T = 1, ra.E = 6, ra.k = 2, ra.logits = a.x, ra.logits_stride = 6, ra.ids = s.put(idb), ra.weights = a.out;
  ra.router = MoeRouter::SigmoidGrouped, ra.n_group = 4;
  report_reject("moe_route", "4 groups of 6 experts", launch(ra), cudaErrorInvalidValue);
}

// One case per kernel at a benchmark shape (mamba-130m prefill 2048, decode
// batch 64, Mamba-2 decode), so that the timed configurations are checked too.
void bench_shape_cases(Rng& r) {
  case_rms_norm(r, 2048, 768, true, true, DType::F32, false);
  case_gated_rms_norm(r, 2048, 1536, 1536, true, DType::F32);
  case_conv1d(r, {2048}, false, 1536, 4, false, true, true, true, DType::F32, DType::F32);
  case_conv1d_update(r, 64, 1536, 4, true, true, true, DType::F32, true, false);
  case_scan(r, 1, 2048, 1536, 16, 1, true, true, true, true, false, true, 0, false, 0, 0, true);
  case_scan(r, 1, 2048, 1536, 16, 1, true, true, true, true, false, true, 0, false, 0, 1, true);
  case_update(r, 64, 1536, 1, 16, 1, true, true, true, true, true, true, false, false);
  case_update(r, 64, 24, 64, 128, 1, false, true, true, true, true, true, false, false);
  for (DType wt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    case_linear(r, 1, 768, 3072, wt, ActRounding::None, false, DType::F32, 0);
  case_linear(r, 1, 2048, 8192, DType::BF16, ActRounding::None, false, DType::F32, 0);
  case_linear(r, 1, 768, 3072, DType::Q8_0, ActRounding::Q8Block, false, DType::F32, 0);
  case_qlinear(r, 1, 768, 3072, DType::I8, true, false, false, DType::F32, 0, false);
  case_qlinear(r, 1, 768, 3072, DType::I4, true, false, false, DType::F32, 0, false);
  case_qlinear(r, 1, 2048, 8192, DType::I4, true, false, false, DType::F32, 0, false);
  case_qlinear(r, 1, 768, 3072, DType::I4, false, false, false, DType::F32, 0, false);
  case_linear(r, 2048, 768, 3072, DType::BF16, ActRounding::BF16, false, DType::F32, 0);  // prefill GEMM
}

}  // namespace

}  // namespace nm::check

int main(int argc, char** argv) {
  using namespace nm::check;
  // Line-buffered even into a pipe: a run cut short by a timeout still shows
  // every case it finished and the one it was in.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  bool emulate = false, bench = true, cases = true;
  std::string models = "cuda/check/models";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--emulate")) emulate = true;
    else if (!std::strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
    else if (!std::strcmp(argv[i], "--no-bench")) bench = false;
    else if (!std::strcmp(argv[i], "--bench-only")) cases = false;  // for profilers: the timed launches alone
    else if (!std::strcmp(argv[i], "--skip") && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t b = 0, e; b <= list.size(); b = e + 1) {
        e = list.find(',', b);
        if (e == std::string::npos) e = list.size();
        if (e > b) skip_list().push_back(list.substr(b, e - b));
      }
    } else {
      std::fprintf(stderr,
                   "usage: nm_gpu_check [--emulate] [--no-bench | --bench-only] [--models DIR] [--skip NAME,...]\n"
                   "  --skip: case groups (elementwise norm conv scan ssd attention hadamard q8 gemv moe shapes\n"
                   "          recorder models), kernels (linear qlinear moe_route moe), timed kernels, the\n"
                   "          timed whole models (model-bench), models (cuda/check/models/NAME)\n");
      return 2;
    }
  }
  g_exact = nm::cpu::active_isa() == nm::cpu::Isa::Scalar ? 1e-6 : 0.0;
  const nm::cuda::RuntimeStatus rt = emulate ? nm::cuda::RuntimeStatus{} : nm::cuda::query_runtime();
  if (!emulate) {
    if (!rt.usable) {
      std::printf("nm_gpu_check: no usable CUDA device: %s\n", rt.reason.c_str());
      return 2;
    }
    int dev = 0;
    for (auto& d : rt.devices)
      if (d.supported) { dev = d.index; break; }
    cudaSetDevice(dev);
  }
  g_gpu = !emulate;
  std::printf("nm_gpu_check: %s against the CPU kernels (CPU level %s)\n",
              emulate ? "host emulation of the CUDA kernels" : "CUDA kernels", nm::cpu::isa_name(nm::cpu::active_isa()));
  std::printf("tolerances (max |got - ref| / max |ref| per output buffer): exact %.0e where the float operations "
              "and their order are the same, %.0e elementwise and reductions, %.0e scans, %.0e tensor-core GEMMs\n",
              g_exact, kTolF32, kTolScan, kTolGemm);
  Rng rng(20261130);
  if (cases || emulate) {
    const std::pair<const char*, void (*)(Rng&)> groups[] = {
        {"elementwise", elementwise_cases}, {"norm", norm_cases}, {"conv", conv_cases},
        {"scan", scan_cases},  {"ssd", ssd_cases}, {"attention", attention_cases},
        {"hadamard", hadamard_cases}, {"q8", q8_cases}, {"gemv", linear_cases},
        {"moe", moe_cases}, {"shapes", bench_shape_cases}};
    for (const auto& g : groups) {
      Rng group_rng = rng;  // a group's inputs do not depend on which groups ran before it
      rng.next();
      if (!skipped(g.first)) g.second(group_rng);
    }
    if (!skipped("recorder")) {
      std::printf("\ndecode-step recorder (graph capture and replay logic):\n");
      const RecorderCheckTotals rt = run_recorder_checks();
      g_stats.cases += rt.cases;
      g_stats.failed += rt.failed;
    }
    // Whole models: the CUDA backend on a GPU; in the emulation the engine on
    // the device-emulation backend (the CPU kernels), which checks the
    // manifests and the engine's device seam.
    std::printf("\nwhole models (%s) against the CPU engine's logits (%s):\n",
                emulate ? "device-emulation backend" : "CUDA backend", models.c_str());
    const ModelCheckTotals mt =
        run_model_checks(models, emulate ? nm::engine::BackendKind::DeviceEmulation : nm::engine::BackendKind::Cuda);
    g_stats.cases += mt.cases;
    g_stats.failed += mt.failed;
    double& w = g_stats.worst["model"];
    w = std::max(w, mt.worst);
    if (emulate) {
      ++g_stats.cases;
      if (!model_bench_smoke()) ++g_stats.failed;
    }
  }
  std::printf("\nsummary (%s): %d cases, %d failed; worst error per kernel:", emulate ? "emulate" : "gpu",
              g_stats.cases, g_stats.failed);
  for (auto& kv : g_stats.worst) std::printf(" %s %.2e;", kv.first.c_str(), kv.second);
  std::printf("\n");
  int rc = g_stats.failed ? 1 : 0;
  if (!emulate && bench) {
    std::printf("\n");
    if (!run_benchmarks(rt)) rc = 1;
  }
  return rc;
}
