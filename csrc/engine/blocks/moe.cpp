// The mixture-of-experts feed-forward (REFERENCE.md section 7): float32
// router logits, the config's router (Jamba: softmax over all experts then
// top-k, not renormalised; Granite: top-k logits then softmax over them),
// dropless dispatch of each token to its k SwiGLU experts (kernels/moe.h),
// and Granite's shared expert added to every token. Experts are separate
// 2-D tensors per expert (the loader slices packed ones), reached through
// the kernel's expert pointer table; in any linear format (float, GGUF
// Q8_0 / Q4_0, and a quantized checkpoint's I8 / I4 with each expert's own
// weight and input scales). While calibrating, the experts run one by one
// through run_linear so that each expert's inputs are observed (its taps).
#include <algorithm>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/blocks/block.h"
#include "engine/blocks/mlp.h"
#include "engine/ops.h"
#include "engine/tensor_table.h"
#include "kernels/moe.h"

namespace nm::engine {

namespace {

class MoeFfn final : public FeedForward {
 public:
  explicit MoeFfn(const BlockContext& ctx) : prefix_(layer_name(ctx.layer) + "ffn.") {
    const ModelConfig& c = ctx.model.config();
    TensorTable& tt = ctx.tensors;
    using Q = TensorTable::Quant;
    E_ = c.moe_experts; k_ = c.moe_top_k; I_ = c.moe_dim;
    const int64_t d = c.d_model;
    if (E_ <= 0 || I_ <= 0) throw LoadError("MoE layers need experts > 0 and an expert size > 0", "", "num_experts");
    if (k_ < 1 || k_ > E_)
      throw LoadError("experts per token (" + std::to_string(k_) + ") must be in [1, " + std::to_string(E_) + "]", "",
                      "num_experts_per_tok");
    if (c.moe_router != (int32_t)MoeRouter::SoftmaxTopk && c.moe_router != (int32_t)MoeRouter::TopkSoftmax)
      throw LoadError("unknown MoE router", "", "moeRouter");
    router_ = tt.get(prefix_ + "router.weight", {{E_, d}}, true, Q::Ggml);
    const char* proj[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int p = 0; p < 3; ++p) {
      std::vector<int64_t> shape = p < 2 ? std::vector<int64_t>{I_, d} : std::vector<int64_t>{d, I_};
      experts_[p].resize((size_t)E_);
      ptrs_[p].resize((size_t)E_);
      // A projection's experts are packed all or none (one layout in the
      // kernel's MoeWeight): packed when every one of them can be.
      std::vector<Weight> host((size_t)E_);
      bool pack = true;
      for (int64_t e = 0; e < E_; ++e) {
        const std::string name = prefix_ + "experts." + std::to_string(e) + "." + proj[p] + ".weight";
        host[(size_t)e] = tt.get_host(name, {shape}, true, Q::Any);
        if (e > 0 && host[(size_t)e].dtype != host[0].dtype)
          throw LoadError("tensor " + name + " has dtype " + dtype_name(host[(size_t)e].dtype) + ", expert 0's has " +
                              dtype_name(host[0].dtype) + ": a projection's experts share one format",
                          tt.path_of(name), name);
        if (e > 0 && (host[(size_t)e].act_scale > 0.0f) != (host[0].act_scale > 0.0f))
          throw LoadError("tensor " + name + (host[(size_t)e].act_scale > 0.0f ? " has" : " has no") +
                              " input scale, expert 0's " + (host[0].act_scale > 0.0f ? "has one" : "has none") +
                              ": a projection's experts take int8 inputs all or none",
                          tt.path_of(name), name);
        pack = pack && tt.packs(host[(size_t)e]);
      }
      for (int64_t e = 0; e < E_; ++e) {
        const Weight w = tt.place(pack ? tt.pack(host[(size_t)e]) : host[(size_t)e]);
        experts_[p][(size_t)e] = w;
        ptrs_[p][(size_t)e] = w.data;
        if (w.scales) scale_ptrs_[p].push_back(w.scales);
        if (w.act_scale > 0.0f) x_scales_[p].push_back(w.act_scale);
      }
    }
    if (c.moe_shared_dim > 0) shared_.load(ctx, prefix_ + "shared.", c.moe_shared_dim);
  }

  void forward(const Model& m, const float* x, int64_t n, float* out) override {
    if (observer()) return forward_observed(m, x, n, out);
    const int64_t d = m.config().d_model;
    Buf weights((size_t)(n * k_));
    I32Buf ids((size_t)(n * k_));
    Buf shared((size_t)(shared_.dim > 0 ? n * d : 0));
    const auto route_all = [&] { route(m, x, n, ids.data(), weights.data()); };
    if (shared_.dim > 0) shared_.forward(m, x, n, shared.data(), route_all);  // the router beside the shared MLP
    else route_all();
    MoeArgs a;
    a.T = n; a.d = d; a.I = I_; a.E = E_; a.k = k_;
    a.x = x; a.x_stride = d;
    a.ids = ids.data(); a.weights = weights.data();
    a.gate = expert_weight(m, 0, d);
    a.up = expert_weight(m, 1, d);
    a.down = expert_weight(m, 2, I_);
    if (shared_.dim > 0) { a.shared = shared.data(); a.shared_stride = d; }
    a.out = out; a.out_stride = d;
    // The expert outputs' scratch from the call's buffer pool: reused by the
    // next MoE layers and chunks instead of fresh pages each call.
    const int64_t ws = moe_workspace_floats(n, k_, E_, d);
    Buf workspace((size_t)ws);
    a.workspace = workspace.data(); a.workspace_floats = ws;
    m.backend().moe(a);
  }

  // Calibration: the same function, each expert's tokens gathered and run
  // through run_linear (which records the expert's input statistics), the
  // outputs combined in slot order as the kernel does.
  void forward_observed(const Model& m, const float* x, int64_t n, float* out) {
    const int64_t d = m.config().d_model, I = I_;
    Buf weights((size_t)(n * k_));
    I32Buf ids((size_t)(n * k_));
    route(m, x, n, ids.data(), weights.data());
    std::vector<float> y((size_t)(n * k_ * d), 0.0f);  // slot t·k + j: weighted output of token t's j-th expert
    for (int64_t e = 0; e < E_; ++e) {
      std::vector<int64_t> slots;
      for (int64_t i = 0; i < n * k_; ++i)
        if (ids.data()[i] == e) slots.push_back(i);
      if (slots.empty()) continue;
      const int64_t ne = (int64_t)slots.size();
      // gu: [ne, I] gate rows, then [ne, I] up rows; h = silu(gate) · up
      std::vector<float> xe((size_t)(ne * d)), gu((size_t)(ne * 2 * I)), h((size_t)(ne * I)), ye((size_t)(ne * d));
      for (int64_t r0 = 0; r0 < ne; ++r0)
        std::copy(x + slots[(size_t)r0] / k_ * d, x + (slots[(size_t)r0] / k_ + 1) * d, xe.begin() + r0 * d);
      run_linear(m, experts_[0][(size_t)e], nullptr, xe.data(), d, ne, gu.data());
      run_linear(m, experts_[1][(size_t)e], nullptr, xe.data(), d, ne, gu.data() + ne * I);
      m.backend().swiglu_rows(gu.data(), I, ne * I, h.data(), I, ne, I);
      run_linear(m, experts_[2][(size_t)e], nullptr, h.data(), I, ne, ye.data());
      for (int64_t r0 = 0; r0 < ne; ++r0) {
        const int64_t i = slots[(size_t)r0];
        const float w = weights.data()[i];
        for (int64_t c = 0; c < d; ++c) y[(size_t)(i * d + c)] = w * ye[(size_t)(r0 * d + c)];
      }
    }
    Buf shared((size_t)(shared_.dim > 0 ? n * d : 0));
    if (shared_.dim > 0) shared_.forward(m, x, n, shared.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < d; ++c) {
        float acc = y[(size_t)(t * k_ * d + c)];
        for (int64_t j = 1; j < k_; ++j) acc += y[(size_t)((t * k_ + j) * d + c)];
        out[t * d + c] = shared_.dim > 0 ? acc + shared.data()[t * d + c] : acc;
      }
  }

  void linear_layers(LinearList& out) const override {
    out.emplace_back(prefix_ + "router", &router_);
    const char* proj[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int64_t e = 0; e < E_; ++e)
      for (int p = 0; p < 3; ++p)
        out.emplace_back(prefix_ + "experts." + std::to_string(e) + "." + proj[p], &experts_[p][(size_t)e]);
    if (shared_.dim > 0) shared_.linear_layers(prefix_ + "shared.", out);
  }

  // A token reads k of the E experts.
  uint64_t unread_bytes_per_token() const override {
    uint64_t expert = 0;
    for (int p = 0; p < 3; ++p) expert += weight_bytes(experts_[p][0]);
    return (uint64_t)(E_ - k_) * expert;
  }

 private:
  // Each token's k experts (ids) and their weights, [n, k], from the float32 router logits.
  void route(const Model& m, const float* x, int64_t n, int32_t* ids, float* weights) const {
    Buf logits((size_t)(n * E_));
    run_linear(m, router_, nullptr, x, m.config().d_model, n, logits.data());
    MoeRouteArgs r;
    r.T = n; r.E = E_; r.k = k_;
    r.logits = logits.data(); r.logits_stride = E_;
    r.router = (MoeRouter)m.config().moe_router;
    r.ids = ids; r.weights = weights;
    m.backend().moe_route(r);
  }

  MoeWeight expert_weight(const Model& m, int p, int64_t cols) const {
    MoeWeight w;
    w.dtype = experts_[p][0].dtype;
    w.x_rounding = input_rounding(m, w.dtype);
    w.row_stride = cols;
    w.experts = ptrs_[p].data();
    w.layout = experts_[p][0].layout;
    if (dtype_info(w.dtype).linear == LinearKernel::Quamba) {
      // I8 / I4: row stride in bytes, each expert's scales, and its static
      // input scale (none: float inputs, W4A16).
      w.row_stride = dtype_row_bytes(w.dtype, cols);
      w.expert_scales = scale_ptrs_[p].data();
      w.x_scale = x_scales_[p].empty() ? nullptr : x_scales_[p].data();
    }
    return w;
  }

  std::string prefix_;
  int64_t E_ = 0, k_ = 0, I_ = 0;
  Weight router_;
  std::vector<Weight> experts_[3];       // gate, up, down per expert
  std::vector<const void*> ptrs_[3];
  std::vector<const float*> scale_ptrs_[3];  // I8 / I4: each expert's weight scales
  std::vector<float> x_scales_[3];           // I8 / I4 with int8 inputs: each expert's input scale
  SwiGlu shared_;
};

}  // namespace

std::unique_ptr<FeedForward> make_moe_ffn(const BlockContext& ctx) { return std::make_unique<MoeFfn>(ctx); }

}  // namespace nm::engine
