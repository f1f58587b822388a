// Whole-model timings on the CUDA backend (model_bench.h): a Mamba-1 model of
// random weights in the HF layout (bf16, f16, or W4A8 as quantize() writes
// it), written to a temporary file and loaded as the addon loads a
// checkpoint, at the benchmark's mamba-130m shape and at a 1.4B shape (d_model 2048, 48 layers, as state-spaces/mamba-1.4b).
// Prefill of 2048 tokens (median of 3) and greedy-free decode at batch 1
// (the same token every step: the timing does not depend on it), 64 steps
// after 8 warm-up steps, with the decode steps as CUDA graphs and (130m)
// without (NODE_MAMBA_DECODE_GRAPHS=0).
#include "model_bench.h"

#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "check_util.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "model_check.h"

namespace nm::check {

namespace {

namespace fs = std::filesystem;

struct Shape {
  const char* name;
  int64_t d, layers, vocab;
  bool eager_too;  // also time decode without graphs
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The weight formats timed: bf16 (bf16-rounded GEMM inputs), f16 (exact
// float inputs), and Quamba's W4A8 (in_proj, x_proj, out_proj int4 in groups
// of 128 with int8 inputs, dt_proj int8, int8 SSM inputs, Hadamard rotations;
// the embedding and the small tensors f16), as quantize() writes them.
enum class Format { BF16, F16, W4A8 };

const char* format_name(Format f) { return f == Format::BF16 ? "bf16" : f == Format::F16 ? "f16" : "w4a8"; }

// Writes the checkpoint; returns its tensor table and the bytes one decode
// step reads (every matrix with its scales but the embedding's unread rows;
// tied head). Values are random at sensible scales: the timings do not
// depend on them.
std::vector<engine::TensorSource> write_model(const std::string& path, const Shape& s, Format fmt,
                                              uint64_t* decode_bytes) {
  const int64_t d = s.d, di = 2 * d, N = 16, R = (d + 15) / 16, V = s.vocab;
  std::vector<engine::TensorSource> t;
  uint64_t off = 0;
  std::ofstream out(path, std::ios::binary);
  Rng r(1234);
  std::vector<uint8_t> buf;
  *decode_bytes = 0;
  const DType small = fmt == Format::BF16 ? DType::BF16 : DType::F16;
  auto put = [&](const std::string& name, std::vector<int64_t> shape, DType dt, bool matrix) {
    const uint64_t n = buf.size();
    out.write(reinterpret_cast<const char*>(buf.data()), (std::streamsize)n);
    engine::TensorSource ts;
    ts.name = name, ts.file = 0, ts.offset = off, ts.nbytes = n, ts.dtype = dt, ts.shape = std::move(shape);
    t.push_back(ts);
    off += n;
    if (matrix) *decode_bytes += n;
  };
  // A float tensor of `shape` in `dt` (f32, f16 or bf16); gen(i) gives element i.
  auto add_as = [&](const std::string& name, std::vector<int64_t> shape, DType dt, auto gen, bool matrix) {
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    const int64_t es = dt == DType::F32 ? 4 : 2;
    buf.resize((size_t)(n * es));
    for (int64_t i = 0; i < n; ++i) {
      const float v = gen(i);
      if (dt == DType::F32) std::memcpy(buf.data() + i * 4, &v, 4);
      else {
        const uint16_t h = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
        std::memcpy(buf.data() + i * 2, &h, 2);
      }
    }
    put(name, std::move(shape), dt, matrix);
  };
  auto add = [&](const std::string& name, std::vector<int64_t> shape, auto gen, bool matrix) {
    add_as(name, std::move(shape), small, gen, matrix);
  };
  auto uni = [&r](float a) { return [&r, a](int64_t) { return r.uniform(-a, a); }; };
  // A linear layer [rows, cols]: float in the float formats; in W4A8 int4
  // (int8: dt_proj) with per-row (group) scales and a static input scale.
  auto linear = [&](const std::string& base, int64_t rows, int64_t cols, bool int8) {
    if (fmt != Format::W4A8) return add(base + ".weight", {rows, cols}, uni(1.0f / std::sqrt((float)cols)), true);
    const DType dt = int8 ? DType::I8 : DType::I4;
    buf.resize((size_t)(rows * dtype_row_bytes(dt, cols)));
    for (auto& b : buf) b = (uint8_t)(r.next() >> 24);
    put(base + ".weight", {rows, cols}, dt, true);
    const int64_t G = dtype_scale_count(dt, rows, cols) / rows;
    const float ws = (int8 ? 1.0f / 64.0f : 1.0f / 4.0f) / std::sqrt((float)cols);
    add_as(base + ".weight_scale", int8 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, G}, DType::F32,
           [ws](int64_t) { return ws; }, true);
    add_as(base + ".input_scale", {}, DType::F32, [](int64_t) { return 0.05f; }, false);
  };
  add("backbone.embeddings.weight", {V, d}, uni(0.02f), true);  // the tied head reads all of it
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    add(p + "norm.weight", {d}, [](int64_t) { return 1.0f; }, false);
    linear(p + "mixer.in_proj", 2 * di, d, false);
    add(p + "mixer.conv1d.weight", {di, 1, 4}, uni(0.5f), false);
    add(p + "mixer.conv1d.bias", {di}, uni(0.1f), false);
    linear(p + "mixer.x_proj", R + 2 * N, di, false);
    linear(p + "mixer.dt_proj", di, R, true);
    add(p + "mixer.dt_proj.bias", {di}, [&r](int64_t) { return std::log(std::expm1(r.uniform(0.001f, 0.1f))); }, false);
    add(p + "mixer.A_log", {di, N}, [N](int64_t i) { return std::log((float)(i % N + 1)); }, false);
    add(p + "mixer.D", {di}, [](int64_t) { return 1.0f; }, false);
    linear(p + "mixer.out_proj", d, di, false);
    if (fmt == Format::W4A8) {
      for (const char* sc : {"mixer.conv1d.input_scale", "mixer.B_scale", "mixer.C_scale"})
        add_as(p + sc, {}, DType::F32, [](int64_t) { return 0.05f; }, false);
    }
  }
  add("backbone.norm_f.weight", {d}, [](int64_t) { return 1.0f; }, false);
  if (!out) throw std::runtime_error("cannot write " + path);
  return t;
}

engine::ModelConfig config_for(const Shape& s, Format fmt) {
  const int64_t d = s.d;
  const char* q = fmt == Format::W4A8 ? "true" : "false";
  std::map<std::string, std::string> k = {
      {"arch", "mamba"}, {"dModel", std::to_string(d)}, {"nLayer", std::to_string(s.layers)},
      {"vocabSize", std::to_string(s.vocab)}, {"dState", "16"}, {"dConv", "4"}, {"dInner", std::to_string(2 * d)},
      {"dtRank", std::to_string((d + 15) / 16)}, {"headdim", "0"}, {"nheads", "0"}, {"ngroups", "1"},
      {"normEps", "0.00001"}, {"dtMin", "0"}, {"roundActivations", "true"}, {"hadamardOut", q},
      {"hadamardResidual", q}, {"ssmInt8", q}, {"mambaInnerNorms", "false"},
      {"gatedNormGroupSize", std::to_string(2 * d)}, {"nHeads", "0"}, {"nKvHeads", "0"}, {"headDim", "0"},
      {"attnScale", "0"}, {"ropeTheta", "0"}, {"ropeDim", "0"}, {"ropeInterleaved", "false"}, {"mlpDim", "0"},
      {"moeExperts", "0"}, {"moeTopK", "0"}, {"moeDim", "0"}, {"moeRouter", "softmax_topk"}, {"moeSharedDim", "0"},
      {"embeddingMultiplier", "1"}, {"residualMultiplier", "1"}, {"logitsScaling", "1"}, {"contextSize", "4096"},
      {"kvDtype", "f32"}};
  std::vector<std::pair<std::string, std::string>> layers((size_t)s.layers, {"mamba1", "none"});
  return config_from_keys(k, layers, std::string("model bench ") + s.name);
}

struct Timing {
  double prefill_ms = 0, decode_tok_s = 0;
  int64_t launches = 0;  // per decode step, of its graph (0: eager)
};

// pdl: the GEMVs launched programmatically (cuda/pdl.cuh), on for the
// whole run (load, prefill, the graphs' capture and the steps).
Timing time_model(const engine::ModelConfig& cfg, const std::string& file,
                  const std::vector<engine::TensorSource>& tensors, bool graphs,
                  engine::BackendKind kind = engine::BackendKind::Cuda, bool pdl = false) {
  struct PdlScope {
    explicit PdlScope(bool on) {
      if (on) setenv("NODE_MAMBA_CUDA_PDL", "1", 1);
      else unsetenv("NODE_MAMBA_CUDA_PDL");
    }
    ~PdlScope() { unsetenv("NODE_MAMBA_CUDA_PDL"); }
  } pdl_scope(pdl);
  if (graphs) unsetenv("NODE_MAMBA_DECODE_GRAPHS");
  else setenv("NODE_MAMBA_DECODE_GRAPHS", "0", 1);
  auto model = engine::Model::load(cfg, {file}, tensors, kind);
  unsetenv("NODE_MAMBA_DECODE_GRAPHS");
  const int64_t V = cfg.vocab, T = 2048;
  std::vector<int32_t> prompt((size_t)T);
  for (int64_t i = 0; i < T; ++i) prompt[(size_t)i] = (int32_t)((i * 7919 + 13) % V);
  std::vector<float> logits((size_t)V);
  Timing t;
  std::vector<double> ms;
  for (int rep = 0; rep < 4; ++rep) {  // the first is a warm-up
    const int32_t slot = model->alloc_slot();
    const double t0 = now_s();
    engine::prefill(*model, slot, prompt.data(), rep == 0 ? 64 : T, engine::LogitsMode::Last, logits.data());
    if (rep > 0) ms.push_back((now_s() - t0) * 1e3);
    model->free_slot(slot);
  }
  std::sort(ms.begin(), ms.end());
  t.prefill_ms = ms[ms.size() / 2];
  const int32_t slot = model->alloc_slot();
  engine::prefill(*model, slot, prompt.data(), 16, engine::LogitsMode::Last, logits.data());
  const int32_t token = 17;
  for (int i = 0; i < 8; ++i) engine::decode_step(*model, &slot, &token, 1, logits.data());
  const int steps = 64;
  // NM_BENCH_PROFILE=1: the profiler collects the timed decode steps alone
  // (ncu --profile-from-start off).
  const bool profile = std::getenv("NM_BENCH_PROFILE") != nullptr;
  if (profile) cudaProfilerStart();
  const double t0 = now_s();
  for (int i = 0; i < steps; ++i) engine::decode_step(*model, &slot, &token, 1, logits.data());
  t.decode_tok_s = steps / (now_s() - t0);
  if (profile) cudaProfilerStop();
  t.launches = model->backend().graph_stats().launches_per_step;
  model->free_slot(slot);
  return t;
}

}  // namespace

bool model_bench_smoke() {
  const Shape s{"smoke (d 64, 2 layers)", 64, 2, 512, false};
  const std::string file = (fs::temp_directory_path() / ("nm-gpu-bench-smoke-" + std::to_string(getpid()) + ".bin")).string();
  bool ok = true;
  try {
    uint64_t decode_bytes = 0;
    for (Format f : {Format::BF16, Format::F16, Format::W4A8}) {
      const auto tensors = write_model(file, s, f, &decode_bytes);
      const Timing t = time_model(config_for(s, f), file, tensors, true, engine::BackendKind::DeviceEmulation);
      const bool good = t.prefill_ms > 0 && t.decode_tok_s > 0;
      ok = ok && good;
      std::printf("%s model bench smoke       the timed checkpoint (%s, %s) loads and runs on the device-emulation "
                  "backend: prefill 2048 %.1f ms, decode %.1f tok/s, %lld operations per decode step\n",
                  good ? "ok  " : "FAIL", s.name, format_name(f), t.prefill_ms, t.decode_tok_s, (long long)t.launches);
    }
  } catch (const std::exception& e) {
    std::printf("FAIL model bench smoke       %s\n", e.what());
    ok = false;
  }
  std::error_code ec;
  fs::remove(file, ec);
  return ok;
}

bool run_model_benchmarks(double copy_gbs) {
  if (skipped("model-bench")) return true;
  struct Run {
    Shape shape;
    Format fmt;
  };
  const Shape m130{"mamba-130m (d 768, 24 layers)", 768, 24, 50280, true};
  const Shape b14{"1.4B (d 2048, 48 layers)", 2048, 48, 50280, false};
  const Run runs[] = {{m130, Format::BF16}, {m130, Format::F16}, {m130, Format::W4A8},
                      {b14, Format::BF16},  {b14, Format::F16},  {b14, Format::W4A8}};
  std::printf("\n== whole models on the CUDA backend: Mamba-1, random weights (bf16 with bf16-rounded GEMM inputs; f16; "
              "W4A8 with int8 SSM inputs and Hadamard rotations) ==\n");
  std::printf("%-32s %-6s %-22s %12s %12s %10s %8s %8s\n", "model", "format", "run", "prefill 2048", "tok/s", "GB/s",
              "of copy", "kernels");
  bool ok = true;
  std::map<std::string, double> f16_tok_s;
  for (const Run& run : runs) {
    const Shape& s = run.shape;
    // --skip "model-bench mamba-130m" leaves out a shape, "model-bench 1.4B w4a8" one run.
    const std::string shape_name(s.name);
    if (skipped("model-bench " + shape_name.substr(0, shape_name.find(' ')) + " " + format_name(run.fmt))) continue;
    const std::string file =
        (fs::temp_directory_path() / ("nm-gpu-bench-" + std::to_string(getpid()) + ".bin")).string();
    try {
      uint64_t decode_bytes = 0;
      const auto tensors = write_model(file, s, run.fmt, &decode_bytes);
      const engine::ModelConfig cfg = config_for(s, run.fmt);
      // g: 2 graphs with programmatic GEMV launches (cuda/pdl.cuh), 1 graphs, 0 eager.
      const bool eager = s.eager_too && run.fmt == Format::BF16;
      double plain_tok_s = 0;
      std::vector<int> variants = {1};
      if (eager) variants.push_back(0);
      variants.push_back(2);
      for (int g : variants) {
        const Timing t = time_model(cfg, file, tensors, g >= 1, engine::BackendKind::Cuda, g == 2);
        const double gbs = t.decode_tok_s * (double)decode_bytes / 1e9;
        std::printf("%-32s %-6s %-22s %9.1f ms %12.1f %10.1f %7.1f%% %8lld", s.name, format_name(run.fmt),
                    g == 2 ? "decode b1, graphs, PDL" : g ? "decode b1, graphs" : "decode b1, eager", t.prefill_ms,
                    t.decode_tok_s, gbs, copy_gbs > 0 ? 100.0 * gbs / copy_gbs : 0.0, (long long)t.launches);
        if (g == 1) plain_tok_s = t.decode_tok_s;
        if (g == 1 && run.fmt == Format::F16) f16_tok_s[s.name] = t.decode_tok_s;
        if (g == 1 && run.fmt == Format::W4A8 && f16_tok_s.count(s.name))
          std::printf("  decode %.2fx f16", t.decode_tok_s / f16_tok_s[s.name]);
        if (g == 2 && plain_tok_s > 0) std::printf("  %.2fx without PDL", t.decode_tok_s / plain_tok_s);
        std::printf("\n");
      }
    } catch (const std::exception& e) {
      std::printf("FAIL model bench %s %s: %s\n", s.name, format_name(run.fmt), e.what());
      ok = false;
    }
    std::error_code ec;
    fs::remove(file, ec);
  }
  std::printf("(tok/s: decode at batch 1; GB/s: the matrices' bytes (and scales) one step reads (tied head) x tok/s; "
              "prefill: median of 3; kernels: the decode graph's kernel nodes, 0 when eager)\n");
  return ok;
}

}  // namespace nm::check
