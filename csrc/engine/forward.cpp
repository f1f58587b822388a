// Whole forward passes: the residual stream through each layer's blocks
// (engine/blocks/), in float32, token-major:
//
//   h = embed(tokens) · embedding_multiplier
//   per layer:  residual = h + residual;  h = mixer(RMSNorm(residual)) · residual_multiplier
//               (ffn:)  residual = h + residual;  h = ffn(RMSNorm_ffn(residual)) · residual_multiplier
//   logits = lm_head(RMSNorm_f(h + residual)) / logits_scaling
//
// (state-spaces/mamba block.py, residual in float32; the multipliers are
// Granite 4.0-H's, 1 elsewhere; REFERENCE.md section 7.)
#include "engine/backend.h"
#include "engine/forward.h"

#include <algorithm>
#include <vector>

#include "cpu/ab_trial.h"
#include "engine/blocks/block.h"
#include "engine/ops.h"
#include "kernels/hadamard.h"
#include "kernels/linear.h"
#include "kernels/norm.h"
#include "kernels/qlinear.h"

namespace nm::engine {

namespace {

// h[t] = embedding row tokens[t], as float32: copied (f32), widened (f16 /
// bf16) or dequantised block by block (Q8_0 / Q4_0; d_model is a multiple of
// 32 for those, checked at load), or with its scales (I8 / I4).
void embed(const Model& m, const int32_t* tokens, int64_t n, float* h) {
  const Weight& e = m.embedding();
  const int64_t d = m.config().d_model;
  EmbeddingArgs a;
  a.table = e.data; a.dtype = e.dtype; a.layout = e.layout; a.scales = e.scales; a.rows = e.rows; a.dim = d;
  a.tokens = tokens; a.n = n; a.out = h;
  m.backend().embedding(a);
  m.backend().scale(h, n * d, m.config().embedding_multiplier);
  if (m.config().hadamard_residual) {
    // The residual stream lives in the rotated basis: h <- T(h).
    HadamardArgs r;
    r.rows = n; r.n = d; r.x = h; r.x_stride = d; r.out = h; r.out_stride = d;
    m.backend().hadamard_transform(r);
  }
}

// Every layer over rows [0, n) of h: prefill (one sequence, slot, from
// position pos0) or a decode step (B = n sequences, slots[b] at pos[b]).
void run_layers(Model& m, int32_t slot, int64_t pos0, const int32_t* slots, const int32_t* pos, int64_t n, float* h,
                float* residual, float* hn) {
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model;
  bool first = true;
  for (const Layer& L : m.layers()) {
    add_norm(m, L.norm, c.norm_eps, h, residual, first, n, d, hn);
    first = false;
    if (slots) L.mixer->step(m, slots, pos, hn, n, h);
    else L.mixer->prefill(m, slot, pos0, hn, n, h);
    m.backend().scale(h, n * d, c.residual_multiplier);
    if (L.ffn) {
      add_norm(m, L.ffn_norm, c.norm_eps, h, residual, false, n, d, hn);
      L.ffn->forward(m, hn, n, h);
      m.backend().scale(h, n * d, c.residual_multiplier);
    }
  }
}

// A decode step's span on the backend (Backend::step_begin): ended before
// the logits are downloaded, abandoned if an exception leaves the step.
class StepSpan {
 public:
  StepSpan(Backend& b, int64_t key, uint64_t generation, bool graphable) : b_(b) {
    b_.step_begin(key, generation, graphable);
  }
  ~StepSpan() {
    if (open_) b_.step_abort();
  }
  StepSpan(const StepSpan&) = delete;
  StepSpan& operator=(const StepSpan&) = delete;
  void end() {
    if (!open_) return;
    open_ = false;
    b_.step_end();
  }

 private:
  Backend& b_;
  bool open_ = true;
};

// logits (host memory) for rows [row0, row0 + rows) of h/residual: written
// in place on a backend whose memory is the host's, else downloaded (a
// decode step's span ends before the download).
void head(const Model& m, const float* h, const float* residual, int64_t row0, int64_t rows, float* logits,
          StepSpan* step = nullptr) {
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model;
  const bool direct = m.backend().host_addressable();
  Buf device_logits((size_t)(direct ? 0 : rows * c.vocab));
  float* out = direct ? logits : device_logits.data();
  Buf hf((size_t)(rows * d)), res_out((size_t)(rows * d));
  RmsNormArgs a;
  a.rows = rows; a.dim = d;
  a.x = h + row0 * d; a.x_stride = d;
  a.residual_in = residual + row0 * d; a.residual_in_stride = d;
  Buf back((size_t)(c.hadamard_residual ? rows * d : 0));
  if (c.hadamard_residual) {
    // Back from the rotated basis before the final norm (whose weight and
    // the tied head are the checkpoint's own): r <- Tᵀ(h + residual).
    m.backend().add(h + row0 * d, residual + row0 * d, back.data(), rows * d);
    HadamardArgs r;
    r.rows = rows; r.n = d; r.x = back.data(); r.x_stride = d; r.transpose = true; r.out = back.data(); r.out_stride = d;
    m.backend().hadamard_transform(r);
    a.x = back.data();
    a.residual_in = nullptr;
  }
  a.residual_out = res_out.data(); a.residual_out_stride = d;
  a.weight = m.norm_f().data; a.weight_dtype = m.norm_f().dtype;
  a.eps = c.norm_eps;
  a.out = hf.data(); a.out_stride = d;
  m.backend().rms_norm(a);
  run_linear(m, m.lm_head(), nullptr, hf.data(), d, rows, out);
  m.backend().scale(out, rows * c.vocab, 1.0f / c.logits_scaling);
  if (step) step->end();
  if (!direct) m.backend().download(logits, out, (size_t)(rows * c.vocab) * sizeof(float));
}

}  // namespace

void prefill(Model& m, int32_t slot, const int32_t* tokens, int64_t n, LogitsMode mode, float* logits) {
  BufScope buffers(m.backend(), &m.buf_cache());
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model, V = c.vocab;
  m.check_context(slot, n);
  const int64_t chunk = c.has_moe() ? kMoePrefillChunk : kPrefillChunk;
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t len = std::min(chunk, n - t0);
    const int64_t pos0 = m.position(slot);
    m.kv().reserve(slot, pos0 + len);
    Buf h((size_t)(len * d)), residual((size_t)(len * d)), hn((size_t)(len * d));
    embed(m, tokens + t0, len, h.data());
    run_layers(m, slot, pos0, nullptr, nullptr, len, h.data(), residual.data(), hn.data());
    m.set_position(slot, pos0 + len);
    if (mode == LogitsMode::All) head(m, h.data(), residual.data(), 0, len, logits + t0 * V);
    else if (mode == LogitsMode::Last && t0 + len == n) head(m, h.data(), residual.data(), len - 1, 1, logits);
  }
}

void decode_step(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch, float* logits) {
  cpu::AbTrialStep trial_step;
  // (no BufCache: a recorded step's allocations must come from the backend,
  // whose step recorder serves them from its arena: step_recorder.h)
  BufScope buffers(m.backend());
  const ModelConfig& c = m.config();
  const int64_t d = c.d_model;
  std::vector<int32_t> pos((size_t)batch);
  for (int64_t b = 0; b < batch; ++b) m.check_context(slots[b], 1);
  for (int64_t b = 0; b < batch; ++b) {
    pos[(size_t)b] = (int32_t)m.position(slots[b]);
    m.kv().reserve(slots[b], pos[(size_t)b] + 1);
  }
  // A step's launches depend only on the batch size, where the sequence
  // states and the KV cache are, and the staged index arrays (tokens, slots;
  // attention's positions, lengths and block tables, whose width changes
  // only at powers of two: AttentionMixer::step).
  StepSpan step(m.backend(), batch, m.memory_generation(), true);
  Buf h((size_t)(batch * d)), residual((size_t)(batch * d)), hn((size_t)(batch * d));
  embed(m, tokens, batch, h.data());
  run_layers(m, -1, 0, slots, pos.data(), batch, h.data(), residual.data(), hn.data());
  for (int64_t b = 0; b < batch; ++b) m.set_position(slots[b], pos[(size_t)b] + 1);
  head(m, h.data(), residual.data(), 0, batch, logits, &step);
}

}  // namespace nm::engine
