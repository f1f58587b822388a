// The device-emulation backend (backend.h BackendKind::DeviceEmulation): the
// CPU kernels, run on memory that host code can reach only through the
// backend, as with a GPU. Everything the backend allocates or places lies in
// one arena of reserved address space that is mapped PROT_NONE except while
// one of the backend's own entries runs. An engine line that reads or writes
// a weight, a state, a KV page or an activation directly (instead of
// through upload / download / a kernel) faults at once; host arrays the
// kernels read (token ids, slots, block tables) are ordinary memory. The
// tests run whole models through it and compare them with the CPU backend
// (test/model/device_emulation.test.ts): what a CUDA backend needs from the
// engine is checked on machines without a GPU. Index arrays are staged as
// the CUDA backend stages them, and decode steps are recorded and replayed
// as the CUDA backend's graphs are (step_recorder.h; a graph here is the list
// of launches the capture held back), so that the replay logic is checked
// too.
#include "engine/device_emulation_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include <map>
#include <new>
#include <stdexcept>

#include "engine/cpu_backend.h"
#include "engine/staged_args.h"
#include "engine/step_recorder.h"

namespace nm::engine {

namespace {

// Reserved address space; pages are committed as the arena grows into them.
constexpr size_t kArenaReserve = size_t(16) << 30;
constexpr size_t kAlign = 64;

class Arena {
 public:
  Arena() {
    void* p = mmap(nullptr, kArenaReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<uint8_t*>(p);
    page_ = (size_t)sysconf(_SC_PAGESIZE);
  }
  ~Arena() { munmap(base_, kArenaReserve); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Best fit among freed blocks, else the top of the arena.
  void* alloc(size_t bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    if (bytes == 0) bytes = kAlign;
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first <= 2 * bytes) {
      void* p = it->second;
      live_[p] = it->first;
      free_.erase(it);
      return p;
    }
    if (top_ + bytes > kArenaReserve) throw std::bad_alloc();
    void* p = base_ + top_;
    top_ += bytes;
    live_[p] = bytes;
    if (open_ > 0) protect(PROT_READ | PROT_WRITE);  // the new pages too
    return p;
  }

  void release(void* p) noexcept {
    auto it = live_.find(p);
    if (it == live_.end()) return;
    free_.emplace(it->second, p);
    live_.erase(it);
  }

  // Whether [p, p + bytes) lies inside one live block.
  bool owns(const void* p, size_t bytes) const {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    if (b < base_ || b >= base_ + top_) return false;
    auto it = live_.upper_bound(const_cast<void*>(p));
    if (it == live_.begin()) return false;
    --it;
    const uint8_t* s = static_cast<const uint8_t*>(it->first);
    return b + bytes <= s + it->second;
  }

  // Readable and writable while at least one Open lives.
  void open() {
    if (open_++ == 0) protect(PROT_READ | PROT_WRITE);
  }
  void close() {
    if (--open_ == 0) protect(PROT_NONE);
  }

 private:
  void protect(int prot) {
    const size_t len = (top_ + page_ - 1) / page_ * page_;
    if (len > 0 && mprotect(base_, len, prot) != 0) throw std::runtime_error("device emulation: mprotect failed");
  }

  uint8_t* base_ = nullptr;
  size_t page_ = 4096, top_ = 0;
  int open_ = 0;
  std::map<void*, size_t> live_;
  std::multimap<size_t, void*> free_;
};

// Ids of the recorded entries (step_recorder.h traces).
enum EntryId : uint32_t {
  kEmbedding = 1, kCopy, kZero, kScale, kAdd, kRmsNorm, kGatedRmsNorm, kHadamard, kHadamardQuant, kLinear, kQLinear,
  kQuantizeChannels, kConv, kConvQ8, kConvUpdate, kConvUpdateQ8, kScan, kScanQ8, kSsd, kSsdQ8, kStateUpdate,
  kStateUpdateQ8, kRope, kKvAppend, kAttention, kMoeRoute, kMoe, kSwiglu
};

constexpr size_t kStagingBytes = size_t(4) << 20;
constexpr size_t kStagingAlign = 256;

class DeviceEmulationBackend final : public Backend, private RecorderDevice {
 public:
  DeviceEmulationBackend()
      : cpu_(make_cpu_backend()), rec_(*this, std::getenv("NODE_MAMBA_DECODE_GRAPHS") == nullptr ||
                                                  std::string(std::getenv("NODE_MAMBA_DECODE_GRAPHS")) != "0") {
    staging_dev_ = static_cast<uint8_t*>(arena_.alloc(kStagingBytes));
    staging_host_.resize(kStagingBytes);
  }

  const char* name() const override { return "cpu-device-emulation"; }
  bool supports(DType t) const override { return cpu_->supports(t); }

  bool host_addressable() const override { return false; }
  void* alloc(size_t bytes) override {
    if (void* p = rec_.alloc(bytes)) return p;
    return arena_.alloc(bytes);
  }
  void release(void* p) noexcept override {
    if (!rec_.owns(p)) arena_.release(p);
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    check(dst, bytes, "upload");
    rec_.flush();
    run([&] { std::memcpy(dst, src, bytes); });
  }
  void download(void* dst, const void* src, size_t bytes) override {
    check(src, bytes, "download");
    rec_.flush();
    run([&] { std::memcpy(dst, src, bytes); });
    staged_ = 0;  // every launch has run: the staging space is free again (as a CUDA stream's sync)
  }
  void zero(void* dst, size_t bytes) override {
    check(dst, bytes, "zero");
    op(kZero, [=] { std::memset(dst, 0, bytes); });
  }
  const void* place(const void* host, size_t bytes) override {
    if (!host) return nullptr;
    void* p = arena_.alloc(bytes);
    run([&] { std::memcpy(p, host, bytes); });
    return p;
  }
  // Rows, as the CUDA kernels read them.
  bool packs_weights() const override { return false; }

  void step_begin(int64_t key, uint64_t generation, bool graphable) override {
    staged_ = 0;  // nothing is held back between steps: the offsets start over
    rec_.begin(key, generation, graphable);
  }
  void step_end() override { rec_.end(); }
  void step_abort() noexcept override { rec_.abort(); }
  RecorderStats graph_stats() const override {
    RecorderStats s = rec_.stats();
    s.launches_per_step = held_launches_.load();
    return s;
  }

  void embedding(const EmbeddingArgs& a) override {
    check_tokens(a);  // as the CUDA backend: on the host, before anything is held back
    const EmbeddingArgs d = staged(a);
    op(kEmbedding, [=] { cpu_->embedding(d); });
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    check(dst, bytes, "copy");
    check(src, bytes, "copy");
    op(kCopy, [=] { cpu_->copy(dst, src, bytes); });
  }
  void scale_by(float* x, int64_t n, float s) override { op(kScale, [=] { cpu_->scale_by(x, n, s); }); }
  void add(const float* a, const float* b, float* out, int64_t n) override {
    op(kAdd, [=] { cpu_->add(a, b, out, n); });
  }
  void rms_norm(const RmsNormArgs& a) override { op(kRmsNorm, [=] { cpu_->rms_norm(a); }); }
  void gated_rms_norm(const GatedRmsNormArgs& a) override { op(kGatedRmsNorm, [=] { cpu_->gated_rms_norm(a); }); }
  void hadamard_transform(const HadamardArgs& a) override { op(kHadamard, [=] { cpu_->hadamard_transform(a); }); }
  void hadamard_quantize(const HadamardQuantArgs& a) override {
    op(kHadamardQuant, [=] { cpu_->hadamard_quantize(a); });
  }
  void linear(const LinearArgs& a) override { op(kLinear, [=] { cpu_->linear(a); }); }
  void qlinear(const QLinearArgs& a) override { op(kQLinear, [=] { cpu_->qlinear(a); }); }
  void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                              int8_t* q, int64_t q_stride) override {
    op(kQuantizeChannels, [=] { cpu_->quantize_channels_int8(rows, channels, x, x_stride, scale, q, q_stride); });
  }
  void causal_conv1d(const CausalConv1dArgs& a) override {
    const auto d = staged(a);
    op(kConv, [=] { cpu_->causal_conv1d(d); });
  }
  void causal_conv1d_q8(const CausalConv1dQ8Args& a) override {
    const auto d = staged(a);
    op(kConvQ8, [=] { cpu_->causal_conv1d_q8(d); });
  }
  void causal_conv1d_update(const CausalConv1dUpdateArgs& a) override {
    const auto d = staged(a);
    op(kConvUpdate, [=] { cpu_->causal_conv1d_update(d); });
  }
  void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) override {
    const auto d = staged(a);
    op(kConvUpdateQ8, [=] { cpu_->causal_conv1d_update_q8(d); });
  }
  void selective_scan(const SelectiveScanArgs& a) override { op(kScan, [=] { cpu_->selective_scan(a); }); }
  void selective_scan_q8(const SelectiveScanQ8Args& a) override { op(kScanQ8, [=] { cpu_->selective_scan_q8(a); }); }
  void ssd_chunk_scan(const SsdChunkScanArgs& a) override {
    const auto d = staged(a);
    op(kSsd, [=] { cpu_->ssd_chunk_scan(d); });
  }
  void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) override {
    const auto d = staged(a);
    op(kSsdQ8, [=] { cpu_->ssd_chunk_scan_q8(d); });
  }
  void selective_state_update(const SelectiveStateUpdateArgs& a) override {
    const auto d = staged(a);
    op(kStateUpdate, [=] { cpu_->selective_state_update(d); });
  }
  void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) override {
    const auto d = staged(a);
    op(kStateUpdateQ8, [=] { cpu_->selective_state_update_q8(d); });
  }
  void rope(const RopeArgs& a) override {
    const auto d = staged(a);
    op(kRope, [=] { cpu_->rope(d); });
  }
  void kv_cache_append(const KvCacheAppendArgs& a) override {
    const auto d = staged(a);
    op(kKvAppend, [=] { cpu_->kv_cache_append(d); });
  }
  void paged_attention(const PagedAttentionArgs& a) override {
    const auto d = staged(a);
    op(kAttention, [=] { cpu_->paged_attention(d); });
  }
  void moe_route(const MoeRouteArgs& a) override { op(kMoeRoute, [=] { cpu_->moe_route(a); }); }
  // The experts table is model-lifetime host memory: read in place (the CUDA
  // backend stages it, as the device reads it).
  void moe(const MoeArgs& a) override { op(kMoe, [=] { cpu_->moe(a); }); }
  void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                   int64_t I) override {
    op(kSwiglu, [=] { cpu_->swiglu_rows(gu, gu_stride, up_off, h, h_stride, rows, I); });
  }

 private:
  // f with the arena open; closed again however f ends.
  template <class F>
  void run(F&& f) {
    arena_.open();
    struct Close {
      Arena& a;
      ~Close() { a.close(); }
    } close{arena_};
    f();
  }
  // A kernel entry: run now, or recorded / held back by the step recorder.
  void op(uint32_t id, std::function<void()> f) {
    rec_.op(id, [this, f = std::move(f)] { run(f); });
  }
  // A transfer's device side must be memory the backend handed out.
  void check(const void* p, size_t bytes, const char* what) const {
    if (bytes && !arena_.owns(p, bytes))
      throw std::logic_error(std::string("device emulation: ") + what + " of memory the backend does not own");
  }

  // The "device" copy of n host int32s, through the host staging buffer,
  // as the CUDA backend's pinned staging: the host bytes are copied now, the
  // copy to the device is a recorded operation (a replayed graph repeats it
  // from the same offset).
  const int32_t* stage(const int32_t* host, int64_t n) {
    if (!host || n <= 0) return nullptr;
    const size_t bytes = (size_t)n * sizeof(int32_t);
    const size_t need = (bytes + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
    if (need > kStagingBytes) throw std::length_error("node-mamba: device emulation: an index array larger than the staging buffer");
    if (staged_ + need > kStagingBytes) {
      rec_.flush();
      staged_ = 0;
    }
    uint8_t* h = staging_host_.data() + staged_;
    uint8_t* d = staging_dev_ + staged_;
    std::memcpy(h, host, bytes);
    rec_.staged(bytes, [this, d, h, bytes] { run([&] { std::memcpy(d, h, bytes); }); });
    staged_ += need;
    return reinterpret_cast<const int32_t*>(d);
  }
  template <class Args>
  Args staged(const Args& a) {
    return staged_args(a, [this](const int32_t* p, int64_t n) { return stage(p, n); });
  }

  // RecorderDevice: a graph is the list of launches the capture held.
  bool records_by_launching() const override { return false; }
  bool begin_capture() override { return true; }
  void* end_capture(std::vector<std::function<void()>>&& launches) override {
    held_launches_ = (int64_t)launches.size();
    return new std::vector<std::function<void()>>(std::move(launches));
  }
  void launch_graph(void* g) override {
    for (auto& f : *static_cast<std::vector<std::function<void()>>*>(g)) f();
  }
  void destroy_graph(void* g) noexcept override { delete static_cast<std::vector<std::function<void()>>*>(g); }
  void* arena_alloc(size_t bytes) override { return arena_.alloc(bytes); }
  void arena_free(void* p) noexcept override { arena_.release(p); }

  std::unique_ptr<Backend> cpu_;
  Arena arena_;
  std::vector<uint8_t> staging_host_;
  uint8_t* staging_dev_ = nullptr;
  size_t staged_ = 0;
  std::atomic<int64_t> held_launches_{0};  // of the latest capture (RecorderStats::launches_per_step)
  StepRecorder rec_;  // last: its graphs and arenas go before the arena
};

}  // namespace

std::unique_ptr<Backend> make_device_emulation_backend() { return std::make_unique<DeviceEmulationBackend>(); }

}  // namespace nm::engine
