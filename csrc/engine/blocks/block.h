// The engine's layer building blocks (docs/hybrid-engine.md): a mixer
// (Mamba-1, Mamba-2, attention) and a feed-forward (MLP, MoE) per layer,
// each owning its weights, taken from the TensorTable by canonical name at
// load, and its per-sequence state. forward.cpp keeps only the residual
// stream, the norms and the multipliers. A new kind is one file here plus
// its line in registry.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"

namespace nm::engine {

class TensorTable;

// (checkpoint name without ".weight", weight) of every linear layer: calibration's taps.
using LinearList = std::vector<std::pair<std::string, const Weight*>>;

class Mixer {
 public:
  virtual ~Mixer() = default;
  // n tokens of the sequence in `slot`, the first at absolute position pos0
  // (its state holds the pos0 tokens before): hn [n, d_model] -> out [n, d_model].
  virtual void prefill(Model& m, int32_t slot, int64_t pos0, const float* hn, int64_t n, float* out) = 0;
  // One token for each of B distinct sequences, token b at position pos[b].
  virtual void step(Model& m, const int32_t* slots, const int32_t* pos, const float* hn, int64_t B, float* out) = 0;
  virtual void linear_layers(LinearList& out) const = 0;
};

class FeedForward {
 public:
  virtual ~FeedForward() = default;
  // x [n, d_model] -> out [n, d_model]; stateless.
  virtual void forward(const Model& m, const float* x, int64_t n, float* out) = 0;
  virtual void linear_layers(LinearList& out) const = 0;
  // Weight bytes one token does not read (MoE: the experts it is not routed to).
  virtual uint64_t unread_bytes_per_token() const { return 0; }
};

// What a block's constructor gets: the model (config, state reservation),
// the tensors, and its layer index.
struct BlockContext {
  Model& model;
  TensorTable& tensors;
  int64_t layer;
};

// registry.cpp: the block of a kind; an unknown kind is a LoadError.
std::unique_ptr<Mixer> make_mixer(MixerKind kind, const BlockContext& ctx);
std::unique_ptr<FeedForward> make_ffn(FfnKind kind, const BlockContext& ctx);

// Bytes of a (possibly absent) weight's data: as stored, and as the
// backend holds it (packed panels included).
uint64_t weight_bytes(const Weight& w);
uint64_t packed_weight_bytes(const Weight& w);

}  // namespace nm::engine
