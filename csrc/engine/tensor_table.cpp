#include "engine/tensor_table.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <sstream>

#include "engine/backend.h"
#include "kernels/ggml_panels.h"
#include "kernels/qlinear.h"

namespace nm::engine {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

}  // namespace

TensorTable::TensorTable(Backend& backend, const std::vector<std::unique_ptr<MappedFile>>& files,
                         const std::vector<TensorSource>& tensors, std::vector<std::vector<float>>& scale_store,
                         std::vector<AlignedBytes>& packed_store)
    : backend_(backend), files_(files), scale_store_(scale_store), packed_store_(packed_store) {
  for (const auto& t : tensors) by_name_[t.name] = &t;
}

Weight TensorTable::get(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required,
                        Quant quant) {
  const Weight w = get_host(name, std::move(shapes), required, quant);
  return place(quant == Quant::Any ? pack(w) : w);
}

Weight TensorTable::place(const Weight& host) {
  if (!host.data) return host;
  Weight w = host;
  const bool panels = host.layout == WeightLayout::Panels;
  const int64_t bytes = dtype_layout_bytes(host.dtype, host.layout, host.rows, host.cols);
  w.data = backend_.place(host.data, (size_t)bytes);
  if (host.scales) {
    const int64_t n = panels ? dtype_panel_scale_count(host.dtype, host.rows, host.cols)
                             : dtype_scale_count(host.dtype, host.rows, host.cols);
    w.scales = static_cast<const float*>(backend_.place(host.scales, (size_t)n * sizeof(float)));
  }
  return w;
}

Params TensorTable::params(std::vector<float> host) {
  if (host.empty()) return Params{};
  scale_store_.push_back(std::move(host));
  const std::vector<float>& v = scale_store_.back();
  return Params{static_cast<const float*>(backend_.place(v.data(), v.size() * sizeof(float))), (int64_t)v.size()};
}

Weight TensorTable::get_host(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required,
                             Quant quant) {
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

bool TensorTable::packs(const Weight& w) const {
  if (!backend_.packs_weights() || !w.data || w.layout != WeightLayout::Rows || !dtype_info(w.dtype).panels) return false;
  if (dtype_info(w.dtype).scales != ScaleLayout::InBlock) return w.act_scale > 0.0f;
  return block_int8_inputs_ && ggml_packable(w.dtype, w.data, dtype_row_bytes(w.dtype, w.cols), w.rows, w.cols);
}

Weight TensorTable::pack(const Weight& w) {
  if (!backend_.packs_weights() || !w.data || w.layout != WeightLayout::Rows || !dtype_info(w.dtype).panels) return w;
  const bool block = dtype_info(w.dtype).scales == ScaleLayout::InBlock;  // Q8_0 / Q4_0
  if (block ? !block_int8_inputs_ : !(w.act_scale > 0.0f)) return w;
  const int64_t bytes = dtype_panel_bytes(w.dtype, w.rows, w.cols);
  const int64_t nscales = dtype_panel_scale_count(w.dtype, w.rows, w.cols);
  AlignedBytes buf(static_cast<uint8_t*>(::operator new[]((size_t)std::max<int64_t>(bytes, 64), std::align_val_t(64))));
  std::vector<float> scales((size_t)nscales);
  const int64_t stride = dtype_row_bytes(w.dtype, w.cols), prb = dtype_panel_row_bytes(w.dtype, w.cols);
  const int64_t G = dtype_info(w.dtype).scales == ScaleLayout::PerGroup ? dtype_scale_count(w.dtype, 1, w.cols) : 1;
  const MappedFile* file = nullptr;
  for (const auto& f : files_)
    if (f->contains(w.data, (uint64_t)(w.rows * stride))) file = f.get();
  // Slices of whole panels of about 4 MB, each released once packed: the
  // original and its copy are resident together for one slice only.
  const int64_t slice = std::max<int64_t>(1, ((int64_t)4 << 20) / std::max<int64_t>(1, kPanelRows * stride)) * kPanelRows;
  for (int64_t r0 = 0; r0 < w.rows; r0 += slice) {
    const int64_t r1 = std::min(w.rows, r0 + slice);
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + r0 * stride;
    // (a Q8_0 weight holding q = -128 stays in rows: pages already released fault back in from the file)
    if (block && !ggml_packable(w.dtype, src, stride, r1 - r0, w.cols)) return w;
    qweight_pack_panels(src, w.dtype, stride, w.scales ? w.scales + r0 * G : nullptr, r1 - r0, w.cols,
                        buf.get() + r0 * prb, scales.empty() ? nullptr : scales.data() + r0 * G);
    if (file) file->release(w.data, (uint64_t)(r1 * stride));  // from the start: no page left between slices
  }
  Weight p = w;
  p.data = buf.get();
  p.layout = WeightLayout::Panels;
  packed_store_.push_back(std::move(buf));
  if (!scales.empty()) {
    scale_store_.push_back(std::move(scales));
    p.scales = scale_store_.back().data();
  }
  return p;
}

void TensorTable::load_scales(const std::string& name, Weight& w, bool input_scale) {
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

std::string TensorTable::path_of(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end() || it->second->file < 0 || (size_t)it->second->file >= files_.size())
    return files_.empty() ? "" : files_[0]->path();
  return files_[it->second->file]->path();
}

std::vector<float> TensorTable::get_f32(const std::string& name, std::vector<int64_t> shape) {
  return get_f32_any(name, {std::move(shape)});
}

std::vector<float> TensorTable::get_f32_any(const std::string& name, std::vector<std::vector<int64_t>> shapes) {
  Weight w = get_host(name, std::move(shapes));
  int64_t n = w.rows * w.cols;
  std::vector<float> out((size_t)n);
  for (int64_t i = 0; i < n; ++i) out[(size_t)i] = load_as_f32(w.data, w.dtype, i);
  return out;
}

std::vector<float> TensorTable::get_act_scales(const std::string& name, int64_t n) {
  std::vector<float> s = get_f32_any(name, {{}, {1}, {n}});
  for (size_t i = 0; i < s.size(); ++i)
    if (!(s[i] > 0.0f) || !std::isfinite(s[i]))
      throw LoadError("tensor " + name + " holds " + std::to_string(s[i]) + " at index " + std::to_string(i) +
                          "; activation scales must be finite and > 0", path_of(name), name);
  if ((int64_t)s.size() != n) s.assign((size_t)n, s[0]);
  return s;
}

Weight TensorTable::get_as_f32(const std::string& name, std::vector<std::vector<int64_t>> shapes, bool required) {
  const Weight w = get_host(name, std::move(shapes), required);
  if (!w.data || w.dtype == DType::F32) return place(w);
  const int64_t n = w.rows * w.cols;
  std::vector<float> v((size_t)n);
  for (int64_t i = 0; i < n; ++i) v[(size_t)i] = load_as_f32(w.data, w.dtype, i);
  scale_store_.push_back(std::move(v));
  Weight f = w;
  f.data = scale_store_.back().data();
  f.dtype = DType::F32;
  return place(f);
}

std::vector<float> load_A(TensorTable& tt, const std::string& mixer, std::vector<int64_t> shape) {
  if (tt.has(mixer + "A")) return tt.get_f32(mixer + "A", shape);
  std::vector<float> a = tt.get_f32(mixer + "A_log", shape);
  for (float& v : a) v = -std::exp(v);
  return a;
}

}  // namespace nm::engine
