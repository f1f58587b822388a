// Per-thread math of the CUDA mixture-of-experts router and dispatch
// (cuda/moe.cu), shared with the host emulation (cuda/check). Semantics:
// kernels/moe.h.
//
// Router: one thread per token, no scratch. Every score (softmax
// probability, sigmoid, choice score, group score) is a pure function of the
// token's logits recomputed where it is needed, so the k-best selection runs
// over E candidates with any E: top-k is k passes that each take the best
// candidate not chosen yet (moe.h's order: larger first, a NaN below every
// number, ties to the lower index), as the CPU's top_k.
//
// Dispatch, four kernels on one stream:
//   1. align (one block): per-expert counts, each expert's run padded to
//      kMoeRows rows, the padded offsets, the expert of every row block, the
//      pairs i = t·k + j stably sorted by expert (`sorted`, -1 on padding)
//      and each pair's position (`pos`). The CPU's align, with the CUDA
//      GEMMs' block (16, as kMoeBlockM).
//   2. gate / up: one block per (row block, 64 columns of I): the rows'
//      tokens gathered from x as they are loaded, gate and up of the block's
//      expert computed together, h = silu(gate) · up in the epilogue.
//   3. down: the same tiles over h, each row times its pair's routed weight.
//   4. combine: out[t] = ((y[pos[t,0]] + y[pos[t,1]]) + …) + shared[t], in
//      slot order as moe_combine_row: no atomics, the same bits every run.
// Each product is one fmaf chain per output over k ascending, the inputs
// rounded and the weights dequantised 32 elements at a time by the decode
// GEMV's loaders (linear_math.cuh gemv_load_x / gemv_load_w), so that the
// emulation repeats it bit for bit; against the CPU's linear() equal up to
// float32 summation order.
#pragma once
#include "kernels/moe.h"
#include "linear_math.cuh"
#include "linear_mma_math.cuh"
#include "mma_tile_math.cuh"
#include "qlinear_math.cuh"

namespace nm::cuda {

constexpr int64_t kMoeRows = 16;     // rows per block of the alignment and of the GEMM tiles
constexpr int kMoeTileN = 64;        // output columns per GEMM block
constexpr int kMoeTileK = 32;        // k per staged tile (one Q8_0 / Q4_0 block)
constexpr int kMoeGemmThreads = 256; // 16 rows x 16 column lanes, 4 columns each
constexpr int kMoeAlignThreads = 1024;
constexpr int kMoeRouteThreads = 128;
constexpr int kMoeCombineThreads = 256;
constexpr int64_t kMoeMaxGroups = 64;  // SigmoidGrouped: the kept groups are a 64-bit mask

// The dispatch's device workspace (moe_cuda_workspace_bytes): R = T·k +
// E·(kMoeRows - 1) padded rows at most, B = R / kMoeRows row blocks.
struct MoeLayout {
  float* y = nullptr;              // [R, d] weighted expert outputs, sorted order
  float* h = nullptr;              // [R, I] silu(gate) · up
  int32_t* sorted = nullptr;       // [R] pair at each padded row, -1 on padding
  int32_t* pos = nullptr;          // [T·k] padded row of each pair (-1: id out of range)
  int32_t* block_expert = nullptr; // [B] expert of each row block
  int32_t* offsets = nullptr;      // [E + 1] padded start of each expert's run; offsets[E] = rows used
  int64_t rows = 0, blocks = 0;    // R, B
};

inline int64_t moe_max_rows(int64_t T, int64_t k, int64_t E) { return T * k + E * (kMoeRows - 1); }

// The layout in `base` (nullptr: only the size), each part 256-byte aligned;
// returns the bytes it takes.
inline size_t moe_layout(int64_t T, int64_t k, int64_t E, int64_t d, int64_t I, void* base, MoeLayout* L) {
  const int64_t R = moe_max_rows(T, k, E), B = (R + kMoeRows - 1) / kMoeRows;
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off += (bytes + 255) / 256 * 256;
    return base ? static_cast<char*>(base) + at : nullptr;
  };
  MoeLayout l;
  l.y = reinterpret_cast<float*>(take((size_t)(R * d) * 4));
  l.h = reinterpret_cast<float*>(take((size_t)(R * I) * 4));
  l.sorted = reinterpret_cast<int32_t*>(take((size_t)R * 4));
  l.pos = reinterpret_cast<int32_t*>(take((size_t)(T * k) * 4));
  l.block_expert = reinterpret_cast<int32_t*>(take((size_t)B * 4));
  l.offsets = reinterpret_cast<int32_t*>(take((size_t)(E + 1) * 4));
  l.rows = R, l.blocks = B;
  if (L) *L = l;
  return off;
}

// ------------------------------------------------------------------ router

// a ranks above b: larger; a NaN below every number; equal values (and two
// NaNs) by index, lower first (kernels/moe.cpp ranks_above).
NM_HD bool moe_ranks_above(float va, int64_t ia, float vb, int64_t ib) {
  const bool na = va != va, nb = vb != vb;
  if (na != nb) return nb;
  if (!na && va != vb) return va > vb;
  return ia < ib;
}

NM_HD float moe_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// The scores of one token's router (all recomputed on demand).
struct MoeTokenScores {
  const MoeRouteArgs* a;
  const float* l;   // the token's logits
  float mx = 0.0f;  // SoftmaxTopk: max logit (NaN skipped after the first, as std::max)
  float sum = 0.0f; // SoftmaxTopk: Σ exp(l - mx) in expert order
  uint64_t kept = ~0ull;  // SigmoidGrouped: the kept groups

  // The score experts are chosen by.
  NM_HD float choice(int64_t e) const {
    switch (a->router) {
      case MoeRouter::SoftmaxTopk: return expf(l[e] - mx) / sum;
      case MoeRouter::TopkSoftmax: return l[e];
      default: {
        const float p = moe_sigmoid(l[e]);
        return a->bias ? p + a->bias[e] : p;
      }
    }
  }
  NM_HD bool allowed(int64_t e) const {
    if (a->router != MoeRouter::SigmoidGrouped || kept == ~0ull) return true;
    return (kept >> (e / (a->E / a->n_group))) & 1u;
  }
  // SigmoidGrouped: group g's score, the sum of its two largest choice
  // scores (its one when a group has one expert).
  NM_HD float group_score(int64_t g) const {
    const int64_t gs = a->E / a->n_group, e0 = g * gs;
    int64_t b0 = -1, b1 = -1;
    for (int64_t i = 0; i < gs; ++i)
      if (b0 < 0 || moe_ranks_above(choice(e0 + i), i, choice(e0 + b0), b0)) b0 = i;
    if (gs == 1) return choice(e0 + b0);
    for (int64_t i = 0; i < gs; ++i) {
      if (i == b0) continue;
      if (b1 < 0 || moe_ranks_above(choice(e0 + i), i, choice(e0 + b1), b1)) b1 = i;
    }
    return choice(e0 + b0) + choice(e0 + b1);
  }
};

// The routing of token t: ids[t, :k] and weights[t, :k] as moe_route.
NM_HD void moe_route_token(const MoeRouteArgs& a, int64_t t) {
  MoeTokenScores s;
  s.a = &a;
  s.l = a.logits + t * a.logits_stride;
  const int64_t E = a.E, k = a.k;
  int32_t* ids = a.ids + t * k;
  float* w = a.weights + t * k;
  if (a.router == MoeRouter::SoftmaxTopk) {
    float mx = s.l[0];
    for (int64_t e = 1; e < E; ++e) mx = mx < s.l[e] ? s.l[e] : mx;
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) sum = sum + expf(s.l[e] - mx);
    s.mx = mx, s.sum = sum;
  } else if (a.router == MoeRouter::SigmoidGrouped && a.topk_group < a.n_group) {
    // Group g is among the topk_group best when fewer groups rank above it.
    uint64_t kept = 0;
    for (int64_t g = 0; g < a.n_group; ++g) {
      const float sg = s.group_score(g);
      int64_t above = 0;
      for (int64_t h = 0; h < a.n_group; ++h)
        if (h != g && moe_ranks_above(s.group_score(h), h, sg, g)) ++above;
      if (above < a.topk_group) kept |= 1ull << g;
    }
    s.kept = kept;
  }
  // k passes, each the best allowed expert not yet chosen.
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    float vb = 0.0f;
    for (int64_t e = 0; e < E; ++e) {
      if (!s.allowed(e)) continue;
      bool taken = false;
      for (int64_t q = 0; q < j; ++q) taken = taken || ids[q] == e;
      if (taken) continue;
      const float v = s.choice(e);
      if (best < 0 || moe_ranks_above(v, e, vb, best)) best = e, vb = v;
    }
    ids[j] = (int32_t)best;
  }
  switch (a.router) {
    case MoeRouter::SoftmaxTopk:
      for (int64_t j = 0; j < k; ++j) w[j] = s.choice(ids[j]);
      break;
    case MoeRouter::TopkSoftmax: {
      const float mx = s.l[ids[0]];
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) sum = sum + (w[j] = expf(s.l[ids[j]] - mx));
      for (int64_t j = 0; j < k; ++j) w[j] = w[j] / sum;
      break;
    }
    default: {
      float sum = 0.0f;
      for (int64_t j = 0; j < k; ++j) sum = sum + (w[j] = moe_sigmoid(s.l[ids[j]]));
      // As HF DeepseekV3TopkRouter: w / (Σ w + 1e-20) · routed_scaling_factor.
      const float den = sum + 1e-20f;
      for (int64_t j = 0; j < k; ++j) {
        const float v = a.norm_topk_prob ? w[j] / den : w[j];
        w[j] = v * a.routed_scaling_factor;
      }
    }
  }
}

// ------------------------------------------------------------------ dispatch

// Expert e's matrix (row 0) of a projection.
NM_HD const void* moe_expert_matrix(const MoeWeight& w, int64_t e) {
  return w.experts ? w.experts[e] : static_cast<const char*>(w.w) + e * w.expert_stride;
}

// The GEMV loaders' view of an input: rows of `x` (stride xs, K columns),
// rounded as `r`.
NM_HD LinearArgs moe_input(const float* x, int64_t xs, int64_t rows, int64_t K, ActRounding r) {
  LinearArgs l;
  l.M = rows, l.K = K;
  l.x = x, l.x_stride = xs;
  l.x_rounding = r;
  return l;
}

// The GEMV loaders' view of expert e's matrix of w: N rows of K.
NM_HD LinearArgs moe_weight(const MoeWeight& w, int64_t e, int64_t N, int64_t K) {
  LinearArgs l;
  l.N = N, l.K = K;
  l.w = moe_expert_matrix(w, e);
  l.w_stride = w.row_stride;
  l.w_dtype = w.dtype;
  return l;
}

// Σ_k round(x[m, k]) · w[n, k] as the GEMM tiles compute it: one fmaf chain,
// k ascending, loaded kMoeTileK at a time (the host emulation's form of the
// kernels' shared-memory loop).
template <DType WT>
NM_HD float moe_dot(const LinearArgs& xa, int64_t m, const LinearArgs& wa, int64_t n) {
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < xa.K; k0 += kMoeTileK) {
    const int len = xa.K - k0 < kMoeTileK ? (int)(xa.K - k0) : kMoeTileK;
    float x[kMoeTileK], w[kMoeTileK];
    gemv_load_x<kMoeTileK>(xa, m, k0, len, 0, x);
    gemv_load_w<WT, kMoeTileK>(wa, n, k0, len, 0, w);
    for (int j = 0; j < kMoeTileK; ++j) acc = fmaf(x[j], w[j], acc);
  }
  return acc;
}

// ------------------------------------------------------------------ I8 / I4 experts (a quantized checkpoint's)
//
// The experts of a checkpoint quantized by node-mamba (kernels/qlinear.h's
// formats, stored as rows: I8 with a scale per output row, I4 with one per
// row and group of 128) on the CUDA cores, in the float tiles' blocks: the
// inputs staged as what the products take (W8A8 / W4A8: q_x = clamp(rint(x ·
// 1 / s_x[e]), ±127) as floats, a NaN input kept as NaN so that its row's
// outputs are NaN as on the CPU; W4A16: x itself), the weights as their
// integers (q or nibble - 8). Each output is one fmaf chain over k
// ascending: I8 over the whole row, then times s_x[e] · s_w[n]; I4 per
// group of 128 (four k tiles), folded as acc = fmaf(part, s_w[n, g], acc)
// in group order, then (int8 inputs) times s_x[e]. The int8 products and
// their sums are integers far below 2^24, so exact, as the CPU's int32
// sums; against the CPU up to the order of float32 operations.

NM_HD bool moe_quamba(DType t) { return t == DType::I8 || t == DType::I4; }

// Expert e's weight scales (I8: [N]; I4: [N, ceil(K / 128)]).
NM_HD const float* moe_expert_scales(const MoeWeight& w, int64_t e) {
  return w.expert_scales ? w.expert_scales[e] : w.scales + e * w.scales_expert_stride;
}

// qlinear's view of expert e's matrix of w: N rows of K, its scales and
// input scale (0: float inputs).
NM_HD QLinearArgs moe_qweight(const MoeWeight& w, int64_t e, int64_t N, int64_t K) {
  QLinearArgs q;
  q.N = N, q.K = K;
  q.w = moe_expert_matrix(w, e);
  q.w_stride = w.row_stride;
  q.w_dtype = w.dtype;
  q.w_scales = moe_expert_scales(w, e);
  q.x_scale = w.x_scale ? w.x_scale[e] : 0.0f;
  return q;
}

// k tile [k0, k0 + len) of input row `x` as the products take it (zeros past len).
NM_HD void moe_q_load_x(const QLinearArgs& q, const float* x, int64_t k0, int len, float (&v)[kMoeTileK]) {
  const float inv = q.x_scale > 0.0f ? 1.0f / q.x_scale : 0.0f;
  for (int j = 0; j < kMoeTileK; ++j) {
    if (j >= len) {
      v[j] = 0.0f;
      continue;
    }
    const float xv = x[k0 + j];
    if (q.x_scale <= 0.0f) {
      v[j] = xv;
      continue;
    }
    bool nan = false;
    const int32_t qv = quantize_x(xv, inv, nan);
    v[j] = nan ? bits_to_float(0x7fc00000u) : (float)qv;
  }
}

// k tile [k0, k0 + len) of weight row n as integers (zeros past len).
NM_HD void moe_q_load_w(const QLinearArgs& q, int64_t n, int64_t k0, int len, float (&v)[kMoeTileK]) {
  for (int j = 0; j < kMoeTileK; ++j) v[j] = j < len ? (float)qweight_value(q, n, k0 + j) : 0.0f;
}

// After the k tile that ends at k_end (of K): I4 folds the group's partial
// sum into acc where a group of 128 (or K) ends. I8 accumulates in acc alone.
NM_HD void moe_q_fold(const QLinearArgs& q, int64_t n, int64_t k_end, float& part, float& acc) {
  if (q.w_dtype != DType::I4 || (k_end % kI4Group != 0 && k_end < q.K)) return;
  const int64_t G = (q.K + kI4Group - 1) / kI4Group, g = (k_end - 1) / kI4Group;
  acc = fmaf(part, q.w_scales[n * G + g], acc);
  part = 0.0f;
}

// Output n from its sums: I8 acc · (s_x · s_w[n]); I4 acc · s_x (int8
// inputs) or acc (W4A16).
NM_HD float moe_q_out(const QLinearArgs& q, int64_t n, float acc) {
  if (q.w_dtype == DType::I8) return acc * (q.x_scale * q.w_scales[n]);
  return q.x_scale > 0.0f ? acc * q.x_scale : acc;
}

// Output n of input row x (K values) as the kernels compute it (the host
// emulation's form): I8 sums into acc, I4 into the group's part.
NM_HD float moe_qdot(const QLinearArgs& q, const float* x, int64_t n) {
  float acc = 0.0f, part = 0.0f;
  const bool i4 = q.w_dtype == DType::I4;
  for (int64_t k0 = 0; k0 < q.K; k0 += kMoeTileK) {
    const int len = q.K - k0 < kMoeTileK ? (int)(q.K - k0) : kMoeTileK;
    float xv[kMoeTileK], wv[kMoeTileK];
    moe_q_load_x(q, x, k0, len, xv);
    moe_q_load_w(q, n, k0, len, wv);
    for (int j = 0; j < kMoeTileK; ++j) {
      if (i4) part = fmaf(xv[j], wv[j], part);
      else acc = fmaf(xv[j], wv[j], acc);
    }
    moe_q_fold(q, n, k0 + len, part, acc);
  }
  return moe_q_out(q, n, acc);
}

// ------------------------------------------------------------------ bf16 experts on the tensor cores
//
// bf16 experts with bf16-rounded inputs (Hugging Face checkpoints' default)
// on sm_80 and newer: the same row blocks (16 rows of one expert), 128
// output columns per block, 8 warps of 16 columns (two n8 tiles), k tiles of
// 32 staged in shared memory as bf16 (the inputs rounded and gathered by
// the GEMV loaders, as the CUDA-core kernels load them), each k16 step one
// ldmatrix.x4 of the rows, one of each weight matrix per warp and
// mma.sync.m16n8k16 (f32 accumulators). gate / up: h = silu(g) · u in the
// epilogue; down: each row times its pair's routed weight. The products are
// exact in float32: against the CPU up to float32 summation order.
constexpr int kMoeMmaTileN = 128;               // output columns per block
constexpr int kMoeMmaTileK = 32;                // bf16 k per staged tile
constexpr int kMoeMmaLd = kMoeMmaTileK + 8;     // 16-bit units per staged row (80 bytes)
constexpr int kMoeMmaThreads = 256;

// Whether a projection runs on the tensor cores.
NM_HD bool moe_mma_format(const MoeWeight& w) { return w.dtype == DType::BF16 && w.x_rounding == ActRounding::BF16; }

// ldmatrix.x4 row addresses (16-bit offsets) of lane `lane` at k step kk
// (0, 16): A, the block's 16 rows (a0..a3: rows 0-7 / 8-15 x k 0-7 / 8-15);
// B, warp w's 16 columns of a [128][kMoeMmaLd] weight tile (b0, b1 of its
// n8 tiles 0 and 1).
NM_HD int moe_mma_a_offset(int kk, int lane) { return (lane % 16) * kMoeMmaLd + kk + (lane / 16) * 8; }
NM_HD int moe_mma_b_offset(int warp, int kk, int lane) {
  return (warp * 16 + lane % 8 + (lane / 16) * 8) * kMoeMmaLd + kk + ((lane / 8) % 2) * 8;
}

// 32 values loaded by the GEMV loaders (bf16-rounded inputs or bf16
// weights: exact in bf16) as their bf16 bits.
NM_HD void moe_mma_bits(const float (&v)[kMoeMmaTileK], uint16_t* dst) {
  for (int q = 0; q < kMoeMmaTileK; ++q) dst[q] = (uint16_t)(float_to_bits(v[q]) >> 16);
}

// Q8_0 / Q4_0 experts with Q8Block inputs on the int8 tensor cores, in the
// same blocks and shared-memory rows: a k tile is 64 int8 (two blocks of
// 32, one per 32-byte k step, at the bf16 tiles' 16-bit offsets), the rows'
// inputs quantized per block as linear_mma_math.cuh's q8block_stage_x and
// the weights' quants staged as int8 with their scales (ggml_stage_w); each
// k step's exact int32 sums are folded as f = fmaf(isum, d_x · d_w, f)
// (q8_block_step).
constexpr int kMoeQ8TileK = 64;  // int8 k per staged tile: two blocks

NM_HD bool moe_mma_q8_format(const MoeWeight& w) {
  return (w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0) && w.x_rounding == ActRounding::Q8Block;
}

// A tensor-core GEMM's output (padded row `row`, column n) from its float
// sums: gate / up, h = silu(g) · u; down, y = acc · the row's routed weight.
// Nothing for padding rows or columns past the output.
NM_HD void moe_mma_store(const MoeArgs& a, const MoeLayout& L, bool gate_up, int64_t row, int64_t n, float v0,
                         float v1) {
  const int32_t pair = L.sorted[row];
  if (pair < 0 || n >= (gate_up ? a.I : a.d)) return;
  if (gate_up) L.h[row * a.I + n] = silu(v0) * v1;
  else L.y[row * a.d + n] = v0 * a.weights[pair];
}

// Output column c of token t: the slot-order sum of its pairs' rows.
NM_HD float moe_combine_value(const MoeArgs& a, const MoeLayout& L, int64_t t, int64_t c) {
  float s = 0.0f;
  for (int64_t j = 0; j < a.k; ++j) {
    const int32_t p = L.pos[t * a.k + j];
    const float v = p >= 0 ? L.y[(int64_t)p * a.d + c] : bits_to_float(0x7fc00000u);
    s = j == 0 ? v : s + v;
  }
  if (a.shared) s = s + a.shared[t * a.shared_stride + c];
  return s;
}

}  // namespace nm::cuda
