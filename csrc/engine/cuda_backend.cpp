// The CUDA backend (backend.h BackendKind::Cuda): the engine's kernels on an
// NVIDIA GPU through the cuda/kernels.h launchers, on one stream per model.
// Built only with the CUDA library (NM_HAVE_CUDA: -DNODE_MAMBA_CUDA=ON).
//
// Memory: weights are copied to the device once at load (place, rows as the
// CUDA kernels read them); states, KV pages and the per-call activations come
// from the device's stream-ordered pool (alloc / release), kept by the pool
// between calls. Index arrays the engine builds on the host (token ids,
// slots, positions, cu_seqlens, block tables) are copied into a pinned
// staging buffer and from there to its device twin, in stream order before
// the kernel that reads them; the staging space is reused after each
// download, which synchronises the stream (every forward pass ends with one).
// A launcher's refusal or a device fault becomes a std::runtime_error naming
// the kernel and the CUDA error. Decode steps of models without attention
// are captured as CUDA graphs once their launches repeat, and replayed
// (engine/step_recorder.h; NODE_MAMBA_DECODE_GRAPHS=0 turns this off).
#if NM_HAVE_CUDA
#include "engine/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/staged_args.h"
#include "engine/step_recorder.h"
#include "kernels.h"
#include "runtime.h"

namespace nm::engine {

namespace {

constexpr size_t kStagingBytes = size_t(4) << 20;
constexpr size_t kStagingAlign = 256;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("node-mamba: CUDA ") + what + ": " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
}

// Ids of the recorded entries (step_recorder.h traces).
enum EntryId : uint32_t {
  kEmbedding = 1, kCopy, kZero, kScale, kAdd, kRmsNorm, kGatedRmsNorm, kHadamard, kHadamardQuant, kLinear, kQLinear,
  kQuantizeChannels, kConv, kConvQ8, kConvUpdate, kConvUpdateQ8, kScan, kScanQ8, kSsd, kSsdQ8, kStateUpdate,
  kStateUpdateQ8, kRope, kKvAppend, kAttention, kMoeRoute, kMoe, kSwiglu
};

// Kernel nodes of a captured graph (0 when it cannot be asked).
int64_t kernel_nodes(cudaGraph_t g) {
  size_t n = 0;
  if (cudaGraphGetNodes(g, nullptr, &n) != cudaSuccess) return 0;
  std::vector<cudaGraphNode_t> nodes(n);
  if (n > 0 && cudaGraphGetNodes(g, nodes.data(), &n) != cudaSuccess) return 0;
  int64_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    cudaGraphNodeType t;
    if (cudaGraphNodeGetType(nodes[i], &t) == cudaSuccess && t == cudaGraphNodeTypeKernel) ++k;
  }
  return k;
}

bool decode_graphs_enabled() {
  const char* v = std::getenv("NODE_MAMBA_DECODE_GRAPHS");
  return !v || std::string(v) != "0";
}

class CudaBackend final : public Backend, private RecorderDevice {
 public:
  explicit CudaBackend(int device) : device_(device), rec_(std::make_unique<StepRecorder>(static_cast<RecorderDevice&>(*this), decode_graphs_enabled())) {
    check(cudaSetDevice(device_), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    // Keep freed pool memory for the next call's activations.
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, device_), "cudaDeviceGetDefaultMemPool");
    uint64_t keep = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    check(cudaMallocHost(&staging_host_, kStagingBytes), "cudaMallocHost");
    check(cudaMalloc(&staging_dev_, kStagingBytes), "cudaMalloc");
  }
  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    rec_.reset();  // its graphs and arenas first
    for (void* p : placed_) cudaFree(p);
    cudaFree(staging_dev_);
    cudaFreeHost(staging_host_);
    cudaStreamDestroy(stream_);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  // linear_cuda: f32 / f16 / bf16 / Q8_0 / Q4_0; qlinear_cuda: I8 / I4 (rows).
  bool supports(DType t) const override { return (int32_t)t >= 0 && (int32_t)t < kDTypeCount; }

  bool host_addressable() const override { return false; }
  void* alloc(size_t bytes) override {
    enter();
    if (void* p = rec_->alloc(bytes)) return p;  // a recorded step's arena
    void* p = nullptr;
    check(cudaMallocAsync(&p, bytes > 0 ? bytes : 1, stream_), "cudaMallocAsync");
    return p;
  }
  void release(void* p) noexcept override {
    if (!p || rec_->owns(p)) return;
    cudaSetDevice(device_);
    cudaFreeAsync(p, stream_);
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    enter();
    rec_->flush();
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
    // The host bytes may go right after: wait for the copy.
    synchronize();
  }
  void download(void* dst, const void* src, size_t bytes) override {
    enter();
    rec_->flush();
    if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    synchronize();
  }
  void zero(void* dst, size_t bytes) override {
    if (!bytes) return;
    op(kZero, [=] { check(cudaMemsetAsync(dst, 0, bytes, stream_), "zero"); });
  }
  const void* place(const void* host, size_t bytes) override {
    if (!host) return nullptr;
    enter();
    void* p = nullptr;
    check(cudaMalloc(&p, bytes > 0 ? bytes : 1), "cudaMalloc (weights)");
    placed_.push_back(p);
    check(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice), "weight upload");
    return p;
  }
  bool packs_weights() const override { return false; }

  void step_begin(int64_t key, uint64_t generation, bool graphable) override {
    enter();
    if (staged_bytes_ != 0) synchronize();  // the staging offsets start over
    rec_->begin(key, generation, graphable);
  }
  void step_end() override {
    enter();
    rec_->end();
  }
  void step_abort() noexcept override { rec_->abort(); }
  RecorderStats graph_stats() const override {
    RecorderStats s = rec_->stats();
    s.launches_per_step = graph_kernels_.load();
    return s;
  }

  void embedding(const EmbeddingArgs& a) override {
    check_tokens(a);
    const EmbeddingArgs d = staged(a);
    op(kEmbedding, [=] { check(cuda::embedding_cuda(d, stream_), "embedding"); });
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    op(kCopy, [=] { check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy"); });
  }
  void scale_by(float* x, int64_t n, float s) override {
    op(kScale, [=] { check(cuda::scale_cuda(x, n, s, stream_), "scale"); });
  }
  void add(const float* a, const float* b, float* out, int64_t n) override {
    op(kAdd, [=] { check(cuda::add_cuda(a, b, out, n, stream_), "add"); });
  }
  void rms_norm(const RmsNormArgs& a) override {
    op(kRmsNorm, [=] { check(cuda::rms_norm_cuda(a, stream_), "rms_norm"); });
  }
  void gated_rms_norm(const GatedRmsNormArgs& a) override {
    op(kGatedRmsNorm, [=] { check(cuda::gated_rms_norm_cuda(a, stream_), "gated_rms_norm"); });
  }
  void hadamard_transform(const HadamardArgs& a) override {
    op(kHadamard, [=] { check(cuda::hadamard_transform_cuda(a, stream_), "hadamard_transform"); });
  }
  void hadamard_quantize(const HadamardQuantArgs& a) override {
    op(kHadamardQuant, [=] { check(cuda::hadamard_quantize_cuda(a, stream_), "hadamard_quantize"); });
  }
  void linear(const LinearArgs& a) override {
    if (a.x_rows) throw std::logic_error("node-mamba: CUDA linear: gathered rows come from the device (MoE dispatch)");
    op(kLinear, [=] { check(cuda::linear_cuda(a, stream_), "linear"); });
  }
  void qlinear(const QLinearArgs& a) override {
    if (a.x_rows) throw std::logic_error("node-mamba: CUDA qlinear: gathered rows come from the device (MoE dispatch)");
    op(kQLinear, [=] { check(cuda::qlinear_cuda(a, stream_), "qlinear"); });
  }
  void quantize_channels_int8(int64_t rows, int64_t channels, const float* x, int64_t x_stride, const float* scale,
                              int8_t* q, int64_t q_stride) override {
    op(kQuantizeChannels, [=] {
      check(cuda::quantize_channels_int8_cuda(rows, channels, x, x_stride, scale, q, q_stride, stream_),
            "quantize_channels_int8");
    });
  }
  void causal_conv1d(const CausalConv1dArgs& a) override {
    const auto d = staged(a);
    op(kConv, [=] { check(cuda::causal_conv1d_cuda(d, stream_), "causal_conv1d"); });
  }
  void causal_conv1d_q8(const CausalConv1dQ8Args& a) override {
    const auto d = staged(a);
    op(kConvQ8, [=] { check(cuda::causal_conv1d_q8_cuda(d, stream_), "causal_conv1d_q8"); });
  }
  void causal_conv1d_update(const CausalConv1dUpdateArgs& a) override {
    const auto d = staged(a);
    op(kConvUpdate, [=] { check(cuda::causal_conv1d_update_cuda(d, stream_), "causal_conv1d_update"); });
  }
  void causal_conv1d_update_q8(const CausalConv1dUpdateQ8Args& a) override {
    const auto d = staged(a);
    op(kConvUpdateQ8, [=] { check(cuda::causal_conv1d_update_q8_cuda(d, stream_), "causal_conv1d_update_q8"); });
  }
  void selective_scan(const SelectiveScanArgs& a) override {
    op(kScan, [=] { check(cuda::selective_scan_cuda(a, stream_), "selective_scan"); });
  }
  void selective_scan_q8(const SelectiveScanQ8Args& a) override {
    op(kScanQ8, [=] { check(cuda::selective_scan_q8_cuda(a, stream_), "selective_scan_q8"); });
  }
  void ssd_chunk_scan(const SsdChunkScanArgs& a) override {
    const auto d = staged(a);
    op(kSsd, [=] { check(cuda::ssd_chunk_scan_cuda(d, stream_), "ssd_chunk_scan"); });
  }
  void ssd_chunk_scan_q8(const SsdChunkScanQ8Args& a) override {
    const auto d = staged(a);
    op(kSsdQ8, [=] { check(cuda::ssd_chunk_scan_q8_cuda(d, stream_), "ssd_chunk_scan_q8"); });
  }
  void selective_state_update(const SelectiveStateUpdateArgs& a) override {
    const auto d = staged(a);
    op(kStateUpdate, [=] { check(cuda::selective_state_update_cuda(d, stream_), "selective_state_update"); });
  }
  void selective_state_update_q8(const SelectiveStateUpdateQ8Args& a) override {
    const auto d = staged(a);
    op(kStateUpdateQ8, [=] { check(cuda::selective_state_update_q8_cuda(d, stream_), "selective_state_update_q8"); });
  }
  void rope(const RopeArgs& a) override {
    const auto d = staged(a);
    op(kRope, [=] { check(cuda::rope_cuda(d, stream_), "rope"); });
  }
  void kv_cache_append(const KvCacheAppendArgs& a) override {
    const auto d = staged(a);
    op(kKvAppend, [=] { check(cuda::kv_cache_append_cuda(d, stream_), "kv_cache_append"); });
  }
  void paged_attention(const PagedAttentionArgs& a) override {
    const auto d = staged(a);
    op(kAttention, [=] { check(cuda::paged_attention_cuda(d, stream_), "paged_attention"); });
  }
  void moe_route(const MoeRouteArgs& a) override {
    op(kMoeRoute, [=] { check(cuda::moe_route_cuda(a, stream_), "moe_route"); });
  }
  // The experts and expert-scales tables are host arrays of device
  // pointers, the input scales host floats: staged as the index arrays are.
  void moe(const MoeArgs& a) override {
    enter();
    MoeArgs d = a;
    for (MoeWeight* w : {&d.gate, &d.up, &d.down}) {
      if (w->experts)
        w->experts = static_cast<const void* const*>(stage_bytes(w->experts, (size_t)a.E * sizeof(void*)));
      if (w->expert_scales)
        w->expert_scales =
            static_cast<const float* const*>(stage_bytes(w->expert_scales, (size_t)a.E * sizeof(float*)));
      if (w->x_scale) w->x_scale = static_cast<const float*>(stage_bytes(w->x_scale, (size_t)a.E * sizeof(float)));
    }
    op(kMoe, [=] { check(cuda::moe_cuda(d, stream_), "moe"); });
  }
  void swiglu_rows(const float* gu, int64_t gu_stride, int64_t up_off, float* h, int64_t h_stride, int64_t rows,
                   int64_t I) override {
    op(kSwiglu, [=] { check(cuda::swiglu_rows_cuda(gu, gu_stride, up_off, h, h_stride, rows, I, stream_), "swiglu_rows"); });
  }

 private:
  // The calling thread (the engine runs on libuv's workers) on this device.
  void enter() { check(cudaSetDevice(device_), "cudaSetDevice"); }

  // A launch: now, recorded into a graph, or held back (step_recorder.h).
  void op(uint32_t id, std::function<void()> f) {
    enter();
    rec_->op(id, std::move(f));
  }

  void synchronize() {
    check(cudaStreamSynchronize(stream_), "stream synchronize");
    staged_bytes_ = 0;  // every staged array has been read
  }

  // The device copy of n host int32s (nullptr for none), in stream order
  // before the next launch.
  const int32_t* stage(const int32_t* host, int64_t n) {
    if (!host || n <= 0) return nullptr;
    return static_cast<const int32_t*>(stage_bytes(host, (size_t)n * sizeof(int32_t)));
  }
  // The bytes go to pinned memory now; the copy to the device is a recorded
  // operation, which a replayed graph repeats from the same offset.
  const void* stage_bytes(const void* host, size_t bytes) {
    enter();
    const size_t need = (bytes + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
    if (need > kStagingBytes) throw std::length_error("node-mamba: CUDA: an index array larger than the staging buffer");
    if (staged_bytes_ + need > kStagingBytes) {  // the space is free again once the stream has drained
      rec_->flush();
      synchronize();
    }
    uint8_t* h = static_cast<uint8_t*>(staging_host_) + staged_bytes_;
    uint8_t* d = static_cast<uint8_t*>(staging_dev_) + staged_bytes_;
    std::memcpy(h, host, bytes);
    rec_->staged(bytes, [=] { check(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, stream_), "staging upload"); });
    staged_bytes_ += need;
    return d;
  }
  template <class Args>
  Args staged(const Args& a) {
    return staged_args(a, [this](const int32_t* p, int64_t n) { return stage(p, n); });
  }

  // RecorderDevice: CUDA graphs captured from the stream.
  bool records_by_launching() const override { return true; }
  bool begin_capture() override {
    const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed);
    if (e != cudaSuccess) cudaGetLastError();
    return e == cudaSuccess;
  }
  void* end_capture(std::vector<std::function<void()>>&&) override {
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &g);
    cudaGraphExec_t x = nullptr;
    if (e == cudaSuccess && g) graph_kernels_ = kernel_nodes(g);
    if (e == cudaSuccess && g) e = cudaGraphInstantiate(&x, g, 0);
    if (g) cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return x;
  }
  void launch_graph(void* g) override { check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g), stream_), "cudaGraphLaunch"); }
  void destroy_graph(void* g) noexcept override { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g)); }
  void* arena_alloc(size_t bytes) override {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes), "cudaMalloc (decode graph arena)");
    return p;
  }
  void arena_free(void* p) noexcept override { cudaFree(p); }

  int device_ = 0;
  std::unique_ptr<StepRecorder> rec_;
  std::atomic<int64_t> graph_kernels_{0};  // of the latest capture (RecorderStats::launches_per_step)
  cudaStream_t stream_ = nullptr;
  void* staging_host_ = nullptr;  // pinned
  void* staging_dev_ = nullptr;
  size_t staged_bytes_ = 0;
  std::vector<void*> placed_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  const cuda::RuntimeStatus rt = cuda::query_runtime();
  if (!rt.usable) throw std::runtime_error("node-mamba: CUDA is not usable: " + rt.reason);
  for (const auto& d : rt.devices)
    if (d.supported) return std::make_unique<CudaBackend>(d.index);
  throw std::runtime_error("node-mamba: no CUDA device of compute capability 7.5 or newer");
}

}  // namespace nm::engine

#endif  // NM_HAVE_CUDA
