#include "engine/cpu_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "cpu/threadpool.h"

namespace nm::engine {

namespace {

#if defined(__linux__)
// madvise's MADV_POPULATE_READ / _WRITE (Linux 5.14), where the headers
// predate them.
#if defined(MADV_POPULATE_READ) && defined(MADV_POPULATE_WRITE)
constexpr int kPopulateRead = MADV_POPULATE_READ, kPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kPopulateRead = 22, kPopulateWrite = 23;
#endif

size_t page_size() {
  static const size_t page = [] {
    const long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : (size_t)4096;
  }();
  return page;
}

// Bytes of the mapping that holds `bytes` (whole pages, at least one).
size_t mapped_size(size_t bytes) {
  const size_t page = page_size();
  return (std::max<size_t>(bytes, 1) + page - 1) / page * page;
}
#endif

// Each entry forwards to the CPU kernel of the same name.
class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  // Every format of the weight-format table has a CPU kernel family.
  bool supports(DType t) const override { return (int32_t)t >= 0 && (int32_t)t < kDTypeCount; }

  // Host memory: the kernels and the engine share it.
  bool host_addressable() const override { return true; }
  void* alloc(size_t bytes) override { return ::operator new[](bytes > 0 ? bytes : 1, std::align_val_t(64)); }
  void release(void* p) noexcept override {
    if (p) ::operator delete[](p, std::align_val_t(64));
  }
  void upload(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
  void zero(void* dst, size_t bytes) override {
    if (bytes) std::memset(dst, 0, bytes);
  }
  const void* place(const void* host, size_t) override { return host; }
#if defined(__linux__)
  void make_resident(const void* p, size_t bytes, bool writable) override {
    if (!p || bytes == 0) return;
    const uintptr_t page = (uintptr_t)page_size();
    const uintptr_t b = reinterpret_cast<uintptr_t>(p) / page * page;
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) / page * page;
    // advice only: a kernel without it (before Linux 5.14) leaves the
    // pages to fault in on first use, as before
    (void)::madvise(reinterpret_cast<void*>(b), e - b, writable ? kPopulateWrite : kPopulateRead);
  }
#endif
#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
  // Growable memory as anonymous mappings that mremap moves or extends
  // without copying (the sanitizer build keeps the heap's, whose bounds it
  // checks).
  void* alloc_growable(size_t bytes) override {
    void* p = ::mmap(nullptr, mapped_size(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
  }
  void* grow(void* p, size_t old_bytes, size_t new_bytes) override {
    if (!p) return alloc_growable(new_bytes);
    void* q = ::mremap(p, mapped_size(old_bytes), mapped_size(new_bytes), MREMAP_MAYMOVE);
    if (q == MAP_FAILED) throw std::bad_alloc();
    return q;
  }
  void release_growable(void* p, size_t bytes) noexcept override {
    if (p) ::munmap(p, mapped_size(bytes));
  }
#endif
  bool packs_weights() const override { return true; }

  void prefetch(const void* p, size_t bytes) override { cpu::pool().prefetch(p, bytes); }
  void serial_begin() override { cpu::begin_inline(); }
  void serial_end() noexcept override { cpu::end_inline(); }
  // Panels take int8 inputs (I8 / I4 with input scales, Q8_0 / Q4_0 with
  // rounded ones): the products the pool can detach (kernels/qlinear_rows.h).
  bool can_background(WeightLayout layout) const override {
    return layout == WeightLayout::Panels && cpu::pool().size() > 1;
  }
  void set_background(bool on) override { cpu::set_detach_allowed(on); }
  bool background_running() const override { return cpu::owns_detached(); }
  void join_background() override { cpu::pool().finish_detached(); }
  // A decode step's matrix products may take back the ranges of a worker
  // the machine stalls (kernels/qlinear_rows.h): its weights stay until
  // quiesce().
  void step_begin(int64_t, uint64_t, bool) override { cpu::set_recompute_allowed(true); }
  // The next decode step follows once JavaScript has chosen a token.
  void step_end() override {
    cpu::set_recompute_allowed(false);
    cpu::pool().linger();
  }
  void step_abort() noexcept override { cpu::set_recompute_allowed(false); }
  void quiesce() noexcept override { cpu::pool().quiesce(); }
  void embedding(const EmbeddingArgs& a) override { nm::embedding(a); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void scale_by(float* x, int64_t n, float s) override {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
  }
  void add(const float* a, const float* b, float* out, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }
  void rms_norm(const RmsNormArgs& a) override { nm::rms_norm(a); }
  void gated_rms_norm(const GatedRmsNormArgs& a) override { nm::gated_rms_norm(a); }
  void hadamard_transform(const HadamardArgs& a) override { nm::hadamard_transform(a); }
  void hadamard_quantize(const HadamardQuantArgs& a) override { nm::hadamard_quantize(a); }
  void linear(const LinearArgs& a) override { nm::linear(a); }
  void qlinear(const QLinearArgs& a) override { nm::qlinear(a); }
  void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                              int8_t* q, int64_t q_stride) override {
    nm::quantize_channels_int8(rows, channels, x, x_stride, scale, q, q_stride);
  }
  void causal_conv1d(const CausalConv1dArgs& a) override { nm::causal_conv1d(a); }
  void causal_conv1d_q8(const CausalConv1dQ8Args& a) override { nm::causal_conv1d_q8(a); }
  void causal_conv1d_update(const CausalConv1dUpdateArgs& a) override { nm::causal_conv1d_update(a); }
  void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) override { nm::causal_conv1d_update_q8(a); }
  void selective_scan(const SelectiveScanArgs& a) override { nm::selective_scan(a); }
  void selective_scan_q8(const SelectiveScanQ8Args& a) override { nm::selective_scan_q8(a); }
  void ssd_chunk_scan(const SsdChunkScanArgs& a) override { nm::ssd_chunk_scan(a); }
  void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) override { nm::ssd_chunk_scan_q8(a); }
  void selective_state_update(const SelectiveStateUpdateArgs& a) override { nm::selective_state_update(a); }
  void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) override { nm::selective_state_update_q8(a); }
  void rope(const RopeArgs& a) override { nm::rope(a); }
  void kv_cache_append(const KvCacheAppendArgs& a) override { nm::kv_cache_append(a); }
  void paged_attention(const PagedAttentionArgs& a) override { nm::paged_attention(a); }
  void moe_route(const MoeRouteArgs& a) override { nm::moe_route(a); }
  void moe(const MoeArgs& a) override { nm::moe(a); }
  void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                   int64_t I) override {
    nm::swiglu_rows(gu, gu_stride, up_off, h, h_stride, rows, I);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace nm::engine
