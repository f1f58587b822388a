#include "engine/backend.h"
#include "engine/blocks/mlp.h"
#include "engine/ops.h"
#include "engine/tensor_table.h"
#include "kernels/moe.h"

namespace nm::engine {

void SwiGlu::load(const BlockContext& ctx, const std::string& prefix, int64_t I) {
  using Q = TensorTable::Quant;
  const int64_t d = ctx.model.config().d_model;
  dim = I;
  gate = ctx.tensors.get(prefix + "gate_proj.weight", {{I, d}}, true, Q::Any);
  up = ctx.tensors.get(prefix + "up_proj.weight", {{I, d}}, true, Q::Any);
  down = ctx.tensors.get(prefix + "down_proj.weight", {{d, I}}, true, Q::Any);
}

void SwiGlu::forward(const Model& m, const float* x, int64_t n, float* out, const std::function<void()>& beside) const {
  const int64_t d = m.config().d_model, I = dim;
  Buf gu((size_t)(n * 2 * I)), h((size_t)(n * I));
  // Gate and up stored as one [2I, d] matrix (Granite's packed input_linear,
  // sliced by the loader): one product of N = 2I, rows [gate | up]. Else (and
  // while calibrating, whose taps are keyed by each layer's own Weight) two
  // products into the two halves of gu: [n, I] gate rows, then [n, I] up rows.
  const bool packed = !observer() && gate.dtype == up.dtype && dtype_info(gate.dtype).linear == LinearKernel::Float &&
                      static_cast<const char*>(gate.data) + dtype_row_bytes(gate.dtype, I * d) == up.data;
  // At one row the gate product runs in the background while `beside` runs
  // here (its calls inline, on this thread); else `beside` runs first.
  BackgroundProduct gate_behind(m.backend());
  const bool gate_first = !packed && beside && n == 1 && gate_behind.available(gate.layout);
  if (gate_first) {
    SerialSection serial(m.backend(), gate_behind.start([&] { run_linear(m, gate, nullptr, x, d, n, gu.data()); }));
    beside();
    serial.end();
    gate_behind.join();
  } else if (beside) {
    beside();
  }
  if (packed) {
    Weight both = gate;
    both.rows = 2 * I;
    run_linear(m, both, nullptr, x, d, n, gu.data());
    m.backend().swiglu_rows(gu.data(), 2 * I, I, h.data(), I, n, I);
  } else {
    if (!gate_first) run_linear(m, gate, nullptr, x, d, n, gu.data());
    run_linear(m, up, nullptr, x, d, n, gu.data() + n * I);
    m.backend().swiglu_rows(gu.data(), I, n * I, h.data(), I, n, I);
  }
  run_linear(m, down, nullptr, h.data(), I, n, out);
}

void SwiGlu::linear_layers(const std::string& prefix, LinearList& out) const {
  out.emplace_back(prefix + "gate_proj", &gate);
  out.emplace_back(prefix + "up_proj", &up);
  out.emplace_back(prefix + "down_proj", &down);
}

uint64_t SwiGlu::bytes() const { return weight_bytes(gate) + weight_bytes(up) + weight_bytes(down); }

namespace {

class MlpFfn final : public FeedForward {
 public:
  explicit MlpFfn(const BlockContext& ctx) : prefix_(layer_name(ctx.layer) + "ffn.") {
    const int64_t I = ctx.model.config().mlp_dim;
    if (I <= 0) throw LoadError("MLP layers need an intermediate size > 0", "", "intermediate_size");
    mlp_.load(ctx, prefix_, I);
  }
  void forward(const Model& m, const float* x, int64_t n, float* out) override { mlp_.forward(m, x, n, out); }
  void linear_layers(LinearList& out) const override { mlp_.linear_layers(prefix_, out); }

 private:
  std::string prefix_;
  SwiGlu mlp_;
};

}  // namespace

std::unique_ptr<FeedForward> make_mlp_ffn(const BlockContext& ctx) { return std::make_unique<MlpFfn>(ctx); }

}  // namespace nm::engine
