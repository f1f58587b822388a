#include "engine/model.h"

#include "kernels/hadamard.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

namespace nm::engine {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

class TensorTable {
 public:
  TensorTable(const std::vector<std::unique_ptr<MappedFile>>& files, const std::vector<TensorSource>& tensors,
              std::vector<std::vector<float>>& scale_store)
      : files_(files), scale_store_(scale_store) {
    for (const auto& t : tensors) by_name_[t.name] = &t;
  }

  bool has(const std::string& name) const { return by_name_.count(name) > 0; }

  // The tensor `name` with exactly `shape` (alternatives allowed), bounds-checked.
  // Block formats only where `quant` allows them: Ggml (Q8_0 / Q4_0, for
  // matrices read by the linear kernel or the embedding lookup, with a last
  // dimension that is a multiple of 32), Any (also I8 / I4, for matrices
  // read by the linear layers, whose scale tensors are loaded with them) or
  // Embedding (as Any, without the input scale: a lookup has no input).
  enum class Quant { None, Ggml, Any, Embedding };
  Weight get(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required = true,
             Quant quant = Quant::None) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      if (!required) return Weight{};
      throw LoadError("missing tensor " + name, files_.empty() ? "" : files_[0]->path(), name);
    }
    const TensorSource& t = *it->second;
    if (t.file < 0 || (size_t)t.file >= files_.size())
      throw LoadError("tensor " + name + " names file index " + std::to_string(t.file) + " out of range", "", name);
    const MappedFile& f = *files_[t.file];
    bool ok = false;
    for (const auto& s : shapes) ok = ok || s == t.shape;
    if (!ok)
      throw LoadError("tensor " + name + " has shape " + shape_str(t.shape) + ", expected " + shape_str(shapes[0]),
                      f.path(), name);
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    const int64_t last = t.shape.empty() ? 1 : t.shape.back();
    const DTypeInfo& fmt = dtype_info(t.dtype);
    if (!fmt.plain_float) {
      const bool allowed = quant == Quant::Any || quant == Quant::Embedding ||
                           (quant == Quant::Ggml && fmt.scales == ScaleLayout::InBlock);
      if (!allowed)
        throw LoadError("tensor " + name + " has quantized dtype " + dtype_name(t.dtype) + "; node-mamba reads it only as " +
                            (quant == Quant::Ggml ? "f32, f16, bf16, q8_0 or q4_0" : "f32, f16 or bf16"),
                        f.path(), name);
      if (t.shape.size() != 2)
        throw LoadError("tensor " + name + " has dtype " + dtype_name(t.dtype) + " but shape " + shape_str(t.shape) +
                            ": quantized tensors must be matrices", f.path(), name);
      if (fmt.scales == ScaleLayout::InBlock && last % kQuantBlock != 0)
        throw LoadError("tensor " + name + " has dtype " + dtype_name(t.dtype) + " but shape " + shape_str(t.shape) +
                            ": quantized tensors must be matrices whose rows are a multiple of " +
                            std::to_string(kQuantBlock) + " elements", f.path(), name);
    }
    // Bytes of all rows (dims before the last) of `last` elements each.
    uint64_t need = last == 0 ? 0 : (uint64_t)(numel / last) * (uint64_t)dtype_row_bytes(t.dtype, last);
    if (t.nbytes != need)
      throw LoadError("tensor " + name + " has " + std::to_string(t.nbytes) + " bytes, its shape and dtype need " +
                          std::to_string(need), f.path(), name);
    if (t.offset > f.size() || f.size() - t.offset < t.nbytes)
      throw LoadError("tensor " + name + " lies past the end of the file", f.path(), name);
    if (fmt.block_bytes % 2 == 0 && t.dtype != DType::F32 && (t.offset % 2) != 0)
      throw LoadError("tensor " + name + " is not 2-byte aligned", f.path(), name);
    used_bytes_ += t.nbytes;
    Weight w;
    w.data = f.data() + t.offset;
    w.dtype = t.dtype;
    w.rows = t.shape.size() >= 2 ? t.shape[0] : 1;
    w.cols = t.shape.empty() ? 1 : (t.shape.size() >= 2 ? numel / t.shape[0] : t.shape[0]);
    if (fmt.scales == ScaleLayout::PerRow || fmt.scales == ScaleLayout::PerGroup)
      load_scales(name, w, quant != Quant::Embedding);
    return w;
  }

  // The scale tensors of an I8 / I4 weight `name` ("<base>.weight"):
  // <base>.weight_scale [rows] (I8) or [rows, ceil(cols / 128)] (I4), finite
  // and >= 0; <base>.input_scale [] or [1], finite and > 0, required for I8
  // (W8A8), absent for float inputs (W4A16).
  void load_scales(const std::string& name, Weight& w, bool input_scale) {
    const std::string base = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0
                                 ? name.substr(0, name.size() - 7) : name;
    const int64_t n = dtype_scale_count(w.dtype, w.rows, w.cols);
    std::vector<std::vector<int64_t>> shapes = {{w.rows}};
    if (w.dtype == DType::I4) shapes = {{w.rows, n / w.rows}};
    std::vector<float> s = get_f32_any(base + ".weight_scale", shapes);
    for (size_t i = 0; i < s.size(); ++i)
      if (!(s[i] >= 0.0f) || !std::isfinite(s[i]))
        throw LoadError("tensor " + base + ".weight_scale holds " + std::to_string(s[i]) + " at index " +
                            std::to_string(i) + "; scales must be finite and >= 0", path_of(base + ".weight_scale"),
                        base + ".weight_scale");
    scale_store_.push_back(std::move(s));
    w.scales = scale_store_.back().data();
    if (!input_scale) return;
    if (has(base + ".input_scale")) {
      std::vector<float> a = get_f32_any(base + ".input_scale", {{}, {1}});
      if (!(a[0] > 0.0f) || !std::isfinite(a[0]))
        throw LoadError("tensor " + base + ".input_scale is " + std::to_string(a[0]) + "; it must be finite and > 0",
                        path_of(base + ".input_scale"), base + ".input_scale");
      w.act_scale = a[0];
    } else if (w.dtype == DType::I8) {
      throw LoadError("missing tensor " + base + ".input_scale (an i8 weight needs the static scale of its input)",
                      path_of(name), base + ".input_scale");
    }
  }

  std::string path_of(const std::string& name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end() || it->second->file < 0 || (size_t)it->second->file >= files_.size())
      return files_.empty() ? "" : files_[0]->path();
    return files_[it->second->file]->path();
  }

  // Small parameters, converted to float32. Quantized dtypes are refused
  // (get() throws a LoadError naming the tensor).
  std::vector<float> get_f32(const std::string& name, std::vector<int64_t> shape) {
    return get_f32_any(name, {std::move(shape)});
  }
  std::vector<float> get_f32_any(const std::string& name, std::vector<std::vector<int64_t>> shapes) {
    Weight w = get(name, std::move(shapes));
    int64_t n = w.rows * w.cols;
    std::vector<float> out((size_t)n);
    for (int64_t i = 0; i < n; ++i) out[(size_t)i] = load_as_f32(w.data, w.dtype, i);
    return out;
  }

  // A static int8 activation scale of `n` channels, stored as [] / [1] (one
  // for all) or [n]; finite and > 0.
  std::vector<float> get_act_scales(const std::string& name, int64_t n) {
    std::vector<float> s = get_f32_any(name, {{}, {1}, {n}});
    for (size_t i = 0; i < s.size(); ++i)
      if (!(s[i] > 0.0f) || !std::isfinite(s[i]))
        throw LoadError("tensor " + name + " holds " + std::to_string(s[i]) + " at index " + std::to_string(i) +
                            "; activation scales must be finite and > 0", path_of(name), name);
    if ((int64_t)s.size() != n) s.assign((size_t)n, s[0]);
    return s;
  }

  uint64_t used_bytes() const { return used_bytes_; }

 private:
  const std::vector<std::unique_ptr<MappedFile>>& files_;
  std::vector<std::vector<float>>& scale_store_;
  std::map<std::string, const TensorSource*> by_name_;
  uint64_t used_bytes_ = 0;
};

// The state matrix A = -exp(A_log). Checkpoints store A_log (Hugging Face,
// state-spaces); GGUF files store A itself, which the loader passes as
// "<mixer>.A".
std::vector<float> load_A(TensorTable& tt, const std::string& mixer, std::vector<int64_t> shape) {
  if (tt.has(mixer + "A")) return tt.get_f32(mixer + "A", shape);
  std::vector<float> a = tt.get_f32(mixer + "A_log", shape);
  for (float& v : a) v = -std::exp(v);
  return a;
}

}  // namespace

std::shared_ptr<Model> Model::load(const ModelConfig& cfg, const std::vector<std::string>& files,
                                   const std::vector<TensorSource>& tensors) {
  auto m = std::shared_ptr<Model>(new Model());
  m->cfg_ = cfg;
  const ModelConfig& c = m->cfg_;
  if (c.d_model <= 0 || c.n_layer <= 0 || c.vocab <= 0 || c.d_state <= 0 || c.d_conv <= 0 || c.d_inner <= 0 ||
      c.d_conv > 8)
    throw LoadError("invalid model configuration", "", "config");
  if (c.arch == Arch::Mamba1 && c.dt_rank <= 0) throw LoadError("invalid dt_rank", "", "time_step_rank");
  if (c.arch == Arch::Mamba2 && (c.headdim <= 0 || c.nheads * c.headdim != c.d_inner || c.ngroups <= 0 ||
                                 c.nheads % c.ngroups != 0 || c.d_inner % c.ngroups != 0))
    throw LoadError("invalid Mamba-2 head / group configuration", "", "head_dim");
  if (c.hadamard_residual && !hadamard_size_supported(c.d_model))
    throw LoadError("quantization_config.residual_rotation \"online\" needs d_model = 2^k, 12·2^k or 40·2^k, got " +
                        std::to_string(c.d_model), "", "quantization_config.residual_rotation");
  if (c.hadamard_out && !hadamard_size_supported(c.d_inner))
    throw LoadError("quantization_config.hadamard needs d_inner = 2^k, 12·2^k or 40·2^k, got " +
                        std::to_string(c.d_inner), "", "quantization_config.hadamard");

  for (const auto& f : files) {
    try {
      m->files_.push_back(std::make_unique<MappedFile>(f));
    } catch (const std::exception& e) {
      throw LoadError(e.what(), f, "");
    }
  }
  TensorTable tt(m->files_, tensors, m->scale_store_);
  using Q = TensorTable::Quant;
  const int64_t d = c.d_model, di = c.d_inner, N = c.d_state, K = c.d_conv, V = c.vocab;
  const int64_t C = c.conv_dim(), P = c.in_proj_dim();

  m->embedding_ = tt.get("backbone.embeddings.weight", {{V, d}}, true, Q::Embedding);
  m->norm_f_ = tt.get("backbone.norm_f.weight", {{d}});
  if (tt.has("lm_head.weight")) {
    m->lm_head_ = tt.get("lm_head.weight", {{V, d}}, true, Q::Any);
  } else if (dtype_info(m->embedding_.dtype).linear == LinearKernel::Quamba) {
    // A quantized embedding as the tied head: its input scale (int8 head
    // inputs) is backbone.embeddings.input_scale; an i8 head needs one.
    m->lm_head_ = m->embedding_;
    const std::string is = "backbone.embeddings.input_scale";
    if (tt.has(is)) {
      std::vector<float> a = tt.get_f32_any(is, {{}, {1}});
      if (!(a[0] > 0.0f) || !std::isfinite(a[0]))
        throw LoadError("tensor " + is + " is " + std::to_string(a[0]) + "; it must be finite and > 0", tt.path_of(is), is);
      m->lm_head_.act_scale = a[0];
    } else if (m->embedding_.dtype == DType::I8) {
      throw LoadError("the embedding is i8 and the head is tied to it: the head needs " + is +
                          " (or its own lm_head.weight)", tt.path_of("backbone.embeddings.weight"), is);
    }
  } else {
    m->lm_head_ = m->embedding_;  // tied
  }

  m->layers_.resize((size_t)c.n_layer);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    LayerWeights& L = m->layers_[(size_t)i];
    const std::string pre = "backbone.layers." + std::to_string(i) + ".";
    const std::string mx = pre + "mixer.";
    L.norm = tt.get(pre + "norm.weight", {{d}});
    L.in_proj = tt.get(mx + "in_proj.weight", {{P, d}}, true, Q::Any);
    L.in_proj_bias = tt.get(mx + "in_proj.bias", {{P}}, false);
    L.conv_w = m->as_f32(tt.get(mx + "conv1d.weight", {{C, 1, K}, {C, K}}));
    L.conv_b = m->as_f32(tt.get(mx + "conv1d.bias", {{C}}, false));
    L.out_proj = tt.get(mx + "out_proj.weight", {{d, di}}, true, Q::Any);
    L.out_proj_bias = tt.get(mx + "out_proj.bias", {{d}}, false);
    if (c.arch == Arch::Mamba1) {
      const int64_t R = c.dt_rank;
      L.x_proj = tt.get(mx + "x_proj.weight", {{R + 2 * N, di}}, true, Q::Any);
      L.dt_proj = tt.get(mx + "dt_proj.weight", {{di, R}}, true, Q::Any);
      L.dt_bias = tt.get_f32(mx + "dt_proj.bias", {di});
      L.A = load_A(tt, mx, {di, N});
      L.D = tt.get_f32(mx + "D", {di});
    } else {
      const int64_t H = c.nheads;
      L.dt_bias = tt.get_f32(mx + "dt_bias", {H});
      L.A = load_A(tt, mx, {H});
      L.D = tt.get_f32(mx + "D", {H});
      L.gated_norm = tt.get(mx + "norm.weight", {{di}});
    }
    if (c.ssm_int8) {
      L.conv_in_scale = tt.get_act_scales(mx + "conv1d.input_scale", C);
      if (c.arch == Arch::Mamba2) {
        L.conv_out_scale = tt.get_act_scales(mx + "conv1d.output_scale", C);
      } else {
        // The conv output is x_proj's int8 input.
        if (dtype_info(L.x_proj.dtype).linear != LinearKernel::Quamba || !(L.x_proj.act_scale > 0.0f))
          throw LoadError("int8 SSM activations need x_proj with int8 inputs (an i8 / i4 weight with input_scale)",
                          tt.path_of(mx + "x_proj.weight"), mx + "x_proj.input_scale");
        L.conv_out_scale.assign((size_t)C, L.x_proj.act_scale);
        L.B_scale = tt.get_act_scales(mx + "B_scale", N);
        L.C_scale = tt.get_act_scales(mx + "C_scale", N);
      }
    }
  }
  m->weight_bytes_ = tt.used_bytes();
  m->decode_bytes_ = m->weight_bytes_;
  if (m->lm_head_.data != m->embedding_.data)
    m->decode_bytes_ -= (uint64_t)V * (uint64_t)dtype_row_bytes(m->embedding_.dtype, d);

  // State layout per sequence: for each layer, conv [C, K-1] then ssm.
  const int64_t ssm = c.arch == Arch::Mamba1 ? di * N : c.nheads * c.headdim * N;
  int64_t off = 0;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    m->conv_off_.push_back(off);
    off += C * (K - 1);
    m->ssm_off_.push_back(off);
    off += ssm;
  }
  m->state_floats_ = off;
  return m;
}

Weight Model::as_f32(const Weight& w) {
  if (!w.data || w.dtype == DType::F32) return w;
  const int64_t n = w.rows * w.cols;
  std::vector<float> v((size_t)n);
  for (int64_t i = 0; i < n; ++i) v[(size_t)i] = load_as_f32(w.data, w.dtype, i);
  scale_store_.push_back(std::move(v));
  Weight f = w;
  f.data = scale_store_.back().data();
  f.dtype = DType::F32;
  return f;
}

std::vector<std::pair<std::string, const Weight*>> Model::linear_layers() const {
  std::vector<std::pair<std::string, const Weight*>> out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerWeights& L = layers_[i];
    const std::string mx = "backbone.layers." + std::to_string(i) + ".mixer.";
    out.emplace_back(mx + "in_proj", &L.in_proj);
    if (cfg_.arch == Arch::Mamba1) {
      out.emplace_back(mx + "x_proj", &L.x_proj);
      out.emplace_back(mx + "dt_proj", &L.dt_proj);
    }
    out.emplace_back(mx + "out_proj", &L.out_proj);
  }
  out.emplace_back("lm_head", &lm_head_);
  return out;
}

int32_t Model::alloc_slot() {
  for (size_t i = 0; i < slot_used_.size(); ++i) {
    if (!slot_used_[i]) {
      slot_used_[i] = 1;
      std::fill_n(slot_state((int32_t)i), state_floats_, 0.0f);
      return (int32_t)i;
    }
  }
  size_t old = slot_used_.size(), grown = std::max<size_t>(4, old * 2);
  if (grown > (size_t)INT32_MAX) throw std::runtime_error("too many sequences");
  pool_.resize(grown * (size_t)state_floats_, 0.0f);  // keeps existing slots' states
  slot_used_.resize(grown, 0);
  slot_used_[old] = 1;
  return (int32_t)old;
}

void Model::free_slot(int32_t slot) {
  if (slot_live(slot)) slot_used_[(size_t)slot] = 0;
}

bool Model::slot_live(int32_t slot) const {
  return slot >= 0 && (size_t)slot < slot_used_.size() && slot_used_[(size_t)slot];
}

int64_t Model::live_slots() const {
  return std::count(slot_used_.begin(), slot_used_.end(), (uint8_t)1);
}

}  // namespace nm::engine
