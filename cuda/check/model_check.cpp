// Whole-model cases of the GPU check (model_check.h). Each manifest names a
// checkpoint's files and its tensor table as the JavaScript loaders found
// them, the engine's load arguments, a prompt, the greedy continuation the
// CPU engine chose and the CPU engine's logits (scripts/write-gpu-check-models.js
// documents the format). The model runs on the given backend: the prompt's
// prefill with the logits of every position, then the decode steps batched
// with two other sequences (slots allocated around it, with their own
// prompts and tokens), so that a mixed-up slot or a stale staged index shows.
#include "model_check.h"

#include "check_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "engine/forward.h"
#include "engine/load_args.h"
#include "engine/model.h"

namespace nm::check {

namespace {

namespace fs = std::filesystem;

struct Manifest {
  std::string name, file;
  double tolerance = 0.0;
  std::map<std::string, std::string> keys;
  std::vector<std::pair<std::string, std::string>> layers;
  std::vector<std::string> files;
  std::vector<engine::TensorSource> tensors;
  std::vector<int32_t> prompt, decode;
  std::string logits;
};

[[noreturn]] void fail(const Manifest& m, const std::string& what) {
  throw std::runtime_error(m.file + ": " + what);
}

DType parse_dtype(const Manifest& m, const std::string& s) {
  DType t;
  if (!dtype_from_name(s.c_str(), &t)) fail(m, "unknown dtype '" + s + "'");
  return t;
}

Manifest read_manifest(const fs::path& path) {
  Manifest m;
  m.file = path.string();
  std::ifstream in(path);
  if (!in) fail(m, "cannot be read");
  std::string line, head;
  if (!std::getline(in, line) || line != "node-mamba-gpu-check-model 1") fail(m, "not a version 1 model manifest");
  const fs::path dir = path.parent_path();
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    if (!(ls >> kind)) continue;
    if (kind == "name") ls >> m.name;
    else if (kind == "tolerance") ls >> m.tolerance;
    else if (kind == "key") {
      std::string k, v;
      ls >> k >> v;
      m.keys[k] = v;
    } else if (kind == "layer") {
      std::string mixer, ffn;
      ls >> mixer >> ffn;
      m.layers.emplace_back(mixer, ffn);
    } else if (kind == "file") {
      std::string f;
      ls >> f;
      m.files.push_back((dir / f).string());
    } else if (kind == "tensor") {
      engine::TensorSource t;
      std::string dtype, shape;
      if (!(ls >> t.name >> t.file >> t.offset >> t.nbytes >> dtype >> shape)) fail(m, "bad tensor line: " + line);
      t.dtype = parse_dtype(m, dtype);
      if (shape != "-") {
        std::istringstream ss(shape);
        std::string d;
        while (std::getline(ss, d, ',')) t.shape.push_back(std::stoll(d));
      }
      m.tensors.push_back(std::move(t));
    } else if (kind == "prompt" || kind == "decode") {
      int32_t id;
      while (ls >> id) (kind == "prompt" ? m.prompt : m.decode).push_back(id);
    } else if (kind == "logits") {
      std::string f;
      ls >> f;
      m.logits = (dir / f).string();
    } else {
      fail(m, "unknown line kind '" + kind + "'");
    }
  }
  if (m.name.empty() || m.prompt.empty() || m.logits.empty() || !(m.tolerance > 0.0)) fail(m, "incomplete manifest");
  return m;
}

}  // namespace

// Keys as the engine's load arguments (engine/load_args.h); errors name `what`.
class KeyArgs final : public engine::LoadArgs {
 public:
  KeyArgs(const std::map<std::string, std::string>& keys, const std::vector<std::pair<std::string, std::string>>& layers,
          const std::string& what)
      : keys_(keys), layers_(layers), what_(what) {}
  bool has(const char* key) const override { return keys_.count(key) > 0; }
  int64_t integer(const char* key, int64_t min, int64_t max) const override {
    const std::string& v = keys_.at(key);
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (*end) type_error(key, "must be an integer, got '" + v + "'");
    if (x < min || x > max) range_error(key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return x;
  }
  double number(const char* key) const override {
    const std::string& v = keys_.at(key);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (*end) type_error(key, "must be a number, got '" + v + "'");
    return x;
  }
  bool boolean(const char* key) const override {
    const std::string& v = keys_.at(key);
    if (v != "true" && v != "false") type_error(key, "must be true or false, got '" + v + "'");
    return v == "true";
  }
  std::string text(const char* key) const override { return keys_.at(key); }
  bool layers(std::vector<std::pair<std::string, std::string>>& out) const override {
    if (layers_.empty()) return false;
    out = layers_;
    return true;
  }
  [[noreturn]] void type_error(const std::string& key, const std::string& what) const override {
    throw std::runtime_error(what_ + ": key " + key + " " + what);
  }
  [[noreturn]] void range_error(const std::string& key, const std::string& what) const override {
    throw std::runtime_error(what_ + ": key " + key + " " + what);
  }

 private:
  const std::map<std::string, std::string>& keys_;
  const std::vector<std::pair<std::string, std::string>>& layers_;
  std::string what_;
};

engine::ModelConfig config_from_keys(const std::map<std::string, std::string>& keys,
                                     const std::vector<std::pair<std::string, std::string>>& layers,
                                     const std::string& what) {
  return engine::parse_model_config(KeyArgs(keys, layers, what));
}

namespace {

struct Errors {
  double prefill = 0.0, decode = 0.0;
};

Errors run_case(const Manifest& m, engine::BackendKind kind) {
  const engine::ModelConfig cfg = config_from_keys(m.keys, m.layers, m.file);
  const int64_t V = cfg.vocab, P = (int64_t)m.prompt.size(), D = (int64_t)m.decode.size();
  std::vector<float> want((size_t)((P + D) * V));
  {
    std::ifstream in(m.logits, std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(want.data()), (std::streamsize)(want.size() * sizeof(float))))
      fail(m, "the logits file " + m.logits + " holds fewer than " + std::to_string(want.size()) + " floats");
  }
  auto model = engine::Model::load(cfg, m.files, m.tensors, kind);
  // The sequence under test sits between two others.
  const int32_t before = model->alloc_slot(), slot = model->alloc_slot(), after = model->alloc_slot();
  std::vector<int32_t> other(m.prompt.begin(), m.prompt.begin() + std::max<int64_t>(1, P / 2));
  std::reverse(other.begin(), other.end());
  engine::prefill(*model, before, other.data(), (int64_t)other.size(), engine::LogitsMode::None, nullptr);
  engine::prefill(*model, after, m.prompt.data(), 1, engine::LogitsMode::None, nullptr);
  std::vector<float> got((size_t)(P * V));
  engine::prefill(*model, slot, m.prompt.data(), P, engine::LogitsMode::All, got.data());
  Errors e;
  e.prefill = rel_error(std::vector<float>(want.begin(), want.begin() + P * V), got);
  std::vector<float> step((size_t)(3 * V));
  for (int64_t i = 0; i < D; ++i) {
    const int32_t slots[3] = {after, slot, before};
    const int32_t tokens[3] = {(int32_t)((i * 7) % V), m.decode[(size_t)i], (int32_t)((i * 13 + 5) % V)};
    engine::decode_step(*model, slots, tokens, 3, step.data());
    const auto row = want.begin() + (P + i) * V;
    e.decode = std::max(e.decode, rel_error(std::vector<float>(row, row + V), std::vector<float>(step.begin() + V, step.begin() + 2 * V)));
  }
  return e;
}

}  // namespace

ModelCheckTotals run_model_checks(const std::string& dir, engine::BackendKind kind) {
  ModelCheckTotals t;
  std::vector<fs::path> manifests;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (fs::exists(e.path() / "manifest.txt")) manifests.push_back(e.path() / "manifest.txt");
  std::sort(manifests.begin(), manifests.end());
  if (manifests.empty()) {
    ++t.cases;
    ++t.failed;
    std::printf("FAIL model                    no manifests under %s (run from the repository root)\n", dir.c_str());
    return t;
  }
  for (const fs::path& p : manifests) {
    std::string name = p.parent_path().filename().string();
    if (skipped("models") || skipped(name)) continue;
    ++t.cases;
    try {
      const Manifest m = read_manifest(p);
      name = m.name;
      const Errors e = run_case(m, kind);
      const bool ok = e.prefill <= m.tolerance && e.decode <= m.tolerance;
      if (!ok) ++t.failed;
      else t.worst = std::max({t.worst, e.prefill, e.decode});
      std::printf("%s model                    %s: prefill %zu tokens %.2e, decode %zu steps (3 sequences) %.2e "
                  "(max |Δ| / max |logit|, tolerance %.0e)\n",
                  ok ? "ok  " : "FAIL", name.c_str(), m.prompt.size(), e.prefill, m.decode.size(), e.decode, m.tolerance);
    } catch (const std::exception& ex) {
      ++t.failed;
      std::printf("FAIL model                    %s: %s\n", name.c_str(), ex.what());
    }
  }
  return t;
}

}  // namespace nm::check
