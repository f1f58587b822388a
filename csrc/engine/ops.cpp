#include "engine/backend.h"
#include "engine/ops.h"

#include "engine/blocks/block.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cpu/threadpool.h"
#include "kernels/linear.h"
#include "kernels/norm.h"

namespace nm::engine {

namespace {

thread_local ActivationObserver* t_observer = nullptr;

// Nearest rank: the smallest value with at least `percentile` of the elements at or below it.
float quantile_of(std::vector<float>& mags, double percentile) {
  const size_t n = mags.size();
  size_t rank = (size_t)std::ceil(percentile * (double)n);
  rank = std::min(n, std::max<size_t>(rank, 1)) - 1;
  std::nth_element(mags.begin(), mags.begin() + (std::ptrdiff_t)rank, mags.end());
  return mags[rank];
}

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

// Rows x [M, K] (stride xs) of an activation, readable on the host: x itself
// when the call's backend (its BufScope's) is the host's, else a copy
// downloaded into `copy`.
const float* host_rows(const float* x, int64_t xs, int64_t M, int64_t K, std::vector<float>& copy) {
  Backend* b = current_buf_backend();
  if (!b || b->host_addressable() || M <= 0 || K <= 0) return x;
  const size_t n = (size_t)((M - 1) * xs + K);
  copy.resize(n);
  b->download(copy.data(), x, n * sizeof(float));
  return copy.data();
}

// Records the statistics of a linear layer's input rows x [M, K] (stride xs).
void observe(const Weight& w, const float* x_any, int64_t xs, int64_t M, int64_t K) {
  std::vector<float> copy;
  const float* x = host_rows(x_any, xs, M, K, copy);
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

}  // namespace

ActivationObserver* observer() { return t_observer; }

ObserverScope::ObserverScope(ActivationObserver* obs) : prev_(t_observer) { t_observer = obs; }
ObserverScope::~ObserverScope() { t_observer = prev_; }

void observe_channels(const std::string& name, const float* x_any, int64_t xs, int64_t M, int64_t C, int64_t q0,
                      int64_t q1) {
  std::vector<float> copy;
  const float* x = host_rows(x_any, xs, M, C, copy);
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


std::string layer_name(int64_t layer) { return "backbone.layers." + std::to_string(layer) + "."; }
std::string mixer_name(int64_t layer) { return layer_name(layer) + "mixer."; }

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
  q.w_layout = w.layout;
  if (bias && bias->data) { q.bias = bias->data; q.bias_dtype = bias->dtype; }
  q.y = y; q.y_stride = w.rows;
  return q;
}

namespace {
// y[M, w.rows] (row stride ys) = x · wᵀ + bias.
void linear_into(const Model& m, const Weight& w, const Weight* bias, const float* x, int64_t xs, int64_t M, float* y,
                 int64_t ys) {
  if (dtype_info(w.dtype).linear == LinearKernel::Quamba) {
    QLinearArgs q = qlinear_args(w, bias, M, y);
    q.x = x; q.x_stride = xs;
    q.y_stride = ys;
    m.backend().qlinear(q);
    return;
  }
  LinearArgs a;
  a.x_rounding = input_rounding(m, w.dtype);
  a.M = M; a.N = w.rows; a.K = w.cols;
  a.x = x; a.x_stride = xs;
  a.w = w.data; a.w_stride = w.cols; a.w_dtype = w.dtype; a.w_layout = w.layout;
  if (bias && bias->data) { a.bias = bias->data; a.bias_dtype = bias->dtype; }
  a.y = y; a.y_stride = ys;
  m.backend().linear(a);
}
}  // namespace

// y[M, w.rows] = x[M, w.cols] (row stride xs) · wᵀ + bias
void run_linear(const Model& m, const Weight& w, const Weight* bias, const float* x, int64_t xs, int64_t M, float* y) {
  if (t_observer) observe(w, x, xs, M, w.cols);
  linear_into(m, w, bias, x, xs, M, y, w.rows);
}

bool weight_rows(const Weight& w, int64_t r0, int64_t r1, Weight* out) {
  if (!w.data || r0 < 0 || r1 > w.rows || r0 >= r1) return false;
  if (w.layout == WeightLayout::Panels && r0 % kPanelRows != 0) return false;
  Weight s = w;
  s.rows = r1 - r0;
  s.data = static_cast<const char*>(w.data) + dtype_layout_bytes(w.dtype, w.layout, r0, w.cols);
  if (w.scales)
    s.scales = w.scales + (w.layout == WeightLayout::Panels ? dtype_panel_scale_count(w.dtype, r0, w.cols)
                                                            : dtype_scale_count(w.dtype, r0, w.cols));
  *out = s;
  return true;
}

bool run_linear_rows(const Model& m, const Weight& w, const Weight* bias, const float* x, int64_t xs, int64_t M,
                     float* y, int64_t r0, int64_t r1) {
  Weight part, part_bias;
  if (t_observer || !weight_rows(w, r0, r1, &part)) return false;
  const bool has_bias = bias && bias->data;
  if (has_bias) {
    if (dtype_size(bias->dtype) == 0) return false;
    part_bias = *bias;
    part_bias.cols = r1 - r0;
    part_bias.data = static_cast<const char*>(bias->data) + r0 * dtype_size(bias->dtype);
  }
  linear_into(m, part, has_bias ? &part_bias : nullptr, x, xs, M, y + r0, w.rows);
  return true;
}

// residual = h + residual (or h for the first layer); out = RMSNorm(residual) * w.
void add_norm(const Model& m, const Weight& w, float eps, const float* h, float* residual, bool first, int64_t n,
              int64_t d, float* out) {
  RmsNormArgs a;
  a.rows = n; a.dim = d;
  a.x = h; a.x_stride = d;
  a.residual_in = first ? nullptr : residual; a.residual_in_stride = d;
  a.residual_out = residual; a.residual_out_stride = d;
  a.weight = w.data; a.weight_dtype = w.dtype;
  a.eps = eps;
  a.out = out; a.out_stride = d;
  m.backend().rms_norm(a);
}

uint64_t packed_weight_bytes(const Weight& w) {
  return w.data ? (uint64_t)dtype_layout_bytes(w.dtype, w.layout, w.rows, w.cols) : 0;
}

uint64_t weight_bytes(const Weight& w) {
  if (!w.data) return 0;
  return (uint64_t)w.rows * (uint64_t)dtype_row_bytes(w.dtype, w.cols);
}

}  // namespace nm::engine
