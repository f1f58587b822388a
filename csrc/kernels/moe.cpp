// MoE router, alignment and dispatch (moe.h). The expert products are
// linear() / qlinear(); the element-wise steps are per level (moe_impl.h).
#include "kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/isa_dispatch.h"
#include "kernels/linear.h"
#include "kernels/qlinear.h"

namespace nm {

NM_DECLARE_ISA_FN(void moe_swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride,
                                       int64_t rows, int64_t I))
NM_DECLARE_ISA_FN(void moe_combine_row(const float* const* ys, int64_t k, const float* shared, float* out, int64_t d))

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("node-mamba: moe: " + what); }

// a ranks above b: larger, a NaN below every number; equal values (and two
// NaNs) rank by index, lower first.
inline bool ranks_above(float va, int64_t ia, float vb, int64_t ib) {
  const bool na = va != va, nb = vb != vb;
  if (na != nb) return nb;
  if (!na && va != vb) return va > vb;
  return ia < ib;
}

// The k best of score[0:n] among those with allowed[i] (nullptr: all), best
// first, into out[0:k]. `taken` is scratch of n bytes.
void top_k(const float* score, int64_t n, const char* allowed, int64_t k, int32_t* out, std::vector<char>& taken) {
  taken.assign((size_t)n, 0);
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (taken[i] || (allowed && !allowed[i])) continue;
      if (best < 0 || ranks_above(score[i], i, score[best], best)) best = i;
    }
    if (best < 0) fail("top-k over fewer candidates than k");
    taken[best] = 1;
    out[j] = (int32_t)best;
  }
}

inline float sigmoidf(float v) { return 1.0f / (1.0f + std::exp(-v)); }

}  // namespace

void moe_route(const MoeRouteArgs& a) {
  if (a.E < 1 || a.k < 1 || a.k > a.E) fail("need 1 <= k <= E");
  if (a.router == MoeRouter::SigmoidGrouped) {
    if (a.n_group < 1 || a.E % a.n_group != 0) fail("n_group must divide E");
    if (a.topk_group < 1 || a.topk_group > a.n_group) fail("need 1 <= topk_group <= n_group");
    if (a.k > a.topk_group * (a.E / a.n_group)) fail("k exceeds the experts of the kept groups");
  }
  const int64_t E = a.E, k = a.k;
  std::vector<float> p((size_t)E), c((size_t)E);
  std::vector<char> taken, allowed((size_t)E);
  for (int64_t t = 0; t < a.T; ++t) {
    const float* l = a.logits + t * a.logits_stride;
    int32_t* ids = a.ids + t * k;
    float* w = a.weights + t * k;
    switch (a.router) {
      case MoeRouter::SoftmaxTopk: {
        float mx = l[0];
        for (int64_t e = 1; e < E; ++e) mx = std::max(mx, l[e]);
        float sum = 0.0f;
        for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
        for (int64_t e = 0; e < E; ++e) p[e] = p[e] / sum;
        top_k(p.data(), E, nullptr, k, ids, taken);
        for (int64_t j = 0; j < k; ++j) w[j] = p[ids[j]];
        break;
      }
      case MoeRouter::TopkSoftmax: {
        top_k(l, E, nullptr, k, ids, taken);
        const float mx = l[ids[0]];
        float sum = 0.0f;
        for (int64_t j = 0; j < k; ++j) sum += (w[j] = std::exp(l[ids[j]] - mx));
        for (int64_t j = 0; j < k; ++j) w[j] = w[j] / sum;
        break;
      }
      case MoeRouter::SigmoidGrouped: {
        for (int64_t e = 0; e < E; ++e) {
          p[e] = sigmoidf(l[e]);
          c[e] = a.bias ? p[e] + a.bias[e] : p[e];
        }
        const int64_t G = a.n_group, gs = E / G;
        if (a.topk_group < G) {
          std::vector<float> gscore((size_t)G);
          int32_t two[2];
          for (int64_t g = 0; g < G; ++g) {
            const int64_t m = std::min<int64_t>(2, gs);
            top_k(c.data() + g * gs, gs, nullptr, m, two, taken);
            gscore[g] = m == 2 ? c[g * gs + two[0]] + c[g * gs + two[1]] : c[g * gs + two[0]];
          }
          std::vector<int32_t> keep((size_t)a.topk_group);
          top_k(gscore.data(), G, nullptr, a.topk_group, keep.data(), taken);
          std::fill(allowed.begin(), allowed.end(), 0);
          for (int32_t g : keep) std::fill(allowed.begin() + g * gs, allowed.begin() + (g + 1) * gs, 1);
          top_k(c.data(), E, allowed.data(), k, ids, taken);
        } else {
          top_k(c.data(), E, nullptr, k, ids, taken);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < k; ++j) sum += (w[j] = p[ids[j]]);
        // As HF DeepseekV3TopkRouter: w / (Σ w + 1e-20) · routed_scaling_factor.
        const float den = sum + 1e-20f;
        for (int64_t j = 0; j < k; ++j) {
          const float v = a.norm_topk_prob ? w[j] / den : w[j];
          w[j] = v * a.routed_scaling_factor;
        }
        break;
      }
      default: fail("unknown router");
    }
  }
}

namespace {

bool is_quamba(DType t) { return dtype_info(t).linear == LinearKernel::Quamba; }

// Bytes from a projection's row 0 to row `rows` (within one expert).
int64_t rows_bytes(const MoeWeight& w, int64_t rows) {
  return is_quamba(w.dtype) ? rows * w.row_stride : dtype_row_bytes(w.dtype, rows * w.row_stride);
}

// Expert e's matrix (row 0).
const void* expert_matrix(const MoeWeight& w, int64_t e) {
  return w.experts ? w.experts[e] : static_cast<const char*>(w.w) + e * w.expert_stride;
}

// Expert e's scales (I8 / I4).
const float* expert_scales(const MoeWeight& w, int64_t e) {
  return w.expert_scales ? w.expert_scales[e] : w.scales + e * w.scales_expert_stride;
}

// Scale floats per row of an I8 / I4 matrix with K columns.
int64_t scales_per_row(DType t, int64_t K) { return dtype_scale_count(t, 1, K); }

// linear()'s arguments for expert e's matrix of w (a float-kernel format),
// rows [0, N), no bias.
LinearArgs float_args(const MoeWeight& w, int64_t e, const float* x, int64_t xs, const int32_t* x_rows, int64_t M,
                      int64_t K, int64_t N, float* y, int64_t ys) {
  LinearArgs l;
  l.M = M; l.N = N; l.K = K;
  l.x = x; l.x_stride = xs; l.x_rows = x_rows;
  l.w = expert_matrix(w, e); l.w_stride = w.row_stride; l.w_dtype = w.dtype; l.w_layout = w.layout;
  l.x_rounding = w.x_rounding;
  l.y = y; l.y_stride = ys;
  return l;
}

// y [M, N] (stride ys) = x [M, K] (stride xs; row m at x_rows[m] when given)
// · expert e's matrix of w (rows [0, N)), no bias.
void project(const MoeWeight& w, int64_t e, const float* x, int64_t xs, const int32_t* x_rows, int64_t M, int64_t K,
             int64_t N, float* y, int64_t ys) {
  if (is_quamba(w.dtype)) {
    QLinearArgs q;
    q.M = M; q.N = N; q.K = K;
    q.x = x; q.x_stride = xs; q.x_rows = x_rows;
    q.x_scale = w.x_scale ? w.x_scale[e] : 0.0f;
    q.w = expert_matrix(w, e); q.w_stride = w.row_stride; q.w_dtype = w.dtype; q.w_layout = w.layout;
    q.w_scales = expert_scales(w, e);
    q.y = y; q.y_stride = ys;
    qlinear(q);
  } else {
    linear(float_args(w, e, x, xs, x_rows, M, K, N, y, ys));
  }
}

// Gate and up stored as one [2I, d] matrix per expert (Granite's
// input_linear): one product of N = 2I instead of two.
bool gate_up_adjacent(const MoeArgs& a) {
  const MoeWeight &g = a.gate, &u = a.up;
  if (g.dtype != u.dtype || g.row_stride != u.row_stride || g.x_rounding != u.x_rounding) return false;
  if (g.layout != WeightLayout::Rows || u.layout != WeightLayout::Rows) return false;  // panels: two products
  if ((g.experts == nullptr) != (u.experts == nullptr)) return false;
  if (!g.experts && g.expert_stride != u.expert_stride) return false;
  for (int64_t e = 0; e < (g.experts ? a.E : 1); ++e)
    if (static_cast<const char*>(expert_matrix(g, e)) + rows_bytes(g, a.I) != expert_matrix(u, e)) return false;
  if (!is_quamba(g.dtype)) return true;
  for (int64_t e = 0; e < a.E; ++e)
    if (expert_scales(g, e) + a.I * scales_per_row(g.dtype, a.d) != expert_scales(u, e)) return false;
  if ((g.x_scale == nullptr) != (u.x_scale == nullptr)) return false;
  if (g.x_scale)
    for (int64_t e = 0; e < a.E; ++e)
      if (g.x_scale[e] != u.x_scale[e]) return false;
  return true;
}

// h [M, I] = SwiGLU of expert e's gate and up products on the unit's rows
// of x, computed in the products' epilogue (linear_swiglu) where the float
// formats' few-row GEMM runs; false: not done (other formats or sizes).
bool swiglu_in_epilogue(const MoeArgs& a, int64_t e, const int32_t* rows, int64_t M, float* h) {
  const MoeWeight &g = a.gate, &u = a.up;
  if (is_quamba(g.dtype) || g.dtype != u.dtype || g.row_stride != u.row_stride || g.x_rounding != u.x_rounding)
    return false;
  LinearSwiglu sw;
  sw.w_up = expert_matrix(u, e);
  sw.h = h;
  sw.h_stride = a.I;
  return linear_swiglu(float_args(g, e, a.x, a.x_stride, rows, M, a.d, a.I, nullptr, 0), sw);
}

// Scratch of the calling thread, reused across calls.
float* unit_scratch(int64_t floats) {
  thread_local std::vector<float> buf;
  if ((int64_t)buf.size() < floats) buf.resize((size_t)floats);
  return buf.data();
}

struct Unit {
  int32_t e;
  int64_t p0, rows;  // sorted positions [p0, p0 + rows)
};

}  // namespace

void moe(const MoeArgs& a, MoeAlgo algo) {
  const int64_t T = a.T, E = a.E, k = a.k, d = a.d, I = a.I;
  if (k < 1 || k > E) fail("need 1 <= k <= E");
  for (const MoeWeight* w : {&a.gate, &a.up, &a.down}) {
    const LinearKernel lk = dtype_info(w->dtype).linear;
    if (lk != LinearKernel::Float && lk != LinearKernel::Quamba)
      fail(std::string("unsupported expert weight format ") + dtype_name(w->dtype));
    if (w->dtype == DType::I8 && !w->x_scale) fail("i8 expert weights need per-expert input scales (x_scale)");
  }
  const int64_t P = T * k;
  for (int64_t i = 0; i < P; ++i)
    if (a.ids[i] < 0 || a.ids[i] >= E) fail("expert id " + std::to_string(a.ids[i]) + " out of range");
  if (T <= 0 || d <= 0) return;

  // 1. Align: counts, runs padded to kMoeBlockM, pairs sorted by expert.
  std::vector<int64_t> count((size_t)E, 0), off((size_t)E + 1, 0);
  for (int64_t i = 0; i < P; ++i) ++count[a.ids[i]];
  for (int64_t e = 0; e < E; ++e) off[e + 1] = off[e] + (count[e] + kMoeBlockM - 1) / kMoeBlockM * kMoeBlockM;
  const int64_t total = off[E];
  std::vector<int64_t> sorted((size_t)total, P), pos((size_t)P);  // P: padding sentinel
  {
    std::vector<int64_t> cur(off.begin(), off.end() - 1);
    for (int64_t i = 0; i < P; ++i) {
      const int64_t p = cur[a.ids[i]]++;
      sorted[p] = i;
      pos[i] = p;
    }
  }
  std::vector<Unit> units;
  for (int64_t e = 0; e < E; ++e)
    for (int64_t c0 = 0; c0 < count[e]; c0 += kMoeChunkRows)
      units.push_back({(int32_t)e, off[e] + c0, std::min(kMoeChunkRows, count[e] - c0)});

  // Expert outputs, weighted, in sorted order (padding rows never written).
  std::unique_ptr<float[]> own;
  float* ys = a.workspace;
  if (!ys || a.workspace_floats < total * d) {
    own.reset(new float[(size_t)std::max<int64_t>(total * d, 1)]);
    ys = own.get();
  }
  const bool fused = gate_up_adjacent(a);

  // The token of each sorted pair (the rows GEMM 1 gathers from x).
  std::vector<int32_t> token((size_t)total, 0);
  for (int64_t p = 0; p < total; ++p)
    if (sorted[p] < P) token[p] = (int32_t)(sorted[p] / k);

  // 2. One unit: gate/up on its tokens' rows of x (gathered by the loads of
  // the products, LinearArgs::x_rows), SwiGLU, down, weight.
  auto run_unit = [&](const Unit& u) {
    const int64_t M = u.rows;
    float* gu = unit_scratch(M * 3 * I);
    float* h = gu + M * 2 * I;
    const int32_t* rows = token.data() + u.p0;
    if (!(a.swiglu_epilogue && swiglu_in_epilogue(a, u.e, rows, M, h))) {
      if (fused) {
        project(a.gate, u.e, a.x, a.x_stride, rows, M, d, 2 * I, gu, 2 * I);
      } else {
        project(a.gate, u.e, a.x, a.x_stride, rows, M, d, I, gu, 2 * I);
        project(a.up, u.e, a.x, a.x_stride, rows, M, d, I, gu + I, 2 * I);
      }
      NM_ISA_CALL(moe_swiglu_rows, gu, 2 * I, I, h, I, M, I);
    }
    float* yu = ys + u.p0 * d;
    project(a.down, u.e, h, I, nullptr, M, I, d, yu, d);
    for (int64_t r = 0; r < M; ++r) {
      const float w = a.weights[sorted[u.p0 + r]];
      float* y = yu + r * d;
      for (int64_t i = 0; i < d; ++i) y[i] = y[i] * w;
    }
  };

  const int64_t nth = cpu::pool().size();
  if (algo == MoeAlgo::Auto)
    algo = (int64_t)units.size() < nth ? MoeAlgo::Decode : MoeAlgo::Batched;
  if (algo == MoeAlgo::Decode) {
    // Units one after another; each product is parallel over its output rows.
    for (const Unit& u : units) run_unit(u);
  } else {
    // Units spread over the pool, the largest first (routing is uneven: a
    // large unit started last would leave the other threads idle); the
    // products inside run inline.
    std::stable_sort(units.begin(), units.end(), [](const Unit& x, const Unit& y) { return x.rows > y.rows; });
    cpu::parallel_for_dynamic((int64_t)units.size(), 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) run_unit(units[u]);
    });
  }

  // 3. Combine in slot order.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, d * k));
  cpu::parallel_for(T, grain, [&](int64_t t0, int64_t t1) {
    std::vector<const float*> rows((size_t)k);
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t j = 0; j < k; ++j) rows[j] = ys + pos[t * k + j] * d;
      NM_ISA_CALL(moe_combine_row, rows.data(), k, a.shared ? a.shared + t * a.shared_stride : nullptr,
                  a.out + t * a.out_stride, d);
    }
  });
}

void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                 int64_t I) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, I));
  cpu::parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    NM_ISA_CALL(moe_swiglu_rows, gu + r0 * gu_stride, gu_stride, up_off, h + r0 * h_stride, h_stride, r1 - r0, I);
  });
}

}  // namespace nm
