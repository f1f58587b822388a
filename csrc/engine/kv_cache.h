// The K/V caches of a model's attention layers, in pages of kKvPageTokens
// token slots (kernels/attention.h PagedKvCache). One page allocator serves
// every attention layer: a sequence's page list is the same for all of them,
// each layer keeping its own storage of num_pages pages. Storage grows by
// doubling when the free list runs out (Backend::grow: on the CPU the pages
// are remapped, not copied; the kernels take the pointers anew on every
// call), and a sequence's pages go back to the free list when it is
// freed or reset. The pages are the backend's memory (backend.h); the page
// lists are host bookkeeping. Callers hold the model's compute mutex.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/attention.h"

namespace nm::engine {

constexpr int64_t kKvPageTokens = 64;

class Backend;

class KvCache {
 public:
  KvCache(Backend& backend, DType dtype) : backend_(backend), dtype_(dtype) {}
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Load time: a new attention layer's cache; returns its index.
  int32_t add_layer(int64_t n_kv_heads, int64_t head_dim);
  int32_t layer_count() const { return (int32_t)layers_.size(); }
  DType dtype() const { return dtype_; }

  // Makes the pages of `slot` cover positions [0, tokens).
  void reserve(int32_t slot, int64_t tokens);
  // Gives every page of `slot` back.
  void release(int32_t slot);
  const std::vector<int32_t>& pages(int32_t slot) const;

  // The kernels' view of layer `layer` (pointers valid until the next reserve()).
  PagedKvCache view(int32_t layer);
  // Times the storage moved (grew): views taken before a change are stale.
  uint32_t generation() const { return generation_; }

  // Bytes of one token's K (or V) row in layer `layer`.
  int64_t row_bytes(int32_t layer) const;
  // Copies the K then V rows of positions [0, tokens) of `slot` in layer
  // `layer` to / from `bytes` (2 · tokens · row_bytes(layer) bytes).
  void read(int32_t slot, int32_t layer, int64_t tokens, uint8_t* bytes) const;
  void write(int32_t slot, int32_t layer, int64_t tokens, const uint8_t* bytes);

 private:
  struct LayerStore {
    int64_t n_kv_heads = 0, head_dim = 0;
    uint8_t* k = nullptr;  // [num_pages, kKvPageTokens, n_kv_heads, head_dim]
    uint8_t* v = nullptr;
    int64_t k_pages = 0, v_pages = 0;  // the pages k and v hold (Backend::alloc_growable / grow)
  };
  int64_t page_bytes(const LayerStore& l) const;
  uint8_t* row(uint8_t* store, const LayerStore& l, int32_t page, int64_t slot_in_page) const;
  // The layer's K / V storage grown to `pages` pages, keeping what they hold
  // (a store that already has them is left as it is).
  void resize(LayerStore& l, int64_t pages);
  void grow();
  uint32_t generation_ = 0;

  Backend& backend_;
  DType dtype_;
  std::vector<LayerStore> layers_;
  int64_t num_pages_ = 0;
  // Pages [0, resident_pages_) have been handed out (and made resident) since
  // the storage was created; the free list hands out pages in index order.
  int64_t resident_pages_ = 0;
  std::vector<int32_t> free_;
  std::vector<std::vector<int32_t>> slot_pages_;
};

}  // namespace nm::engine
