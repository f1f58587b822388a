// The engine's compute backend (docs/cuda-backend.md, "The seam"): every
// kernel the blocks (engine/blocks/) and the forward pass (forward.cpp,
// ops.cpp) run goes through the Model's Backend, with the plain argument
// structs of csrc/kernels/*.h, so that a block is written once for every
// device. CpuBackend (cpu_backend.h) forwards to the CPU kernels; a CUDA
// backend implements the same entries with cuda/kernels.h. What the pointers
// in the structs address (host or device memory) is the backend's: the
// blocks never read activations the kernels produce except through it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "engine/step_recorder.h"
#include "kernels/attention.h"
#include "kernels/conv1d.h"
#include "kernels/embedding.h"
#include "kernels/hadamard.h"
#include "kernels/linear.h"
#include "kernels/moe.h"
#include "kernels/norm.h"
#include "kernels/qlinear.h"
#include "kernels/selective_scan.h"
#include "kernels/ssd.h"
#include "kernels/ssm_q8.h"

namespace nm::engine {

// EmbeddingArgs (kernels/embedding.h): `tokens` is HOST memory for the
// backends (the ids come from JavaScript); `table`, `scales` and `out` are
// the backend's.
using nm::EmbeddingArgs;

// Which backend a model runs on. DeviceEmulation runs the CPU kernels on
// memory that host code can touch only through the backend
// (device_emulation_backend.cpp): the tests' check that the engine keeps to
// the seam a CUDA backend needs. Cuda: cuda_backend.cpp (CUDA builds only).
enum class BackendKind { Cpu, DeviceEmulation, Cuda };

struct ModelConfig;

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu" | "cpu-device-emulation" | "cuda".
  virtual const char* name() const = 0;
  // Whether its linear / qlinear / moe kernels take weights of this format.
  virtual bool supports(DType weight_format) const = 0;
  // Why it cannot run a model of this configuration ("" when it can).
  virtual std::string unsupported(const ModelConfig&) const { return {}; }

  // --- Memory. Every buffer the kernels read or write (weights, states, KV
  // pages, activations) is the backend's; host code moves bytes in and out
  // with upload / download. Index arrays the engine builds on the host
  // (token ids, sequence slots, positions, cu_seqlens, KV block tables, the
  // MoE expert pointer table) stay host memory: the backend moves them.
  // Whether host code may read the backend's memory directly (the CPU).
  virtual bool host_addressable() const = 0;
  // `bytes` (> 0) of uninitialised memory, 64-byte aligned; throws std::bad_alloc.
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) noexcept = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  // Memory that grows (the KV cache's page stores): alloc_growable, then
  // grow (its first old_bytes kept, the pointer may move; throws
  // std::bad_alloc), then release_growable with its last size. By default
  // an allocation, a copy and a release; the CPU backend remaps the pages
  // instead (no copy: a long context's cache doubles without a pause).
  virtual void* alloc_growable(size_t bytes) { return alloc(bytes); }
  virtual void* grow(void* p, size_t old_bytes, size_t new_bytes) {
    void* q = alloc(new_bytes);
    if (!p) return q;
    try {
      copy(q, p, old_bytes);
    } catch (...) {
      release(q);
      throw;
    }
    release(p);
    return q;
  }
  virtual void release_growable(void* p, size_t bytes) noexcept { (void)bytes, release(p); }
  // Load time: the backend's copy of host bytes that live as long as the
  // model (mapped weights, converted parameters); the CPU uses them in place.
  virtual const void* place(const void* host, size_t bytes) = 0;
  // Memory about to be used is mapped into the process now, in one call,
  // instead of a page fault at each page's first touch inside a decode step
  // (10-20 us a page on the VMs of bench/NOTES.md): placed weights read at
  // random (a token embedding table, whose file pages a token's first lookup
  // would fault in, or read from disk if the page cache lost them), or
  // (`writable`) KV-cache pages a sequence is given. A hint: the CPU backend
  // asks the kernel to populate the range; nothing elsewhere.
  virtual void make_resident(const void* p, size_t bytes, bool writable) { (void)p, (void)bytes, (void)writable; }
  // Whether I8 / I4 weights with int8 inputs are packed in panels for its
  // qlinear kernels (TensorTable::pack); else they stay in rows.
  virtual bool packs_weights() const = 0;

  // --- Decode steps (engine/step_recorder.h): a step of batch size `key`
  // starts (graphable: its launches depend only on the key, the memory
  // `generation` (Model::memory_generation: it changes whenever the
  // sequence-state pool or the KV cache storage moves) and the staged index
  // arrays), ends before its logits are downloaded, or is abandoned by an
  // exception. A device backend may replay recorded steps as graphs.
  virtual void step_begin(int64_t key, uint64_t generation, bool graphable) {
    (void)key, (void)generation, (void)graphable;
  }
  virtual void step_end() {}
  virtual void step_abort() noexcept {}
  virtual RecorderStats graph_stats() const { return {}; }

  // A hint that [p, p + bytes) (weights) is read soon, after a stretch of
  // serial work: the CPU backend's idle threads prefetch it meanwhile
  // (cpu/threadpool.h); the next hint replaces it. Nothing on the device
  // backends.
  virtual void prefetch(const void* p, size_t bytes) { (void)p, (void)bytes; }
  // A stretch of small, latency-bound calls until serial_end (they nest; use
  // SerialSection): a decode step's conv and state update at batch 1. The
  // CPU backend runs them on the calling thread while its idle threads
  // prefetch the hinted weights (bench/NOTES.md); nothing on the device
  // backends.
  virtual void serial_begin() {}
  virtual void serial_end() noexcept {}
  // While set, a decode step's matrix product (linear / qlinear) may start
  // on the idle threads and return before its output is ready, so that the
  // caller goes on with a stretch of serial calls that do not read it;
  // join_background() waits for it (use BackgroundProduct). The CPU backend
  // detaches the products a decode step may recompute (cpu/threadpool.h
  // set_detach_allowed: weights in panels, int8 inputs); the device
  // backends run them in order. can_background: whether a product on
  // weights of this layout may run so (worth splitting a product for).
  virtual bool can_background(WeightLayout layout) const { (void)layout; return false; }
  virtual void set_background(bool on) { (void)on; }
  virtual bool background_running() const { return false; }  // a product started and not joined
  virtual void join_background() {}
  // Waits until no kernel work of a finished call still reads the model's
  // weights (the CPU pool's workers that a decode step's matrix products
  // no longer waited for: cpu/threadpool.h run_recomputable). Called before
  // a model frees its weights.
  virtual void quiesce() noexcept {}

  // Data movement and elementwise ops on the backend's memory.
  virtual void embedding(const EmbeddingArgs& a) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // x *= s; s == 1 (Mamba models' multipliers) runs nothing on any backend.
  void scale(float* x, int64_t n, float s) {
    if (s != 1.0f) scale_by(x, n, s);
  }
  virtual void scale_by(float* x, int64_t n, float s) = 0;
  virtual void add(const float* a, const float* b, float* out, int64_t n) = 0;  // out = a + b
  // Norms and rotations.
  virtual void rms_norm(const RmsNormArgs& a) = 0;
  virtual void gated_rms_norm(const GatedRmsNormArgs& a) = 0;
  virtual void hadamard_transform(const HadamardArgs& a) = 0;
  virtual void hadamard_quantize(const HadamardQuantArgs& a) = 0;
  // Linear layers (every float / GGUF format; the Quamba int formats).
  virtual void linear(const LinearArgs& a) = 0;
  virtual void qlinear(const QLinearArgs& a) = 0;
  // Static per-channel int8 quantization (ssm_q8.h).
  virtual void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride,
                                      const float* scale, int8_t* q, int64_t q_stride) = 0;
  // Causal conv1d, prefill and decode, float and int8.
  virtual void causal_conv1d(const CausalConv1dArgs& a) = 0;
  virtual void causal_conv1d_q8(const CausalConv1dQ8Args& a) = 0;
  virtual void causal_conv1d_update(const CausalConv1dUpdateArgs& a) = 0;
  virtual void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) = 0;
  // State space scans: Mamba-1 prefill, Mamba-2 chunked prefill, the decode
  // step of both; float and int8 inputs.
  virtual void selective_scan(const SelectiveScanArgs& a) = 0;
  virtual void selective_scan_q8(const SelectiveScanQ8Args& a) = 0;
  virtual void ssd_chunk_scan(const SsdChunkScanArgs& a) = 0;
  virtual void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) = 0;
  virtual void selective_state_update(const SelectiveStateUpdateArgs& a) = 0;
  virtual void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) = 0;
  // Attention over the paged KV cache.
  virtual void rope(const RopeArgs& a) = 0;
  virtual void kv_cache_append(const KvCacheAppendArgs& a) = 0;
  virtual void paged_attention(const PagedAttentionArgs& a) = 0;
  // Feed-forwards: the router, the fused expert dispatch, SwiGLU.
  virtual void moe_route(const MoeRouteArgs& a) = 0;
  virtual void moe(const MoeArgs& a) = 0;
  virtual void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride,
                           int64_t rows, int64_t I) = 0;
};

// Backend::serial_begin / serial_end for a scope: begun by begin(true) (or
// the constructor's `on`), ended by end() or the destructor.
class SerialSection {
 public:
  explicit SerialSection(Backend& b, bool on = false) : b_(b) { begin(on); }
  ~SerialSection() { end(); }
  SerialSection(const SerialSection&) = delete;
  SerialSection& operator=(const SerialSection&) = delete;
  void begin(bool on) {
    if (!on || open_) return;
    b_.serial_begin();
    open_ = true;
  }
  void end() noexcept {
    if (open_) b_.serial_end();
    open_ = false;
  }

 private:
  Backend& b_;
  bool open_ = false;
};

// One matrix product that may run in the background (Backend::set_background):
// start(call) makes it (true: it runs in the background; false: it ran to
// its end), join() waits for its output; the destructor joins one still
// running (during unwinding: the call's buffers outlive it).
class BackgroundProduct {
 public:
  explicit BackgroundProduct(Backend& b) : b_(b) {}
  // Whether the backend may run one on weights of `layout` (Backend::can_background).
  bool available(WeightLayout layout) const { return b_.can_background(layout); }
  ~BackgroundProduct() {
    if (!open_) return;
    try {
      b_.join_background();
    } catch (...) {
    }
  }
  BackgroundProduct(const BackgroundProduct&) = delete;
  BackgroundProduct& operator=(const BackgroundProduct&) = delete;
  template <class Call>
  bool start(Call&& call) {
    join();
    b_.set_background(true);
    open_ = true;
    try {
      call();
    } catch (...) {
      b_.set_background(false);
      throw;
    }
    b_.set_background(false);
    open_ = b_.background_running();
    return open_;
  }
  void join() {
    if (!open_) return;
    open_ = false;
    b_.join_background();
  }
  bool running() const { return open_; }  // started in the background, not joined

 private:
  Backend& b_;
  bool open_ = false;
};

// The backend of `kind` (a std::invalid_argument for one this build lacks).
std::unique_ptr<Backend> make_backend(BackendKind kind);

}  // namespace nm::engine
