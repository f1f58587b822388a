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
// engine is checked on machines without a GPU.
#include "engine/device_emulation_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <new>
#include <stdexcept>

#include "engine/cpu_backend.h"

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

class DeviceEmulationBackend final : public Backend {
 public:
  DeviceEmulationBackend() : cpu_(make_cpu_backend()) {}

  const char* name() const override { return "cpu-device-emulation"; }
  bool supports(DType t) const override { return cpu_->supports(t); }

  bool host_addressable() const override { return false; }
  void* alloc(size_t bytes) override { return arena_.alloc(bytes); }
  void release(void* p) noexcept override { arena_.release(p); }
  void upload(void* dst, const void* src, size_t bytes) override {
    check(dst, bytes, "upload");
    run([&] { std::memcpy(dst, src, bytes); });
  }
  void download(void* dst, const void* src, size_t bytes) override {
    check(src, bytes, "download");
    run([&] { std::memcpy(dst, src, bytes); });
  }
  void zero(void* dst, size_t bytes) override {
    check(dst, bytes, "zero");
    run([&] { std::memset(dst, 0, bytes); });
  }
  const void* place(const void* host, size_t bytes) override {
    if (!host) return nullptr;
    void* p = arena_.alloc(bytes);
    run([&] { std::memcpy(p, host, bytes); });
    return p;
  }
  // Rows, as the CUDA kernels read them.
  bool packs_weights() const override { return false; }

  void embedding(const EmbeddingArgs& a) override { run([&] { cpu_->embedding(a); }); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    check(dst, bytes, "copy");
    check(src, bytes, "copy");
    run([&] { cpu_->copy(dst, src, bytes); });
  }
  void scale(float* x, int64_t n, float s) override { run([&] { cpu_->scale(x, n, s); }); }
  void add(const float* a, const float* b, float* out, int64_t n) override { run([&] { cpu_->add(a, b, out, n); }); }
  void rms_norm(const RmsNormArgs& a) override { run([&] { cpu_->rms_norm(a); }); }
  void gated_rms_norm(const GatedRmsNormArgs& a) override { run([&] { cpu_->gated_rms_norm(a); }); }
  void hadamard_transform(const HadamardArgs& a) override { run([&] { cpu_->hadamard_transform(a); }); }
  void hadamard_quantize(const HadamardQuantArgs& a) override { run([&] { cpu_->hadamard_quantize(a); }); }
  void linear(const LinearArgs& a) override { run([&] { cpu_->linear(a); }); }
  void qlinear(const QLinearArgs& a) override { run([&] { cpu_->qlinear(a); }); }
  void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                              int8_t* q, int64_t q_stride) override {
    run([&] { cpu_->quantize_channels_int8(rows, channels, x, x_stride, scale, q, q_stride); });
  }
  void causal_conv1d(const CausalConv1dArgs& a) override { run([&] { cpu_->causal_conv1d(a); }); }
  void causal_conv1d_q8(const CausalConv1dQ8Args& a) override { run([&] { cpu_->causal_conv1d_q8(a); }); }
  void causal_conv1d_update(const CausalConv1dUpdateArgs& a) override { run([&] { cpu_->causal_conv1d_update(a); }); }
  void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) override {
    run([&] { cpu_->causal_conv1d_update_q8(a); });
  }
  void selective_scan(const SelectiveScanArgs& a) override { run([&] { cpu_->selective_scan(a); }); }
  void selective_scan_q8(const SelectiveScanQ8Args& a) override { run([&] { cpu_->selective_scan_q8(a); }); }
  void ssd_chunk_scan(const SsdChunkScanArgs& a) override { run([&] { cpu_->ssd_chunk_scan(a); }); }
  void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) override { run([&] { cpu_->ssd_chunk_scan_q8(a); }); }
  void selective_state_update(const SelectiveStateUpdateArgs& a) override {
    run([&] { cpu_->selective_state_update(a); });
  }
  void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) override {
    run([&] { cpu_->selective_state_update_q8(a); });
  }
  void rope(const RopeArgs& a) override { run([&] { cpu_->rope(a); }); }
  void kv_cache_append(const KvCacheAppendArgs& a) override { run([&] { cpu_->kv_cache_append(a); }); }
  void paged_attention(const PagedAttentionArgs& a) override { run([&] { cpu_->paged_attention(a); }); }
  void moe_route(const MoeRouteArgs& a) override { run([&] { cpu_->moe_route(a); }); }
  void moe(const MoeArgs& a) override { run([&] { cpu_->moe(a); }); }
  void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                   int64_t I) override {
    run([&] { cpu_->swiglu_rows(gu, gu_stride, up_off, h, h_stride, rows, I); });
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
  // A transfer's device side must be memory the backend handed out.
  void check(const void* p, size_t bytes, const char* what) const {
    if (bytes && !arena_.owns(p, bytes))
      throw std::logic_error(std::string("device emulation: ") + what + " of memory the backend does not own");
  }

  std::unique_ptr<Backend> cpu_;
  Arena arena_;
};

}  // namespace

std::unique_ptr<Backend> make_device_emulation_backend() { return std::make_unique<DeviceEmulationBackend>(); }

}  // namespace nm::engine
