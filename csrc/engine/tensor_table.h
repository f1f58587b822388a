// The tensors of a checkpoint as the engine receives them (name, file,
// offset, dtype, shape), checked against the shapes the blocks expect and
// against the file bounds before any byte is read. Model::load and the
// blocks (engine/blocks/) take their weights from here, placed in the
// backend's memory (backend.h Backend::place): what get() and params() hand
// out may be device memory, never read on the host.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"

namespace nm::engine {

class Backend;

class TensorTable {
 public:
  TensorTable(Backend& backend, const std::vector<std::unique_ptr<MappedFile>>& files,
              const std::vector<TensorSource>& tensors, std::vector<std::vector<float>>& scale_store,
              std::vector<AlignedBytes>& packed_store);

  bool has(const std::string& name) const { return by_name_.count(name) > 0; }

  // The tensor `name` with exactly `shape` (alternatives allowed), bounds-checked.
  // Block formats only where `quant` allows them: Ggml (Q8_0 / Q4_0, for
  // matrices read by the linear kernel or the embedding lookup, with a last
  // dimension that is a multiple of 32), Any (also I8 / I4, for matrices
  // read by the linear layers, whose scale tensors are loaded with them, and
  // which come back packed: pack()) or Embedding (as Any, without the input
  // scale: a lookup has no input; never packed). Placed in the backend's memory.
  enum class Quant { None, Ggml, Any, Embedding };
  Weight get(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required = true,
             Quant quant = Quant::None);
  // As get(), on the host (the mapped file or the table's stores): for values
  // the loader reads itself.
  Weight get_host(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required = true,
                  Quant quant = Quant::None);
  // A host weight's data and scales in the backend's memory.
  Weight place(const Weight& host);

  // The scale tensors of an I8 / I4 weight `name` ("<base>.weight"):
  // <base>.weight_scale [rows] (I8) or [rows, ceil(cols / 128)] (I4), finite
  // and >= 0; <base>.input_scale [] or [1], finite and > 0, required for I8
  // (W8A8), absent for float inputs (W4A16).
  void load_scales(const std::string& name, Weight& w, bool input_scale);

  // The weight as the linear kernels read it fastest: on a backend that
  // packs (Backend::packs_weights), an I8 / I4 weight with int8 inputs
  // (act_scale > 0: W8A8, W4A8), or a Q8_0 / Q4_0 weight when its inputs
  // are rounded as Q8_0 (set_block_int8_inputs; kernels/ggml_panels.h) and
  // (Q8_0) no q is -128, packed once into its panel layout (core/dtype.h
  // WeightLayout::Panels; the copy and its reordered scales are owned by
  // the model), the file's pages of the original released
  // (MappedFile::release) so that resident memory does not double; any
  // other weight unchanged.
  Weight pack(const Weight& w);
  // Whether pack(w) would pack w (reads a Q8_0 weight's bytes for q = -128).
  bool packs(const Weight& w) const;
  // Whether Q8_0 / Q4_0 weights read by the linear layers get Q8_0-rounded
  // inputs (ModelConfig::round_activations), so that pack() packs them.
  void set_block_int8_inputs(bool on) { block_int8_inputs_ = on; }

  std::string path_of(const std::string& name) const;

  // Small parameters, converted to float32 on the host. Quantized dtypes are
  // refused (get() throws a LoadError naming the tensor).
  std::vector<float> get_f32(const std::string& name, std::vector<int64_t> shape);
  std::vector<float> get_f32_any(const std::string& name, std::vector<std::vector<int64_t>> shapes);

  // A static int8 activation scale of `n` channels, stored as [] / [1] (one
  // for all) or [n]; finite and > 0.
  std::vector<float> get_act_scales(const std::string& name, int64_t n);

  // Float32 parameters placed in the backend's memory for the kernels.
  Params params(std::vector<float> host);

  // The tensor as get() checks it, converted to a float32 copy and placed
  // (f16 / bf16 conv weights would be widened element by element in every
  // decode step).
  Weight get_as_f32(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required = true);

  uint64_t used_bytes() const { return used_bytes_; }

 private:
  Backend& backend_;
  const std::vector<std::unique_ptr<MappedFile>>& files_;
  std::vector<std::vector<float>>& scale_store_;
  std::vector<AlignedBytes>& packed_store_;
  std::map<std::string, const TensorSource*> by_name_;
  uint64_t used_bytes_ = 0;
  bool block_int8_inputs_ = false;
};

// The state matrix A = -exp(A_log). Checkpoints store A_log (Hugging Face,
// state-spaces); GGUF files store A itself, which the loader passes as
// "<mixer>A".
std::vector<float> load_A(TensorTable& tt, const std::string& mixer, std::vector<int64_t> shape);

}  // namespace nm::engine
