// Activation buffers of the forward passes: a per-call pool of the backend's
// memory (BufScope, Buf) and the blocks a model keeps between calls
// (BufCache).
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace nm::engine {

class Backend;

// Activation buffers. Within one prefill() / decode_step() call (a BufScope)
// buffers come from a per-call pool in the model's backend memory
// (backend.h) and go back to it when they die, so the layers and 512-token
// chunks after the first reuse the same memory: freshly allocated multi-MB
// buffers per layer cost page faults, kernel zeroing and std::vector's own
// zeroing, ~5% of a 2048-token Mamba-2 prefill. Never zeroed: every buffer is
// fully written by the kernel that produces it before anything reads it. The
// pool is freed when the call ends, or kept in a BufCache. Host code never reads a buffer's floats
// (they may be device memory): only kernels and Backend::download do.
struct BufPool {
  Backend* backend = nullptr;
  std::vector<float*> blocks;
  std::vector<size_t> caps;
};

// Blocks kept from one call to the next (a model's: Model::buf_cache, for
// prefill): a BufScope given the cache starts with its blocks and leaves all
// of its own there, so after the first call of a size no call allocates (and
// faults in) its activations again, as an inference engine keeps its compute
// buffers (fresh pages cost a fault each, and a VM's faults are slow:
// bench/NOTES.md). It holds about what the largest calls used; the model
// releases it.
class BufCache {
 public:
  // Moves the cached blocks into `pool` (empty before).
  void take(BufPool& pool);
  // Moves `pool`'s blocks into the cache (those it cannot hold go back to
  // the backend).
  void give(BufPool& pool) noexcept;
  // Returns every cached block to `backend`.
  void release(Backend& backend) noexcept;

 private:
  std::mutex mu_;
  std::vector<float*> blocks_;
  std::vector<size_t> caps_;
};

class BufScope {
 public:
  // cache: optional (nullptr: the call's blocks are freed when it ends).
  explicit BufScope(Backend& backend, BufCache* cache = nullptr);
  ~BufScope();
  BufScope(const BufScope&) = delete;
  BufScope& operator=(const BufScope&) = delete;

 private:
  BufPool pool_;
  BufPool* prev_;
  BufCache* cache_;
};

// n floats from the innermost BufScope's pool (a BufScope must be open).
class Buf {
 public:
  explicit Buf(size_t n);
  ~Buf();
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  float* data() { return block_; }
  const float* data() const { return block_; }

 private:
  float* block_ = nullptr;
  size_t cap_ = 0;
  BufPool* pool_;
};

// The backend of this thread's innermost BufScope (nullptr outside one).
Backend* current_buf_backend();

// int8 activations from the same pool (a float buffer of a quarter the count).
class I8Buf {
 public:
  explicit I8Buf(size_t n) : buf_((n + 3) / 4) {}
  int8_t* data() { return reinterpret_cast<int8_t*>(buf_.data()); }

 private:
  Buf buf_;
};

// int32 indices a kernel produces (MoE expert ids), from the same pool.
class I32Buf {
 public:
  explicit I32Buf(size_t n) : buf_(n) {}
  int32_t* data() { return reinterpret_cast<int32_t*>(buf_.data()); }

 private:
  Buf buf_;
};

}  // namespace nm::engine
