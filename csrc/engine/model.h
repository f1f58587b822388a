// A loaded model: configuration, memory-mapped weights in their stored
// dtype, one Layer per block of the schedule (a mixer and an optional
// feed-forward, engine/blocks/), and the per-sequence states. Forward passes
// are in forward.cpp; the N-API wrapper is napi/model_binding.cpp.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "engine/buffers.h"
#include "engine/kv_cache.h"
#include "engine/mapped_file.h"

namespace nm::engine {

class Backend;
enum class BackendKind;
class Mixer;
class FeedForward;

// A layer is a mixer followed by an optional feed-forward (docs/hybrid-engine.md).
enum class MixerKind { Mamba1, Mamba2, Attention };
enum class FfnKind { None, Mlp, Moe };
struct LayerKind {
  MixerKind mixer = MixerKind::Mamba1;
  FfnKind ffn = FfnKind::None;
};

struct ModelConfig {
  std::vector<LayerKind> layers;               // n_layer entries
  int64_t d_model = 0, n_layer = 0, vocab = 0;
  // Mamba layers
  int64_t d_state = 0, d_conv = 0, d_inner = 0;
  int64_t dt_rank = 0;                         // Mamba-1
  int64_t headdim = 0, nheads = 0, ngroups = 1;  // Mamba-2
  float norm_eps = 1e-5f;
  float dt_min = 0.0f, dt_max = INFINITY;      // Mamba-2 time_step_limit
  bool mamba_inner_norms = false;              // Jamba: RMSNorm of dt, B, C after x_proj
  int64_t gated_norm_group = 0;                // Mamba-2 gated norm group size; 0: d_inner / ngroups
  // Attention layers
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float attn_scale = 0.0f;                     // 0: 1 / sqrt(head_dim)
  double rope_theta = 0.0;                     // 0: no RoPE
  int64_t rope_dim = 0;
  bool rope_interleaved = false;               // kernels/attention.h RopeArgs::interleaved (llama.cpp files)
  int64_t context_size = 0;                    // tokens a sequence may hold (attention models)
  DType kv_dtype = DType::F16;
  // Feed-forwards
  int64_t mlp_dim = 0;
  int64_t moe_experts = 0, moe_top_k = 0, moe_dim = 0, moe_shared_dim = 0;
  int32_t moe_router = 0;                      // kernels/moe.h MoeRouter
  // Granite: h = embed · embedding_multiplier; every branch · residual_multiplier; logits / logits_scaling.
  float embedding_multiplier = 1.0f, residual_multiplier = 1.0f, logits_scaling = 1.0f;
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
  // (kernels/ssm_q8.h).
  bool ssm_int8 = false;

  bool has_moe() const {
    for (const LayerKind& k : layers)
      if (k.ffn == FfnKind::Moe) return true;
    return false;
  }
  bool has_attention() const {
    for (const LayerKind& k : layers)
      if (k.mixer == MixerKind::Attention) return true;
    return false;
  }
};

// Where a tensor's bytes are: file index, absolute byte offset, size.
struct TensorSource {
  std::string name;
  int32_t file = 0;
  uint64_t offset = 0, nbytes = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

// 64-byte aligned bytes (weights packed at load).
struct AlignedDelete {
  void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using AlignedBytes = std::unique_ptr<uint8_t[], AlignedDelete>;

// Load failures carry the file and the tensor / field for the JS error.
struct LoadError : std::runtime_error {
  std::string file, field;
  LoadError(const std::string& msg, std::string f, std::string fld)
      : std::runtime_error(msg), file(std::move(f)), field(std::move(fld)) {}
};

struct Weight {
  const void* data = nullptr;
  DType dtype = DType::F32;
  // Rows: data is the tensor as stored (in the mapped file); Panels: a copy
  // packed at load into the format's panel layout (core/dtype.h), owned by
  // the Model, with scales in the panel order (TensorTable::pack).
  WeightLayout layout = WeightLayout::Rows;
  int64_t rows = 0, cols = 0;  // 1-D tensors: rows = 1
  // Formats with separate scales (I8 / I4, core/dtype.h): the weight scales
  // (<name>_scale: [rows] or [rows, groups]) and the static input scale
  // (input_scale; 0 = float32 inputs, W4A16), owned by the Model.
  const float* scales = nullptr;
  float act_scale = 0.0f;
};

// Small float32 parameters (A, D, dt biases, activation scales) in the
// backend's memory (TensorTable::params).
struct Params {
  const float* ptr = nullptr;
  int64_t n = 0;
  const float* data() const { return ptr; }
  int64_t size() const { return n; }
};

// One layer: pre-norm, mixer, and (ffn != None) a second pre-norm and the feed-forward.
struct Layer {
  Weight norm, ffn_norm;
  std::unique_ptr<Mixer> mixer;
  std::unique_ptr<FeedForward> ffn;
};

class Model {
 public:
  // Maps the files, builds every layer's blocks (engine/blocks/), which
  // check their tensors against the configuration and the file bounds and
  // convert their small parameters, on the backend of `backend` (weights,
  // states and activations in its memory). Throws LoadError.
  static std::shared_ptr<Model> load(const ModelConfig& cfg, const std::vector<std::string>& files,
                                     const std::vector<TensorSource>& tensors, BackendKind backend);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  // The device its kernels run on (backend.h); the blocks call every kernel
  // through it. A service object: usable from const methods.
  Backend& backend() const { return *backend_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const Weight& embedding() const { return embedding_; }
  const Weight& norm_f() const { return norm_f_; }
  const Weight& lm_head() const { return lm_head_; }
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Weight bytes one decode step reads: all of them, except an untied
  // embedding, of which a step reads only its tokens' rows, and experts,
  // of which a token reads its top-k (bytes of k experts per MoE layer).
  uint64_t decode_bytes() const { return decode_bytes_; }

  // --- per-sequence state (callers hold compute_mutex()) ---
  // A sequence's state: the fixed floats of its recurrent layers (each
  // Mamba block's conv then SSM state, at the offset reserve_state() gave
  // it), its attention layers' KV pages (kv_cache.h) and its position. The
  // floats are the backend's memory: slot_state() and pool_base() address
  // them for kernels; host code goes through snapshot() / restore().
  int64_t state_floats() const { return state_floats_; }
  // New zeroed slot at position 0 (grows the pool when full).
  int32_t alloc_slot();
  void free_slot(int32_t slot);
  bool slot_live(int32_t slot) const;
  // Back to the empty state (zeros, no KV pages, position 0).
  void reset_slot(int32_t slot);
  float* slot_state(int32_t slot) { return pool_ + (int64_t)slot * state_floats_; }
  float* pool_base() { return pool_; }
  // Changes whenever the state pool or the KV cache storage moves (decode
  // graphs address both: Backend::step_begin).
  uint64_t memory_generation() const { return (pool_moves_ << 32) ^ (uint64_t)kv_->generation(); }
  // Tokens the sequence has consumed.
  int64_t position(int32_t slot) const { return positions_[(size_t)slot]; }
  void set_position(int32_t slot, int64_t pos) { positions_[(size_t)slot] = pos; }
  KvCache& kv() { return *kv_; }
  // Throws std::out_of_range when `tokens` more tokens would take the
  // sequence past config().context_size (attention models only), naming
  // the option.
  void check_context(int32_t slot, int64_t tokens) const;

  // The whole state of a sequence as bytes: the recurrent layers' floats
  // (each Mamba layer's conv then SSM state, in layer order), then each
  // attention layer's K then V rows of its `position` tokens in the
  // cache's dtype (layer order); and back. restore() checks the byte count for the
  // given position (std::out_of_range) before changing anything.
  std::vector<uint8_t> snapshot(int32_t slot) const;
  void restore(int32_t slot, const uint8_t* bytes, size_t nbytes, int64_t position);
  // Bytes snapshot() returns for a sequence at `position`.
  uint64_t snapshot_bytes(int64_t position) const;

  // Load time, for the blocks: floats of per-sequence state, returning their offset.
  int64_t reserve_state(int64_t floats);

  std::mutex& compute_mutex() { return compute_mu_; }
  // Jobs waiting for the compute mutex (ComputeLock): a chain of decode
  // steps (napi/step_chain.h) lets them in between its steps.
  int compute_waiters() const { return compute_waiters_.load(std::memory_order_relaxed); }
  // Activation blocks kept between forward calls (engine/ops.h).
  BufCache& buf_cache() { return buf_cache_; }

  // Every linear layer with its checkpoint name (without ".weight"), in
  // model order: the taps of calibration (forward.h ActivationObserver).
  std::vector<std::pair<std::string, const Weight*>> linear_layers() const;

 private:
  Model();

  ModelConfig cfg_;
  std::unique_ptr<Backend> backend_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  Weight embedding_, norm_f_, lm_head_;
  std::vector<Layer> layers_;
  uint64_t weight_bytes_ = 0, decode_bytes_ = 0;
  std::vector<std::vector<float>> scale_store_;  // Weight::scales and float32 copies point here
  std::vector<AlignedBytes> packed_store_;        // Weight::data of Panels weights points here

  int64_t state_floats_ = 0;
  float* pool_ = nullptr;  // [slots, state_floats_] in the backend's memory (Backend::alloc_growable)
  size_t pool_bytes_ = 0;
  uint64_t pool_moves_ = 0;  // times pool_ was reallocated
  std::vector<uint8_t> slot_used_;
  std::vector<int64_t> positions_;
  std::unique_ptr<KvCache> kv_;
  std::mutex compute_mu_;
  std::atomic<int> compute_waiters_{0};
  friend class ComputeLock;
  BufCache buf_cache_;
};

// Holds a model's compute mutex for a job's scope, counted in
// compute_waiters() while it waits.
class ComputeLock {
 public:
  explicit ComputeLock(Model& m) : m_(m) {
    m_.compute_waiters_.fetch_add(1, std::memory_order_relaxed);
    m_.compute_mu_.lock();
    m_.compute_waiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  ~ComputeLock() { m_.compute_mu_.unlock(); }
  ComputeLock(const ComputeLock&) = delete;
  ComputeLock& operator=(const ComputeLock&) = delete;

 private:
  Model& m_;
};

}  // namespace nm::engine
