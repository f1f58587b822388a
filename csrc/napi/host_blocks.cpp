#include "napi/host_blocks.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace nm::napi {

namespace {

// Blocks at least this large are kept (smaller ones come from the C
// library's free lists, already mapped).
constexpr size_t kKeepBytes = 64 << 10;
// At most this many bytes kept: V8 collects the buffers in batches, after
// some tens of MB of them (its external-memory pressure), and a batch larger
// than the cache goes back to the C library, to be faulted in again. The
// largest batch is the most those buffers would hold alive anyway.
constexpr size_t kCacheBytes = 64 << 20;

struct BlockCache {
  std::mutex mu;
  std::vector<std::pair<size_t, void*>> blocks;  // (size, block), most recent last
  size_t bytes = 0;
};

// Never destroyed: finalizers of buffers may run while the process exits.
BlockCache& cache() {
  static BlockCache* c = new BlockCache();
  return *c;
}

}  // namespace

size_t host_block_size(size_t bytes) { return ((bytes > 0 ? bytes : 1) + 63) / 64 * 64; }

void* host_block_alloc(size_t bytes) {
  const size_t n = host_block_size(bytes);
  if (n >= kKeepBytes) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    for (size_t i = c.blocks.size(); i-- > 0;) {
      if (c.blocks[i].first != n) continue;
      void* p = c.blocks[i].second;
      c.blocks.erase(c.blocks.begin() + (std::ptrdiff_t)i);
      c.bytes -= n;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, n);
  if (!p) throw std::bad_alloc();
  return p;
}

void host_block_free(void* p, size_t bytes) noexcept {
  if (!p) return;
  const size_t n = host_block_size(bytes);
  if (n >= kKeepBytes) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.bytes + n <= kCacheBytes) {
      try {
        c.blocks.emplace_back(n, p);
        c.bytes += n;
        return;
      } catch (...) {
      }
    }
  }
  std::free(p);
}

}  // namespace nm::napi
