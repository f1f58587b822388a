#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "engine/backend.h"
#include "engine/blocks/block.h"
#include "engine/tensor_table.h"
#include "kernels/hadamard.h"

namespace nm::engine {

Model::Model() = default;
Model::~Model() {
  if (backend_) backend_->quiesce();
  buf_cache_.release(*backend_);
  if (pool_) backend_->release_growable(pool_, pool_bytes_);
}

std::shared_ptr<Model> Model::load(const ModelConfig& cfg, const std::vector<std::string>& files,
                                   const std::vector<TensorSource>& tensors, BackendKind backend) {
  auto m = std::shared_ptr<Model>(new Model());
  m->cfg_ = cfg;
  m->backend_ = make_backend(backend);
  const ModelConfig& c = m->cfg_;
  if (c.d_model <= 0 || c.n_layer <= 0 || c.vocab <= 0 || (int64_t)c.layers.size() != c.n_layer)
    throw LoadError("invalid model configuration", "", "config");
  bool mamba = false;
  for (const LayerKind& k : c.layers) mamba = mamba || k.mixer != MixerKind::Attention;
  if (mamba && (c.d_state <= 0 || c.d_conv <= 0 || c.d_inner <= 0 || c.d_conv > 8))
    throw LoadError("invalid Mamba layer configuration", "", "config");
  if (c.hadamard_residual && !hadamard_size_supported(c.d_model))
    throw LoadError("quantization_config.residual_rotation \"online\" needs d_model = 2^k, 12·2^k or 40·2^k, got " +
                        std::to_string(c.d_model), "", "quantization_config.residual_rotation");
  if (c.hadamard_out && !hadamard_size_supported(c.d_inner))
    throw LoadError("quantization_config.hadamard needs d_inner = 2^k, 12·2^k or 40·2^k, got " +
                        std::to_string(c.d_inner), "", "quantization_config.hadamard");
  if (!(c.logits_scaling != 0.0f) || !std::isfinite(c.logits_scaling))
    throw LoadError("logits_scaling must be finite and non-zero", "", "logits_scaling");
  const std::string unsupported = m->backend_->unsupported(c);
  if (!unsupported.empty()) throw LoadError(unsupported, "", "device");

  for (const auto& f : files) {
    try {
      m->files_.push_back(std::make_unique<MappedFile>(f));
    } catch (const std::exception& e) {
      throw LoadError(e.what(), f, "");
    }
  }
  m->kv_ = std::make_unique<KvCache>(*m->backend_, c.kv_dtype);
  TensorTable tt(*m->backend_, m->files_, tensors, m->scale_store_, m->packed_store_);
  // ops.cpp input_rounding: Q8_0 / Q4_0 weights get Q8Block inputs, read
  // fastest in panels (NODE_MAMBA_BLOCK_PANELS=0 keeps them in rows: for
  // comparisons).
  const char* bp = std::getenv("NODE_MAMBA_BLOCK_PANELS");
  tt.set_block_int8_inputs(c.round_activations && !(bp && std::string(bp) == "0"));
  using Q = TensorTable::Quant;
  const int64_t d = c.d_model, V = c.vocab;

  const Weight embedding = tt.get_host("backbone.embeddings.weight", {{V, d}}, true, Q::Embedding);
  m->norm_f_ = tt.get("backbone.norm_f.weight", {{d}});
  const bool untied = tt.has("lm_head.weight");
  if (untied) {
    m->embedding_ = tt.place(embedding);
    m->lm_head_ = tt.get("lm_head.weight", {{V, d}}, true, Q::Any);
  } else if (dtype_info(embedding.dtype).linear == LinearKernel::Quamba) {
    // A quantized embedding as the tied head: its input scale (int8 head
    // inputs) is backbone.embeddings.input_scale; an i8 head needs one.
    Weight head = embedding;
    const std::string is = "backbone.embeddings.input_scale";
    if (tt.has(is)) {
      std::vector<float> a = tt.get_f32_any(is, {{}, {1}});
      if (!(a[0] > 0.0f) || !std::isfinite(a[0]))
        throw LoadError("tensor " + is + " is " + std::to_string(a[0]) + "; it must be finite and > 0", tt.path_of(is), is);
      head.act_scale = a[0];
    } else if (embedding.dtype == DType::I8) {
      throw LoadError("the embedding is i8 and the head is tied to it: the head needs " + is +
                          " (or its own lm_head.weight)", tt.path_of("backbone.embeddings.weight"), is);
    }
    // A head with int8 inputs is packed (on a backend that packs); the
    // lookup then reads the packed copy too, so that the file's pages are
    // never touched again. One placed copy serves both.
    m->lm_head_ = tt.place(tt.pack(head));
    m->embedding_ = m->lm_head_;
    m->embedding_.act_scale = 0.0f;
  } else {
    // Tied. A Q8_0 / Q4_0 table whose head gets Q8_0-rounded inputs is packed, and
    // the lookup reads the packed copy (as for a quantized head above).
    m->embedding_ = tt.place(tt.pack(embedding));
    m->lm_head_ = m->embedding_;
  }

  // The lookup reads a row per token, at random: its pages mapped now.
  {
    const Weight& e = m->embedding_;
    m->backend_->make_resident(e.data, (size_t)dtype_layout_bytes(e.dtype, e.layout, e.rows, e.cols), false);
  }

  m->layers_.resize((size_t)c.n_layer);
  uint64_t unread = 0;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Layer& L = m->layers_[(size_t)i];
    const std::string pre = "backbone.layers." + std::to_string(i) + ".";
    const BlockContext ctx{*m, tt, i};
    L.norm = tt.get(pre + "norm.weight", {{d}});
    L.mixer = make_mixer(c.layers[(size_t)i].mixer, ctx);
    if (c.layers[(size_t)i].ffn != FfnKind::None) {
      L.ffn_norm = tt.get(pre + "ffn_norm.weight", {{d}});
      L.ffn = make_ffn(c.layers[(size_t)i].ffn, ctx);
      unread += L.ffn->unread_bytes_per_token();
    }
  }
  m->weight_bytes_ = tt.used_bytes();
  // A step reads every weight but an untied embedding (only its tokens'
  // rows) and the experts its tokens are not routed to.
  m->decode_bytes_ = m->weight_bytes_ - unread;
  if (untied) m->decode_bytes_ -= (uint64_t)V * (uint64_t)dtype_row_bytes(m->embedding_.dtype, d);
  return m;
}

int64_t Model::reserve_state(int64_t floats) {
  const int64_t off = state_floats_;
  state_floats_ += floats;
  return off;
}

std::vector<std::pair<std::string, const Weight*>> Model::linear_layers() const {
  LinearList out;
  for (const Layer& L : layers_) {
    L.mixer->linear_layers(out);
    if (L.ffn) L.ffn->linear_layers(out);
  }
  out.emplace_back("lm_head", &lm_head_);
  return out;
}

int32_t Model::alloc_slot() {
  for (size_t i = 0; i < slot_used_.size(); ++i) {
    if (!slot_used_[i]) {
      slot_used_[i] = 1;
      reset_slot((int32_t)i);
      return (int32_t)i;
    }
  }
  size_t old = slot_used_.size(), grown = std::max<size_t>(4, old * 2);
  if (grown > (size_t)INT32_MAX) throw std::runtime_error("too many sequences");
  // A larger pool holding the existing slots' states (new slots are zeroed
  // by reset_slot): Backend::grow (on the CPU remapped, not copied).
  const size_t bytes = std::max<size_t>(grown * (size_t)state_floats_ * sizeof(float), 1);
  pool_ = static_cast<float*>(pool_ ? backend_->grow(pool_, pool_bytes_, bytes) : backend_->alloc_growable(bytes));
  pool_bytes_ = bytes;
  ++pool_moves_;
  slot_used_.resize(grown, 0);
  positions_.resize(grown, 0);
  slot_used_[old] = 1;
  reset_slot((int32_t)old);
  return (int32_t)old;
}

void Model::reset_slot(int32_t slot) {
  backend_->zero(slot_state(slot), (size_t)state_floats_ * sizeof(float));
  positions_[(size_t)slot] = 0;
  kv_->release(slot);
}

void Model::free_slot(int32_t slot) {
  if (!slot_live(slot)) return;
  slot_used_[(size_t)slot] = 0;
  kv_->release(slot);
}

bool Model::slot_live(int32_t slot) const {
  return slot >= 0 && (size_t)slot < slot_used_.size() && slot_used_[(size_t)slot];
}

void Model::check_context(int32_t slot, int64_t tokens) const {
  if (kv_->layer_count() == 0) return;
  const int64_t pos = position(slot);
  if (pos + tokens > cfg_.context_size)
    throw std::out_of_range("node-mamba: the sequence would hold " + std::to_string(pos + tokens) +
                            " tokens (" + std::to_string(pos) + " + " + std::to_string(tokens) +
                            "), past the model's contextSize of " + std::to_string(cfg_.context_size));
}

uint64_t Model::snapshot_bytes(int64_t position) const {
  uint64_t n = (uint64_t)state_floats_ * 4;
  for (int32_t l = 0; l < kv_->layer_count(); ++l) n += 2 * (uint64_t)position * (uint64_t)kv_->row_bytes(l);
  return n;
}

// Layer order: each Mamba block's floats sit at its reserved offsets, which
// follow layer order; attention layers' K/V follow, in layer order.
std::vector<uint8_t> Model::snapshot(int32_t slot) const {
  const int64_t pos = position(slot);
  std::vector<uint8_t> out(snapshot_bytes(pos));
  backend_->download(out.data(), pool_ + (int64_t)slot * state_floats_, (size_t)state_floats_ * 4);
  uint8_t* p = out.data() + state_floats_ * 4;
  for (int32_t l = 0; l < kv_->layer_count(); ++l) {
    kv_->read(slot, l, pos, p);
    p += 2 * pos * kv_->row_bytes(l);
  }
  return out;
}

void Model::restore(int32_t slot, const uint8_t* bytes, size_t nbytes, int64_t position) {
  if (position < 0 || (kv_->layer_count() > 0 && position > cfg_.context_size))
    throw std::out_of_range("node-mamba: restore: position " + std::to_string(position) + " is outside [0, contextSize " +
                            std::to_string(cfg_.context_size) + "]");
  if (nbytes != snapshot_bytes(position))
    throw std::out_of_range("node-mamba: restore: the state has " + std::to_string(nbytes) + " bytes, a sequence at " +
                            "position " + std::to_string(position) + " of this model has " +
                            std::to_string(snapshot_bytes(position)));
  kv_->release(slot);
  backend_->upload(slot_state(slot), bytes, (size_t)state_floats_ * 4);
  const uint8_t* p = bytes + state_floats_ * 4;
  for (int32_t l = 0; l < kv_->layer_count(); ++l) {
    kv_->write(slot, l, position, p);
    p += 2 * position * kv_->row_bytes(l);
  }
  positions_[(size_t)slot] = position;
}

}  // namespace nm::engine
