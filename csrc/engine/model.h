// A loaded Mamba / Mamba-2 model: configuration, memory-mapped weights in
// their stored dtype, the small per-layer parameters converted to float32,
// and a pool of per-sequence recurrent states. Forward passes are in
// forward.cpp; the N-API wrapper is napi/model_binding.cpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "engine/mapped_file.h"

namespace nm::engine {

enum class Arch { Mamba1, Mamba2 };

struct ModelConfig {
  Arch arch = Arch::Mamba1;
  int64_t d_model = 0, n_layer = 0, vocab = 0;
  int64_t d_state = 0, d_conv = 0, d_inner = 0;
  int64_t dt_rank = 0;                         // Mamba-1
  int64_t headdim = 0, nheads = 0, ngroups = 1;  // Mamba-2
  float norm_eps = 1e-5f;
  float dt_min = 0.0f, dt_max = INFINITY;      // Mamba-2 time_step_limit
  bool tie_embeddings = true;
  // Inputs of linear layers with bf16 weights rounded to bf16, with Q8_0 /
  // Q4_0 weights quantized to int8 per 32 (as llama.cpp does; enables the
  // dot-product GEMV). false: exact float32 inputs for every weight type.
  bool round_activations = true;
  // Quamba-style checkpoints (quantization_config.hadamard): the out_proj
  // input is rotated online, y <- T(y) = H·y / sqrt(d_inner) (kernels/
  // hadamard.h), its transpose folded into out_proj offline.
  bool hadamard_out = false;
  // quantization_config.residual_rotation "online": the embedding output is
  // rotated (h <- T(h), n = d_model) and the final residual rotated back
  // (Tᵀ) before norm_f, so that the embedding, norm_f and a tied head stay
  // as trained while every block sees the rotated stream.
  bool hadamard_residual = false;
  // quantization_config.ssm_activations "int8": the conv1d input and output
  // and the scan's x, B, C are int8 with static per-channel scales
  // (kernels/ssm_q8.h; LayerWeights::*_scale).
  bool ssm_int8 = false;
  // Mamba-2 conv channels: d_inner + 2 * ngroups * d_state (Mamba-1: d_inner).
  int64_t conv_dim() const { return arch == Arch::Mamba2 ? d_inner + 2 * ngroups * d_state : d_inner; }
  // Mamba-2 in_proj rows: [z, xBC, dt] = 2 d_inner + 2 G N + H (Mamba-1: 2 d_inner).
  int64_t in_proj_dim() const { return arch == Arch::Mamba2 ? 2 * d_inner + 2 * ngroups * d_state + nheads : 2 * d_inner; }
};

// Where a tensor's bytes are: file index, absolute byte offset, size.
struct TensorSource {
  std::string name;
  int32_t file = 0;
  uint64_t offset = 0, nbytes = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

// Load failures carry the file and the tensor / field for the JS error.
struct LoadError : std::runtime_error {
  std::string file, field;
  LoadError(const std::string& msg, std::string f, std::string fld)
      : std::runtime_error(msg), file(std::move(f)), field(std::move(fld)) {}
};

struct Weight {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;  // 1-D tensors: rows = 1
  // Formats with separate scales (I8 / I4, core/dtype.h): the weight scales
  // (<name>_scale: [rows] or [rows, groups]) and the static input scale
  // (input_scale; 0 = float32 inputs, W4A16), owned by the Model.
  const float* scales = nullptr;
  float act_scale = 0.0f;
};

struct LayerWeights {
  Weight norm;                   // [d_model]
  Weight in_proj, in_proj_bias;  // [in_proj_dim, d_model], optional [in_proj_dim]
  Weight conv_w, conv_b;         // [conv_dim, d_conv] (stored [C,1,K]), optional [conv_dim]; float32 copies
  Weight out_proj, out_proj_bias;
  // Mamba-1
  Weight x_proj;                 // [dt_rank + 2N, d_inner]
  Weight dt_proj;                // [d_inner, dt_rank]
  // Mamba-2
  Weight gated_norm;             // [d_inner]
  // float32 copies of small parameters: A = -exp(A_log) ([d_inner, N] or [H]),
  // D ([d_inner] or [H]), dt bias (dt_proj.bias [d_inner] or dt_bias [H]).
  std::vector<float> A, D, dt_bias;
  // Int8 SSM path (ModelConfig::ssm_int8), per channel: conv input
  // [conv_dim], conv output [conv_dim] (Mamba-2: x, then B and C per group
  // and state; Mamba-1: x_proj's input scale, repeated), Mamba-1 B and C
  // [d_state]. Empty otherwise.
  std::vector<float> conv_in_scale, conv_out_scale, B_scale, C_scale;
};

class Model {
 public:
  // Maps the files, checks every tensor against the configuration and the
  // file bounds, converts the small parameters. Throws LoadError.
  static std::shared_ptr<Model> load(const ModelConfig& cfg, const std::vector<std::string>& files,
                                     const std::vector<TensorSource>& tensors);

  const ModelConfig& config() const { return cfg_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const Weight& embedding() const { return embedding_; }
  const Weight& norm_f() const { return norm_f_; }
  const Weight& lm_head() const { return lm_head_; }
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Weight bytes one decode step reads: all of them, except an untied
  // embedding, of which a step reads only its tokens' rows.
  uint64_t decode_bytes() const { return decode_bytes_; }

  // --- per-sequence state pool (callers hold compute_mutex()) ---
  // Floats of one sequence's state: per layer conv [conv_dim, d_conv-1] then ssm.
  int64_t state_floats() const { return state_floats_; }
  int64_t conv_offset(int64_t layer) const { return conv_off_[layer]; }
  int64_t ssm_offset(int64_t layer) const { return ssm_off_[layer]; }
  // New zeroed slot (grows the pool when full).
  int32_t alloc_slot();
  void free_slot(int32_t slot);
  bool slot_live(int32_t slot) const;
  float* slot_state(int32_t slot) { return pool_.data() + (int64_t)slot * state_floats_; }
  float* pool_base() { return pool_.data(); }
  int64_t live_slots() const;

  std::mutex& compute_mutex() { return compute_mu_; }

  // Every linear layer with its checkpoint name (without ".weight"), in
  // model order: the taps of calibration (forward.h ActivationObserver).
  std::vector<std::pair<std::string, const Weight*>> linear_layers() const;

 private:
  // A small tensor as a float32 copy the Model owns (f16 / bf16 conv weights
  // would be widened element by element in every decode step's conv update).
  Weight as_f32(const Weight& w);

  ModelConfig cfg_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  Weight embedding_, norm_f_, lm_head_;
  std::vector<LayerWeights> layers_;
  uint64_t weight_bytes_ = 0, decode_bytes_ = 0;
  std::vector<std::vector<float>> scale_store_;  // Weight::scales and float32 copies point here

  int64_t state_floats_ = 0;
  std::vector<int64_t> conv_off_, ssm_off_;
  std::vector<float> pool_;
  std::vector<uint8_t> slot_used_;
  std::mutex compute_mu_;
};

}  // namespace nm::engine
