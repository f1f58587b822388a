// A SwiGLU MLP, down(silu(gate·x) ⊙ up·x): the feed-forward of Jamba's dense
// layers and Granite's shared MLP (alone in dense models, next to the
// experts in MoE models).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "engine/blocks/block.h"

namespace nm::engine {

struct SwiGlu {
  Weight gate, up, down;  // [I, d], [I, d], [d, I]
  int64_t dim = 0;        // I

  // The tensors <prefix>{gate,up,down}_proj.weight with I = dim.
  void load(const BlockContext& ctx, const std::string& prefix, int64_t dim);
  // out [n, d] = down(silu(gate·x) ⊙ up·x) for x [n, d]. `beside` (when
  // set) is other work that reads neither x's products nor out (the MoE's
  // router): at one row it runs on this thread while the gate product runs
  // in the background (Backend::set_background), else before the MLP.
  void forward(const Model& m, const float* x, int64_t n, float* out,
               const std::function<void()>& beside = nullptr) const;
  void linear_layers(const std::string& prefix, LinearList& out) const;
  uint64_t bytes() const;
};

}  // namespace nm::engine
