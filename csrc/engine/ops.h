// What the engine's blocks share: activation buffers from a per-call pool,
// linear layers dispatched on their weight format, the residual norm, and the
// calibration taps (forward.h ActivationObserver).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/forward.h"
#include "engine/model.h"
#include "kernels/linear.h"
#include "kernels/qlinear.h"

namespace nm::engine {

class Backend;

// Activation buffers. Within one prefill() / decode_step() call (a BufScope)
// buffers come from a per-call pool in the model's backend memory
// (backend.h) and go back to it when they die, so the layers and 512-token
// chunks after the first reuse the same memory: freshly allocated multi-MB
// buffers per layer cost page faults, kernel zeroing and std::vector's own
// zeroing, ~5% of a 2048-token Mamba-2 prefill. Never zeroed: every buffer is
// fully written by the kernel that produces it before anything reads it. The
// pool is freed when the call ends. Host code never reads a buffer's floats
// (they may be device memory): only kernels and Backend::download do.
struct BufPool {
  Backend* backend = nullptr;
  std::vector<float*> blocks;
  std::vector<size_t> caps;
};

class BufScope {
 public:
  explicit BufScope(Backend& backend);
  ~BufScope();
  BufScope(const BufScope&) = delete;
  BufScope& operator=(const BufScope&) = delete;

 private:
  BufPool pool_;
  BufPool* prev_;
};

// n floats from the innermost BufScope's pool (a BufScope must be open).
class Buf {
 public:
  explicit Buf(size_t n);
  ~Buf();
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  float* data() { return block_; }
  const float* data() const { return block_; }

 private:
  float* block_ = nullptr;
  size_t cap_ = 0;
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

// int32 indices a kernel produces (MoE expert ids), from the same pool.
class I32Buf {
 public:
  explicit I32Buf(size_t n) : buf_(n) {}
  int32_t* data() { return reinterpret_cast<int32_t*>(buf_.data()); }

 private:
  Buf buf_;
};

// The observer installed on this thread (nullptr: not calibrating).
ActivationObserver* observer();

// Records per-channel statistics of x [M, C] (stride xs; the backend's
// memory, downloaded when it is not the host's) under `name`, with
// a quantile of |x| over channels [q0, q1) (forward.h ChannelStats).
void observe_channels(const std::string& name, const float* x, int64_t xs, int64_t M, int64_t C, int64_t q0 = 0,
                      int64_t q1 = 0);

// "backbone.layers.<layer>." and "backbone.layers.<layer>.mixer.".
std::string layer_name(int64_t layer);
std::string mixer_name(int64_t layer);

// How the inputs of a linear layer with weights of type t are rounded
// (ModelConfig::round_activations; kernels/linear.h "Rounded activations").
ActRounding input_rounding(const Model& m, DType t);

// The weight side of a qlinear call on an I8 / I4 Weight (inputs set by the caller).
QLinearArgs qlinear_args(const Weight& w, const Weight* bias, int64_t M, float* y);

// y[M, w.rows] = x[M, w.cols] (row stride xs) · wᵀ + bias, on the kernel the
// weight's format names (kernels/linear.h or kernels/qlinear.h); observed
// while calibrating.
void run_linear(const Model& m, const Weight& w, const Weight* bias, const float* x, int64_t xs, int64_t M, float* y);

// residual = h + residual (or h for the first norm of the stream);
// out = RMSNorm(residual) * w.
void add_norm(const Model& m, const Weight& w, float eps, const float* h, float* residual, bool first, int64_t n,
              int64_t d, float* out);

}  // namespace nm::engine
