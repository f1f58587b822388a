// Mixture-of-experts feed-forward (Jamba, Granite 4.0-H, Nemotron-H; see
// the shared REFERENCE.md section 7): a router picks k of E experts per
// token, each a SwiGLU MLP
//
//   y_e(x) = W2_e · (silu(W_gate_e · x) ∘ (W_up_e · x)),
//
// and the token's output is Σ_j w_j · y_{e_j}(x), dropless (no capacity).
//
// Router (moe_route): float32, on logits [T, E] that the caller computed
// (logits = x · W_routerᵀ, e.g. with linear()). Three variants:
//   SoftmaxTopk     (Jamba)     p = softmax over all E; the k largest p;
//                               weights = those p (not renormalised).
//   TopkSoftmax     (Granite)   the k largest logits; weights = softmax over
//                               those k logits.
//   SigmoidGrouped  (Nemotron-H, DeepSeek-V3) s = sigmoid(logits); choice
//                   scores c = s + bias (bias optional, used for the choice
//                   only); the E experts form n_group groups of E / n_group
//                   consecutive experts, a group scores the sum of its two
//                   largest c (its one c when a group has one expert); the
//                   topk_group best groups are kept and the k largest c inside
//                   them chosen; weights = s of the chosen (no bias), divided
//                   by their sum if norm_topk_prob, times
//                   routed_scaling_factor.
// Every "largest" breaks ties toward the lower index (expert or group); a
// NaN compares below every number. The k choices of a token are written in
// decreasing order of the score they were chosen by (ties: lower index first).
//
// Dispatch (moe): given ids / weights [T, k] (moe_route's output or the
// caller's), computes out[t] = Σ_j w[t, j] · y_{ids[t, j]}(x[t]) (+ shared[t]):
//   1. align: per-expert counts, each expert's run padded to kMoeBlockM rows,
//      exclusive prefix sum; the pairs i = t·k + j sorted by expert (stable:
//      by i within an expert).
//   2. per unit (an expert's run, cut into chunks of at most kMoeChunkRows):
//      GEMM 1 = gate and up on the unit's tokens' rows of x, gathered where
//      the product loads x (LinearArgs / QLinearArgs::x_rows: no copy), one
//      linear() call on N = 2I when the two are adjacent in memory, e.g.
//      Granite's packed input_linear, else two; h = silu(gate) · up; GEMM 2
//      = down; each pair's row times its weight w in float32.
//   3. combine: out[t] = ((y_{t,0} + y_{t,1}) + …) + shared[t], in slot order,
//      no atomics.
// A unit's rows are independent of each other, and every unit is computed
// by exactly one linear()/qlinear() sequence whose result does not depend
// on the thread count, so the output is bitwise the same for any thread
// count and for both schedules: Batched (units in parallel, each linear
// inline on its thread) and Decode (units one after another, each linear
// parallel over its output rows; the default when there are fewer units than
// threads, e.g. one token routed to k < threads experts).
// Only the chosen experts' weights are read. A unit of <= 16 rows runs the
// GEMV path of linear (kLinearGemvMaxRows), a longer one the GEMM path, so a
// token's result can change (float32 summation order) with how many tokens
// share its expert in one call, never with the threads or the schedule.
//
// Expert weights (MoeWeight): each projection is E matrices of R rows
// (gate / up: R = I rows of d; down: R = d rows of I) in one of
//   F32 / F16 / BF16 / Q8_0 / Q4_0   read by linear() (exact dequantisation,
//                                    float32 inputs), row_stride in ELEMENTS
//                                    as LinearArgs::w_stride (Q8_0 / Q4_0:
//                                    a multiple of 32, and so is the row
//                                    length);
//   I8 / I4                          read by qlinear(), row_stride in BYTES as
//                                    QLinearArgs::w_stride, scales per expert
//                                    (scales + e · scales_expert_stride), and
//                                    x_scale[e] the static input scale of
//                                    expert e's matrix (> 0: int8 inputs,
//                                    W8A8 / W4A8); x_scale == nullptr: float
//                                    inputs (W4A16, I4 only).
// Expert e's matrix starts expert_stride BYTES after expert e-1's. Granite's
// packed input_linear [E, 2I, d]: gate.w = W, up.w = W + I rows, both with
// expert_stride = 2I rows; Jamba / Mixtral separate [E, I, d] tensors: each
// its own pointer with expert_stride = I rows; experts anywhere in memory:
// the `experts` pointer table.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/linear.h"

namespace nm {

enum class MoeRouter : int32_t { SoftmaxTopk = 0, TopkSoftmax = 1, SigmoidGrouped = 2 };

struct MoeRouteArgs {
  int64_t T = 0, E = 0, k = 0;           // 1 <= k <= E
  const float* logits = nullptr;         // [T, E]
  int64_t logits_stride = 0;             // >= E
  MoeRouter router = MoeRouter::SoftmaxTopk;
  // SigmoidGrouped only:
  const float* bias = nullptr;           // [E] choice bias (e_score_correction_bias), optional
  int64_t n_group = 1, topk_group = 1;   // n_group divides E, 1 <= topk_group <= n_group,
                                         // k <= topk_group · E / n_group
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  int32_t* ids = nullptr;                // [T, k] out
  float* weights = nullptr;              // [T, k] out
};

// Single-threaded (T · E · log work is tiny next to the experts). Throws
// std::invalid_argument on inconsistent sizes.
void moe_route(const MoeRouteArgs& a);

struct MoeWeight {
  const void* w = nullptr;               // expert 0, row 0
  DType dtype = DType::F32;
  int64_t row_stride = 0;                // elements (F32..Q4_0) or bytes (I8 / I4)
  int64_t expert_stride = 0;             // BYTES between experts
  // Optional [E] table of each expert's matrix (row 0): experts stored apart
  // (Jamba's per-expert tensors, rows sliced out of a packed tensor) need
  // not be evenly spaced. When set, w and expert_stride are ignored.
  const void* const* experts = nullptr;
  const float* scales = nullptr;         // I8 / I4: expert e's scales at scales + e * scales_expert_stride
  int64_t scales_expert_stride = 0;
  // Optional [E] table of each expert's scales (I8 / I4; experts whose
  // scales are stored apart, as a loaded model's are). When set, scales and
  // scales_expert_stride are ignored.
  const float* const* expert_scales = nullptr;
  const float* x_scale = nullptr;        // I8 / I4: [E] static input scales, or nullptr (W4A16)
  // F32..Q4_0: rounding of this projection's input (kernels/linear.h
  // LinearArgs::x_rounding; e.g. Q8Block for Q8_0 / Q4_0 experts, as the
  // engine rounds its other linear layers' inputs). I8 / I4 ignore it.
  ActRounding x_rounding = ActRounding::None;
  // Rows, or Panels (every expert of the projection alike): Q8_0 / Q4_0
  // experts with x_rounding Q8Block (kernels/ggml_panels.h), I8 / I4 experts
  // packed by qweight_pack_panels with their scales in panel order.
  WeightLayout layout = WeightLayout::Rows;
};

struct MoeArgs {
  int64_t T = 0, d = 0, I = 0, E = 0, k = 0;
  const float* x = nullptr;              // [T, d]
  int64_t x_stride = 0;
  const int32_t* ids = nullptr;          // [T, k], each in [0, E)
  const float* weights = nullptr;        // [T, k]
  MoeWeight gate, up;                    // E x [I, d]
  MoeWeight down;                        // E x [d, I]
  const float* shared = nullptr;         // optional [T, d] added last (e.g. the shared expert's output)
  int64_t shared_stride = 0;
  float* out = nullptr;                  // [T, d], must not overlap the inputs
  int64_t out_stride = 0;
  // Optional scratch for the weighted expert outputs (moe_workspace_floats
  // floats; allocated per call when absent or smaller): a caller that
  // reuses one across layers and calls saves a fresh allocation of
  // ~T·k·d floats per call (at 2048 tokens of Granite-4.0-H-Tiny-like 38 MB,
  // whose pages the kernel zeroed on every call).
  float* workspace = nullptr;
  int64_t workspace_floats = 0;
  // The SwiGLU in the epilogue of the gate / up products (linear_swiglu)
  // where the few-row GEMM takes them; false: always as a separate pass over
  // the products (the same bits; for tests and benchmarks).
  bool swiglu_epilogue = true;
};

// Rows per expert block of the alignment (a fused GEMM's BLOCK_M).
constexpr int64_t kMoeBlockM = 16;
// Most rows one unit (one expert's linear() calls) takes.
constexpr int64_t kMoeChunkRows = 256;

enum class MoeAlgo : int32_t { Auto = 0, Decode = 1, Batched = 2 };

// Floats of MoeArgs::workspace enough for any routing of T tokens: the
// sorted pairs, each expert's run padded to kMoeBlockM, times d.
inline int64_t moe_workspace_floats(int64_t T, int64_t k, int64_t E, int64_t d) {
  return (T * k + E * (kMoeBlockM - 1)) * d;
}

// Multithreaded on the global pool. Throws std::invalid_argument on an
// expert id out of range or an unsupported weight format.
void moe(const MoeArgs& a, MoeAlgo algo = MoeAlgo::Auto);

// The SwiGLU activation of a dense MLP (the engine's shared / dense
// feed-forwards), as the experts compute it: h[r, i] = silu(gu[r, i]) ·
// gu[r, up_off + i] for r < rows, i < I. Multithreaded over rows.
void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                 int64_t I);

}  // namespace nm
