// What the engine's blocks share: activation buffers from a per-call pool,
// linear layers dispatched on their weight format, the residual norm, and the
// calibration taps (forward.h ActivationObserver).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/buffers.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "kernels/linear.h"
#include "kernels/qlinear.h"

namespace nm::engine {

class Backend;

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

// Rows [r0, r1) of w as a weight of their own (data and scales offset),
// or false where its layout cannot start there (panels start every
// kPanelRows rows) or the range is empty or out of bounds.
bool weight_rows(const Weight& w, int64_t r0, int64_t r1, Weight* out);

// Columns [r0, r1) of run_linear's y [M, w.rows] (the others untouched):
// the products of w's rows [r0, r1). False, running nothing, where w or its
// bias cannot be split there (weight_rows), or while calibrating (the
// observer sees whole products: use run_linear).
bool run_linear_rows(const Model& m, const Weight& w, const Weight* bias, const float* x, int64_t xs, int64_t M,
                     float* y, int64_t r0, int64_t r1);

// residual = h + residual (or h for the first norm of the stream);
// out = RMSNorm(residual) * w.
void add_norm(const Model& m, const Weight& w, float eps, const float* h, float* residual, bool first, int64_t n,
              int64_t d, float* out);

}  // namespace nm::engine
