// Mamba-1 and Mamba-2 blocks as sequences of kernel calls. Activations are
// token-major float32; in_proj outputs are used through strided views
// (x | z halves, and [z, xBC, dt] for Mamba-2), never copied.
//
// Block (state-spaces/mamba block.py, residual in float32):
//   residual = h + residual;  hn = RMSNorm(residual);  h = mixer(hn)
// and at the end logits = lm_head(RMSNorm_f(h + residual)).
#include "engine/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/conv1d.h"
#include "kernels/hadamard.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/qlinear.h"
#include "kernels/selective_scan.h"
#include "kernels/ssd.h"
#include "kernels/ssm_q8.h"

namespace nm::engine {

namespace {

// Activation buffers. Within one prefill() / decode_step() call (a BufScope)
// buffers come from a per-call pool and go back to it when they die, so the
// layers and 512-token chunks after the first reuse the same memory: freshly
// allocated multi-MB buffers per layer cost page faults, kernel zeroing and
// std::vector's own zeroing, ~5% of a 2048-token Mamba-2 prefill. Never
// zeroed: every buffer is fully written by the kernel that produces it before
// anything reads it. The pool is freed when the call ends.
struct BufPool {
  std::vector<std::unique_ptr<float[]>> blocks;
  std::vector<size_t> caps;
};
thread_local BufPool* t_buf_pool = nullptr;

class BufScope {
 public:
  BufScope() : prev_(t_buf_pool) { t_buf_pool = &pool_; }
  ~BufScope() { t_buf_pool = prev_; }
  BufScope(const BufScope&) = delete;
  BufScope& operator=(const BufScope&) = delete;

 private:
  BufPool pool_;
  BufPool* prev_;
};

class Buf {
 public:
  explicit Buf(size_t n) : n_(n), pool_(t_buf_pool) {
    if (pool_) {
      // Best fit among the free blocks.
      size_t best = pool_->blocks.size();
      for (size_t i = 0; i < pool_->blocks.size(); ++i)
        if (pool_->caps[i] >= n && (best == pool_->blocks.size() || pool_->caps[i] < pool_->caps[best])) best = i;
      if (best < pool_->blocks.size()) {
        block_ = std::move(pool_->blocks[best]);
        cap_ = pool_->caps[best];
        pool_->blocks.erase(pool_->blocks.begin() + (std::ptrdiff_t)best);
        pool_->caps.erase(pool_->caps.begin() + (std::ptrdiff_t)best);
        return;
      }
    }
    block_.reset(new float[n > 0 ? n : 1]);
    cap_ = n;
  }
  ~Buf() {
    if (pool_ && block_) {
      pool_->blocks.push_back(std::move(block_));
      pool_->caps.push_back(cap_);
    }
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  float* data() { return block_.get(); }
  const float* data() const { return block_.get(); }
  float* begin() { return block_.get(); }
  float* end() { return block_.get() + n_; }

 private:
  std::unique_ptr<float[]> block_;
  size_t n_ = 0, cap_ = 0;
  BufPool* pool_;
};

// int8 activations from the same pool (a float buffer of a quarter the count).
class I8Buf {
 public:
  explicit I8Buf(size_t n) : buf_((n + 3) / 4) {}
  int8_t* data() { return reinterpret_cast<int8_t*>(buf_.data()); }

 private:
  Buf buf_;
};

thread_local ActivationObserver* t_observer = nullptr;

// Nearest rank: the smallest value with at least `percentile` of the elements at or below it.
float quantile_of(std::vector<float>& mags, double percentile) {
  const size_t n = mags.size();
  size_t rank = (size_t)std::ceil(percentile * (double)n);
  rank = std::min(n, std::max<size_t>(rank, 1)) - 1;
  std::nth_element(mags.begin(), mags.begin() + (std::ptrdiff_t)rank, mags.end());
  return mags[rank];
}

// Records per-channel statistics of x [M, C] (stride xs) under `name`, with
// a quantile of |x| over channels [q0, q1) (forward.h ChannelStats).
void observe_channels(const std::string& name, const float* x, int64_t xs, int64_t M, int64_t C, int64_t q0 = 0,
                      int64_t q1 = 0) {
  ChannelStats& st = t_observer->channels[name];
  if (st.absmax.empty()) st.absmax.assign((size_t)C, 0.0f);
  const bool want_q = t_observer->percentile > 0.0 && q1 > q0;
  std::vector<float> mags;
  if (want_q) mags.reserve((size_t)(M * (q1 - q0)));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t c = 0; c < C; ++c) {
      const float v = std::fabs(x[m * xs + c]);
      if (v > st.absmax[(size_t)c]) st.absmax[(size_t)c] = v;
      if (want_q && c >= q0 && c < q1) mags.push_back(v);
    }
  }
  if (!mags.empty()) st.quantiles.push_back(quantile_of(mags, t_observer->percentile));
}

std::string mixer_name(int64_t layer) { return "backbone.layers." + std::to_string(layer) + ".mixer."; }

// G[K, K] += Σ_m x[m]ᵀ x[m] over the rows x [M, K] (stride xs), in double.
// Rows go in blocks of 64, widened to double once; the pool's tasks take
// 4-row bands of G (interleaved, as a band's cost falls with its row) and
// sum a 4 × 8 tile over the block's rows in registers. Only tiles on or
// above the diagonal are computed; the lower triangle is mirrored at the end.
void accumulate_gram(double* G, const float* x, int64_t xs, int64_t M, int64_t K) {
  constexpr int64_t MB = 64, TI = 4, TJ = 8;
  std::vector<double> xd((size_t)(std::min(M, MB) * K));
  const int64_t bands = (K + TI - 1) / TI;
  for (int64_t m0 = 0; m0 < M; m0 += MB) {
    const int64_t mb = std::min(MB, M - m0);
    for (int64_t m = 0; m < mb; ++m)
      for (int64_t k = 0; k < K; ++k) xd[(size_t)(m * K + k)] = (double)x[(m0 + m) * xs + k];
    const double work = (double)mb * (double)K * (double)K / 2;
    cpu::pool().run(work < 65536.0 ? 1 : (int)std::min<int64_t>(bands, 1 << 20), [&](int ith, int nth) {
      for (int64_t b = ith; b < bands; b += nth) {
        const int64_t i0 = b * TI, ni = std::min(TI, K - i0);
        for (int64_t j0 = i0 / TJ * TJ; j0 < K; j0 += TJ) {
          const int64_t nj = std::min(TJ, K - j0);
          double acc[TI][TJ] = {};
          if (ni == TI && nj == TJ) {
            for (int64_t m = 0; m < mb; ++m) {
              const double* r = xd.data() + m * K;
              for (int64_t a = 0; a < TI; ++a)
                for (int64_t c = 0; c < TJ; ++c) acc[a][c] += r[i0 + a] * r[j0 + c];
            }
          } else {
            for (int64_t m = 0; m < mb; ++m) {
              const double* r = xd.data() + m * K;
              for (int64_t a = 0; a < ni; ++a)
                for (int64_t c = 0; c < nj; ++c) acc[a][c] += r[i0 + a] * r[j0 + c];
            }
          }
          for (int64_t a = 0; a < ni; ++a)
            for (int64_t c = 0; c < nj; ++c) G[(i0 + a) * K + j0 + c] += acc[a][c];
        }
      }
    });
  }
  for (int64_t i = 1; i < K; ++i)
    for (int64_t j = 0; j < i; ++j) G[i * K + j] = G[j * K + i];
}

// Records the statistics of a linear layer's input rows x [M, K] (stride xs).
void observe(const Weight& w, const float* x, int64_t xs, int64_t M, int64_t K) {
  TapStats& st = t_observer->taps[&w];
  if (t_observer->gram) {
    if (st.gram.empty()) st.gram.assign((size_t)(K * K), 0.0);
    accumulate_gram(st.gram.data(), x, xs, M, K);
  }
  std::vector<float> mags;
  if (t_observer->percentile > 0.0) mags.reserve((size_t)(M * K));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) {
      const float v = std::fabs(x[m * xs + k]);
      if (v > st.absmax) st.absmax = v;
      if (t_observer->percentile > 0.0) mags.push_back(v);
    }
  }
  if (!mags.empty()) st.quantiles.push_back(quantile_of(mags, t_observer->percentile));
}

// How the inputs of a linear layer with weights of type t are rounded
// (ModelConfig::round_activations; kernels/linear.h "Rounded activations").
ActRounding input_rounding(const Model& m, DType t) {
  if (!m.config().round_activations) return ActRounding::None;
  if (t == DType::BF16) return ActRounding::BF16;
  if (t == DType::Q8_0 || t == DType::Q4_0) return ActRounding::Q8Block;
  return ActRounding::None;
}

// The weight side of a qlinear call on an I8 / I4 Weight (inputs set by the caller).
QLinearArgs qlinear_args(const Weight& w, const Weight* bias, int64_t M, float* y) {
  QLinearArgs q;
  q.M = M; q.N = w.rows; q.K = w.cols;
  q.x_scale = w.act_scale;
  q.w = w.data; q.w_stride = dtype_row_bytes(w.dtype, w.cols); q.w_dtype = w.dtype; q.w_scales = w.scales;
  if (bias && bias->data) { q.bias = bias->data; q.bias_dtype = bias->dtype; }
  q.y = y; q.y_stride = w.rows;
  return q;
}

// y[M, w.rows] = x[M, w.cols] (row stride xs) · wᵀ + bias
void run_linear(const Model& m, const Weight& w, const Weight* bias, const float* x, int64_t xs, int64_t M, float* y) {
  if (t_observer) observe(w, x, xs, M, w.cols);
  if (dtype_info(w.dtype).linear == LinearKernel::Quamba) {
    QLinearArgs q = qlinear_args(w, bias, M, y);
    q.x = x; q.x_stride = xs;
    qlinear(q);
    return;
  }
  LinearArgs a;
  a.x_rounding = input_rounding(m, w.dtype);
  a.M = M; a.N = w.rows; a.K = w.cols;
  a.x = x; a.x_stride = xs;
  a.w = w.data; a.w_stride = w.cols; a.w_dtype = w.dtype;
  if (bias && bias->data) { a.bias = bias->data; a.bias_dtype = bias->dtype; }
  a.y = y; a.y_stride = w.rows;
  linear(a);
}

// out_proj of y [M, d_inner]. With the online rotation (hadamard_out) y is
// replaced by T(y) first: fused with the int8 quantization when out_proj is
// W8A8 / W4A8 (hadamard_quantize, then qlinear on the int8 rows), else as a
// float transform (W4A16, float weights, and calibration, which observes
// the rotated float input).
void run_out_proj(const Model& m, const LayerWeights& L, const float* y, int64_t M, float* out) {
  const ModelConfig& c = m.config();
  const Weight& w = L.out_proj;
  const int64_t di = c.d_inner;
  if (!c.hadamard_out) {
    run_linear(m, w, &L.out_proj_bias, y, di, M, out);
    return;
  }
  if (dtype_info(w.dtype).linear == LinearKernel::Quamba && w.act_scale > 0.0f && !t_observer) {
    // int8 rows from the call's buffer pool (a float buffer of a quarter the count)
    Buf qbuf((size_t)((M * di + 3) / 4));
    int8_t* q = reinterpret_cast<int8_t*>(qbuf.data());
    HadamardQuantArgs h;
    h.rows = M; h.n = di; h.x = y; h.x_stride = di; h.inv_scale = 1.0f / w.act_scale;
    h.out = q; h.out_stride = di;
    hadamard_quantize(h);
    QLinearArgs a = qlinear_args(w, &L.out_proj_bias, M, out);
    a.xq = q; a.xq_stride = di;
    qlinear(a);
    return;
  }
  Buf ry((size_t)(M * di));
  HadamardArgs h;
  h.rows = M; h.n = di; h.x = y; h.x_stride = di; h.out = ry.data(); h.out_stride = di;
  hadamard_transform(h);
  run_linear(m, w, &L.out_proj_bias, ry.data(), di, M, out);
}

// h[t] = embedding row tokens[t], as float32: copied (f32), widened (f16 /
// bf16) or dequantised block by block (Q8_0 / Q4_0; d_model is a multiple of
// 32 for those, checked at load), or with its scales (I8 / I4).
void embed(const Model& m, const int32_t* tokens, int64_t n, float* h) {
  const Weight& e = m.embedding();
  const int64_t d = m.config().d_model;
  if (dtype_info(e.dtype).linear == LinearKernel::Quamba) {
    const int64_t stride = dtype_row_bytes(e.dtype, d);
    for (int64_t t = 0; t < n; ++t) qweight_row_to_f32(e.data, e.dtype, stride, e.scales, tokens[t], d, h + t * d);
  } else {
    for (int64_t t = 0; t < n; ++t) load_row_as_f32(e.data, e.dtype, (int64_t)tokens[t] * d, d, h + t * d);
  }
  if (m.config().hadamard_residual) {
    // The residual stream lives in the rotated basis: h <- T(h).
    HadamardArgs r;
    r.rows = n; r.n = d; r.x = h; r.x_stride = d; r.out = h; r.out_stride = d;
    hadamard_transform(r);
  }
}

// residual = h + residual (or h for the first layer); out = RMSNorm(residual) * w.
void add_norm(const Weight& w, float eps, const float* h, float* residual, bool first, int64_t n, int64_t d, float* out) {
  RmsNormArgs a;
  a.rows = n; a.dim = d;
  a.x = h; a.x_stride = d;
  a.residual_in = first ? nullptr : residual; a.residual_in_stride = d;
  a.residual_out = residual; a.residual_out_stride = d;
  a.weight = w.data; a.weight_dtype = w.dtype;
  a.eps = eps;
  a.out = out; a.out_stride = d;
  rms_norm(a);
}

// int8 input and output of the conv on the int8 SSM path (nullptr xq: float).
struct ConvInt8 {
  const int8_t* xq = nullptr;
  int64_t xq_stride = 0;
  int8_t* outq = nullptr;  // [n, channels], dense
};

// The q8 conv kernels' int8 input / output with the layer's conv scales.
ConvInt8Io conv_int8_io(const LayerWeights& L, const ConvInt8& q, int64_t channels) {
  return {q.xq, q.xq_stride, L.conv_in_scale.data(), q.outq, channels, L.conv_out_scale.data()};
}

// Causal conv (+ SiLU) over n tokens of one sequence, from and back into the
// layer's conv state in `slot` (the kernel's final state may not alias its
// initial state, hence the copy). On the int8 path (q.xq) it reads int8
// inputs and writes int8 outputs with the layer's conv scales.
void conv_prefill(Model& m, const LayerWeights& L, int64_t layer, int32_t slot, const float* x, int64_t x_stride,
                  int64_t channels, int64_t n, float* out, const ConvInt8& q = {}) {
  const int64_t K = m.config().d_conv;
  float* state = m.slot_state(slot) + m.conv_offset(layer);
  Buf final_state((size_t)(channels * (K - 1)));
  CausalConv1dArgs cv;
  cv.tokens = n; cv.channels = channels; cv.width = K; cv.nseq = 1;
  cv.x = x; cv.x_stride = x_stride;
  cv.weight = L.conv_w.data; cv.weight_dtype = L.conv_w.dtype; cv.weight_stride = K;
  if (L.conv_b.data) { cv.bias = L.conv_b.data; cv.bias_dtype = L.conv_b.dtype; }
  cv.initial_state = state; cv.init_seq_stride = channels * (K - 1); cv.init_ch_stride = K - 1;
  cv.final_state = final_state.data(); cv.final_seq_stride = channels * (K - 1); cv.final_ch_stride = K - 1;
  cv.silu = true;
  cv.out = out; cv.out_stride = channels;
  if (q.xq) {
    CausalConv1dQ8Args a;
    a.conv = cv;
    a.io = conv_int8_io(L, q, channels);
    causal_conv1d_q8(a);
  } else {
    causal_conv1d(cv);
  }
  std::copy(final_state.begin(), final_state.end(), state);
}

// One conv step (+ SiLU) for `batch` sequences, in place on their conv states
// (int8 path as conv_prefill).
void conv_step(Model& m, const LayerWeights& L, int64_t layer, const int32_t* slots, const float* x, int64_t x_stride,
               int64_t channels, int64_t batch, float* out, const ConvInt8& q = {}) {
  const int64_t K = m.config().d_conv;
  CausalConv1dUpdateArgs cv;
  cv.batch = batch; cv.channels = channels; cv.width = K;
  cv.x = x; cv.x_stride = x_stride;
  cv.weight = L.conv_w.data; cv.weight_dtype = L.conv_w.dtype; cv.weight_stride = K;
  if (L.conv_b.data) { cv.bias = L.conv_b.data; cv.bias_dtype = L.conv_b.dtype; }
  cv.conv_state = m.pool_base() + m.conv_offset(layer);
  cv.state_slot_stride = m.state_floats(); cv.state_ch_stride = K - 1;
  cv.state_indices = slots;
  cv.silu = true;
  cv.out = out; cv.out_stride = channels;
  if (q.xq) {
    CausalConv1dUpdateQ8Args a;
    a.conv = cv;
    a.io = conv_int8_io(L, q, channels);
    causal_conv1d_update_q8(a);
  } else {
    causal_conv1d_update(cv);
  }
}

// The int8 SSM path runs for checkpoints that have it, except while
// calibrating (the observer sees the float model).
bool ssm_int8(const Model& m) { return m.config().ssm_int8 && !t_observer; }

// Mamba-2 tail: gated RMSNorm of y with z (per group), then out_proj.
void gated_norm_out_proj(const Model& m, const LayerWeights& L, const float* y, const float* z, int64_t z_stride,
                         int64_t rows, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner;
  Buf yn((size_t)(rows * di));
  GatedRmsNormArgs g;
  g.rows = rows; g.dim = di; g.group_size = di / c.ngroups;
  g.y = y; g.y_stride = di;
  g.z = z; g.z_stride = z_stride;
  g.weight = L.gated_norm.data; g.weight_dtype = L.gated_norm.dtype;
  g.eps = c.norm_eps;
  g.out = yn.data(); g.out_stride = di;
  gated_rms_norm(g);
  run_out_proj(m, L, yn.data(), rows, out);
}

// Mamba-1 front half shared by prefill and decode: in_proj, conv (+ SiLU),
// x_proj and dt_proj for M rows. Float path: xc holds u; int8 path: uq holds
// u (the conv's int8 output, x_proj's input) and bq / cq the quantized B, C.
struct Mamba1Front {
  float* xz;    // [M, 2 di]  x | z
  float* xc;    // [M, di]    u (float path)
  float* xdbl;  // [M, R+2N]  dt | B | C
  float* delta; // [M, di]
  int8_t *xq, *uq, *bq, *cq;  // int8 path: [M, di], [M, di], [M, N], [M, N]
};

void mamba1_front(Model& m, const LayerWeights& L, int64_t layer, const float* hn, int64_t M, const Mamba1Front& f,
                  bool q8, const std::function<void(const ConvInt8&)>& conv) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank, xdim = R + 2 * N;
  run_linear(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, M, f.xz);
  if (t_observer) observe_channels(mixer_name(layer) + "conv1d:input", f.xz, 2 * di, M, di);
  if (q8) {
    quantize_channels_int8(M, di, f.xz, 2 * di, L.conv_in_scale.data(), f.xq, di);
    conv(ConvInt8{f.xq, di, f.uq});
    QLinearArgs q = qlinear_args(L.x_proj, nullptr, M, f.xdbl);  // [dt | B | C]
    q.xq = f.uq; q.xq_stride = di;
    qlinear(q);
  } else {
    conv(ConvInt8{});
    run_linear(m, L.x_proj, nullptr, f.xc, di, M, f.xdbl);
  }
  if (t_observer) observe_channels(mixer_name(layer) + "x_proj:output", f.xdbl, xdim, M, xdim);
  run_linear(m, L.dt_proj, nullptr, f.xdbl, xdim, M, f.delta);  // bias goes to the scan
  if (q8) {
    quantize_channels_int8(M, N, f.xdbl + R, xdim, L.B_scale.data(), f.bq, N);
    quantize_channels_int8(M, N, f.xdbl + R + N, xdim, L.C_scale.data(), f.cq, N);
  }
}

void mamba1_mixer_prefill(Model& m, const LayerWeights& L, int64_t layer, int32_t slot, const float* hn, int64_t n,
                          float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank, xdim = R + 2 * N;
  const bool q8 = ssm_int8(m);
  float* state = m.slot_state(slot);
  Buf xz((size_t)(n * 2 * di)), xc((size_t)(q8 ? 0 : n * di)), xdbl((size_t)(n * xdim)), delta((size_t)(n * di)),
      y((size_t)(n * di));
  I8Buf xq((size_t)(q8 ? n * di : 0)), uq((size_t)(q8 ? n * di : 0)), bq((size_t)(q8 ? n * N : 0)),
      cq((size_t)(q8 ? n * N : 0));
  const Mamba1Front f{xz.data(), xc.data(), xdbl.data(), delta.data(), xq.data(), uq.data(), bq.data(), cq.data()};
  mamba1_front(m, L, layer, hn, n, f, q8, [&](const ConvInt8& q) {
    conv_prefill(m, L, layer, slot, xz.data(), 2 * di, di, n, xc.data(), q);  // x = first half of in_proj
  });

  SelectiveScanArgs s;
  s.batch = 1; s.seqlen = n; s.dim = di; s.dstate = N; s.ngroups = 1;
  s.u = xc.data(); s.u_token_stride = di; s.u_batch_stride = n * di;
  s.delta = delta.data(); s.delta_token_stride = di; s.delta_batch_stride = n * di;
  s.B = xdbl.data() + R; s.B_token_stride = xdim; s.B_batch_stride = n * xdim;
  s.C = xdbl.data() + R + N; s.C_token_stride = xdim; s.C_batch_stride = n * xdim;
  s.z = xz.data() + di; s.z_token_stride = 2 * di; s.z_batch_stride = n * 2 * di;
  s.out = y.data(); s.out_token_stride = di; s.out_batch_stride = n * di;
  s.A = L.A.data(); s.D = L.D.data(); s.delta_bias = L.dt_bias.data(); s.delta_softplus = true;
  s.initial_state = state + m.ssm_offset(layer); s.initial_state_batch_stride = di * N;
  s.last_state = state + m.ssm_offset(layer); s.last_state_batch_stride = di * N;  // may alias
  if (q8) {
    SelectiveScanQ8Args q;
    q.scan = s;
    q.u = {uq.data(), n * di, di, L.conv_out_scale.data()};
    q.B = {bq.data(), n * N, N, L.B_scale.data()};
    q.C = {cq.data(), n * N, N, L.C_scale.data()};
    selective_scan_q8(q);
  } else {
    selective_scan(s);
  }

  run_out_proj(m, L, y.data(), n, out);
}

// The SSD / state update's int8 operands x, B, C: columns of the int8 conv
// output [M, conv_dim] (row stride conv_dim, as token stride for the SSD and
// batch stride for the update), with the conv's output scales.
struct Mamba2Int8 {
  Int8Operand x, B, C;
};
Mamba2Int8 mamba2_int8(const ModelConfig& c, const LayerWeights& L, const int8_t* xbc, bool rows_are_tokens) {
  const int64_t di = c.d_inner, GN = c.ngroups * c.d_state, C = c.conv_dim();
  const float* s = L.conv_out_scale.data();
  auto op = [&](int64_t off) {
    return rows_are_tokens ? Int8Operand{xbc + off, 0, C, s + off} : Int8Operand{xbc + off, C, 0, s + off};
  };
  return {op(0), op(di), op(di + GN)};
}

void mamba2_mixer_prefill(Model& m, const LayerWeights& L, int64_t layer, int32_t slot, const float* hn, int64_t n,
                          float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, G = c.ngroups, H = c.nheads, Pd = c.headdim;
  const int64_t C = c.conv_dim(), P = c.in_proj_dim();
  const bool q8 = ssm_int8(m);
  float* state = m.slot_state(slot);
  Buf zxbcdt((size_t)(n * P)), xbc((size_t)(q8 ? 0 : n * C)), y((size_t)(n * di)), ssm_final((size_t)(H * Pd * N));
  I8Buf xbc_in((size_t)(q8 ? n * C : 0)), xbc_q((size_t)(q8 ? n * C : 0));
  run_linear(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, n, zxbcdt.data());
  if (t_observer) observe_channels(mixer_name(layer) + "conv1d:input", zxbcdt.data() + di, P, n, C);

  if (q8) {
    quantize_channels_int8(n, C, zxbcdt.data() + di, P, L.conv_in_scale.data(), xbc_in.data(), C);
    conv_prefill(m, L, layer, slot, nullptr, 0, C, n, nullptr, ConvInt8{xbc_in.data(), C, xbc_q.data()});
  } else {
    conv_prefill(m, L, layer, slot, zxbcdt.data() + di, P, C, n, xbc.data());  // xBC follows z
  }
  if (t_observer) observe_channels(mixer_name(layer) + "conv1d:output", xbc.data(), C, n, C, 0, di);

  const int32_t cu[2] = {0, (int32_t)n};
  SsdChunkScanArgs s;
  s.tokens = n; s.nheads = H; s.headdim = Pd; s.ngroups = G; s.dstate = N; s.nseq = 1;
  s.x = xbc.data(); s.x_stride = C;
  s.B = xbc.data() + di; s.B_stride = C;
  s.C = xbc.data() + di + G * N; s.C_stride = C;
  s.dt = zxbcdt.data() + di + C; s.dt_stride = P;
  s.A = L.A.data(); s.D = L.D.data(); s.dt_bias = L.dt_bias.data(); s.dt_softplus = true;
  s.dt_min = c.dt_min; s.dt_max = c.dt_max;
  s.cu_seqlens = cu;
  s.initial_states = state + m.ssm_offset(layer);
  s.final_states = ssm_final.data();
  s.out = y.data(); s.out_stride = di;
  if (q8) {
    const Mamba2Int8 v = mamba2_int8(c, L, xbc_q.data(), true);
    ssd_chunk_scan_q8(SsdChunkScanQ8Args{s, v.x, v.B, v.C});
  } else {
    ssd_chunk_scan(s);
  }
  std::copy(ssm_final.begin(), ssm_final.end(), state + m.ssm_offset(layer));

  gated_norm_out_proj(m, L, y.data(), zxbcdt.data(), P, n, out);
}

void mamba1_mixer_step(Model& m, const LayerWeights& L, int64_t layer, const int32_t* slots, const float* hn,
                       int64_t B, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, R = c.dt_rank, xdim = R + 2 * N;
  const bool q8 = ssm_int8(m);
  Buf xz((size_t)(B * 2 * di)), xc((size_t)(q8 ? 0 : B * di)), xdbl((size_t)(B * xdim)), delta((size_t)(B * di)),
      y((size_t)(B * di));
  I8Buf xq((size_t)(q8 ? B * di : 0)), uq((size_t)(q8 ? B * di : 0)), bq((size_t)(q8 ? B * N : 0)),
      cq((size_t)(q8 ? B * N : 0));
  const Mamba1Front f{xz.data(), xc.data(), xdbl.data(), delta.data(), xq.data(), uq.data(), bq.data(), cq.data()};
  mamba1_front(m, L, layer, hn, B, f, q8, [&](const ConvInt8& q) {
    conv_step(m, L, layer, slots, xz.data(), 2 * di, di, B, xc.data(), q);
  });

  SelectiveStateUpdateArgs s;
  s.batch = B; s.nheads = di; s.headdim = 1; s.dstate = N; s.ngroups = 1; s.a_per_state = true;
  s.state = m.pool_base() + m.ssm_offset(layer); s.state_batch_stride = m.state_floats(); s.state_indices = slots;
  s.x = xc.data(); s.x_batch_stride = di;
  s.dt = delta.data(); s.dt_batch_stride = di;
  s.B = xdbl.data() + R; s.B_batch_stride = xdim;
  s.C = xdbl.data() + R + N; s.C_batch_stride = xdim;
  s.z = xz.data() + di; s.z_batch_stride = 2 * di;
  s.out = y.data(); s.out_batch_stride = di;
  s.A = L.A.data(); s.D = L.D.data(); s.dt_bias = L.dt_bias.data(); s.dt_softplus = true;
  if (q8) {
    SelectiveStateUpdateQ8Args q;
    q.upd = s;
    q.x = {uq.data(), di, 0, L.conv_out_scale.data()};
    q.B = {bq.data(), N, 0, L.B_scale.data()};
    q.C = {cq.data(), N, 0, L.C_scale.data()};
    selective_state_update_q8(q);
  } else {
    selective_state_update(s);
  }

  run_out_proj(m, L, y.data(), B, out);
}

void mamba2_mixer_step(Model& m, const LayerWeights& L, int64_t layer, const int32_t* slots, const float* hn,
                       int64_t B, float* out) {
  const ModelConfig& c = m.config();
  const int64_t di = c.d_inner, N = c.d_state, G = c.ngroups, H = c.nheads, Pd = c.headdim;
  const int64_t C = c.conv_dim(), P = c.in_proj_dim();
  const bool q8 = ssm_int8(m);
  Buf zxbcdt((size_t)(B * P)), xbc((size_t)(q8 ? 0 : B * C)), y((size_t)(B * di));
  I8Buf xbc_in((size_t)(q8 ? B * C : 0)), xbc_q((size_t)(q8 ? B * C : 0));
  run_linear(m, L.in_proj, &L.in_proj_bias, hn, c.d_model, B, zxbcdt.data());

  if (q8) {
    quantize_channels_int8(B, C, zxbcdt.data() + di, P, L.conv_in_scale.data(), xbc_in.data(), C);
    conv_step(m, L, layer, slots, nullptr, 0, C, B, nullptr, ConvInt8{xbc_in.data(), C, xbc_q.data()});
  } else {
    conv_step(m, L, layer, slots, zxbcdt.data() + di, P, C, B, xbc.data());
  }

  SelectiveStateUpdateArgs s;
  s.batch = B; s.nheads = H; s.headdim = Pd; s.dstate = N; s.ngroups = G; s.a_per_state = false;
  s.state = m.pool_base() + m.ssm_offset(layer); s.state_batch_stride = m.state_floats(); s.state_indices = slots;
  s.x = xbc.data(); s.x_batch_stride = C;
  s.B = xbc.data() + di; s.B_batch_stride = C;
  s.C = xbc.data() + di + G * N; s.C_batch_stride = C;
  s.out = y.data(); s.out_batch_stride = di;
  s.A = L.A.data(); s.D = L.D.data();
  s.dt = zxbcdt.data() + di + C; s.dt_batch_stride = P;
  s.dt_bias = L.dt_bias.data(); s.dt_softplus = true;
  s.dt_min = c.dt_min; s.dt_max = c.dt_max;
  if (q8) {
    const Mamba2Int8 v = mamba2_int8(c, L, xbc_q.data(), false);
    selective_state_update_q8(SelectiveStateUpdateQ8Args{s, v.x, v.B, v.C});
  } else {
    selective_state_update(s);
  }

  gated_norm_out_proj(m, L, y.data(), zxbcdt.data(), P, B, out);
}

// logits for rows [row0, row0 + rows) of h/residual.
void head(const Model& m, const float* h, const float* residual, int64_t row0, int64_t rows, float* logits) {
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model;
  Buf hf((size_t)(rows * d)), res_out((size_t)(rows * d));
  RmsNormArgs a;
  a.rows = rows; a.dim = d;
  a.x = h + row0 * d; a.x_stride = d;
  a.residual_in = residual + row0 * d; a.residual_in_stride = d;
  Buf back((size_t)(c.hadamard_residual ? rows * d : 0));
  if (c.hadamard_residual) {
    // Back from the rotated basis before the final norm (whose weight and
    // the tied head are the checkpoint's own): r <- Tᵀ(h + residual).
    for (int64_t i = 0; i < rows * d; ++i) back.data()[i] = h[row0 * d + i] + residual[row0 * d + i];
    HadamardArgs r;
    r.rows = rows; r.n = d; r.x = back.data(); r.x_stride = d; r.transpose = true; r.out = back.data(); r.out_stride = d;
    hadamard_transform(r);
    a.x = back.data();
    a.residual_in = nullptr;
  }
  a.residual_out = res_out.data(); a.residual_out_stride = d;
  a.weight = m.norm_f().data; a.weight_dtype = m.norm_f().dtype;
  a.eps = c.norm_eps;
  a.out = hf.data(); a.out_stride = d;
  rms_norm(a);
  run_linear(m, m.lm_head(), nullptr, hf.data(), d, rows, logits);
}

}  // namespace

ObserverScope::ObserverScope(ActivationObserver* obs) : prev_(t_observer) { t_observer = obs; }
ObserverScope::~ObserverScope() { t_observer = prev_; }

void prefill(Model& m, int32_t slot, const int32_t* tokens, int64_t n, LogitsMode mode, float* logits) {
  BufScope buffers;
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model, V = c.vocab;
  for (int64_t t0 = 0; t0 < n; t0 += kPrefillChunk) {
    const int64_t len = std::min(kPrefillChunk, n - t0);
    Buf h((size_t)(len * d)), residual((size_t)(len * d)), hn((size_t)(len * d));
    embed(m, tokens + t0, len, h.data());
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const LayerWeights& L = m.layers()[(size_t)l];
      add_norm(L.norm, c.norm_eps, h.data(), residual.data(), l == 0, len, d, hn.data());
      if (c.arch == Arch::Mamba1) mamba1_mixer_prefill(m, L, l, slot, hn.data(), len, h.data());
      else mamba2_mixer_prefill(m, L, l, slot, hn.data(), len, h.data());
    }
    if (mode == LogitsMode::All) head(m, h.data(), residual.data(), 0, len, logits + t0 * V);
    else if (mode == LogitsMode::Last && t0 + len == n) head(m, h.data(), residual.data(), len - 1, 1, logits);
  }
}

void decode_step(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch, float* logits) {
  BufScope buffers;
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model;
  Buf h((size_t)(batch * d)), residual((size_t)(batch * d)), hn((size_t)(batch * d));
  embed(m, tokens, batch, h.data());
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = m.layers()[(size_t)l];
    add_norm(L.norm, c.norm_eps, h.data(), residual.data(), l == 0, batch, d, hn.data());
    if (c.arch == Arch::Mamba1) mamba1_mixer_step(m, L, l, slots, hn.data(), batch, h.data());
    else mamba2_mixer_step(m, L, l, slots, hn.data(), batch, h.data());
  }
  head(m, h.data(), residual.data(), 0, batch, logits);
}

}  // namespace nm::engine
