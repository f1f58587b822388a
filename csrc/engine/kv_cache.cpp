#include "engine/kv_cache.h"

#include "engine/backend.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace nm::engine {

KvCache::~KvCache() {
  for (LayerStore& l : layers_) {
    if (l.k) backend_.release_growable(l.k, (size_t)(l.k_pages * page_bytes(l)));
    if (l.v) backend_.release_growable(l.v, (size_t)(l.v_pages * page_bytes(l)));
  }
}

int32_t KvCache::add_layer(int64_t n_kv_heads, int64_t head_dim) {
  LayerStore l;
  l.n_kv_heads = n_kv_heads;
  l.head_dim = head_dim;
  layers_.push_back(l);
  if (num_pages_ > 0) resize(layers_.back(), num_pages_);
  return (int32_t)layers_.size() - 1;
}

void KvCache::resize(LayerStore& l, int64_t pages) {
  const int64_t pb = page_bytes(l);
  auto grow_store = [&](uint8_t*& store, int64_t& have) {
    if (store && have >= pages) return;
    store = static_cast<uint8_t*>(store ? backend_.grow(store, (size_t)(have * pb), (size_t)(pages * pb))
                                        : backend_.alloc_growable((size_t)(pages * pb)));
    have = pages;
  };
  grow_store(l.k, l.k_pages);
  grow_store(l.v, l.v_pages);
}

int64_t KvCache::row_bytes(int32_t layer) const {
  const LayerStore& l = layers_[(size_t)layer];
  return l.n_kv_heads * l.head_dim * (int64_t)dtype_size(dtype_);
}

int64_t KvCache::page_bytes(const LayerStore& l) const {
  return kKvPageTokens * l.n_kv_heads * l.head_dim * (int64_t)dtype_size(dtype_);
}

void KvCache::grow() {
  const int64_t grown = std::max<int64_t>(4, num_pages_ * 2);
  if (grown > INT32_MAX) throw std::runtime_error("KV cache: too many pages");
  for (LayerStore& l : layers_) resize(l, grown);
  for (int64_t p = grown - 1; p >= num_pages_; --p) free_.push_back((int32_t)p);
  num_pages_ = grown;
  ++generation_;
}

void KvCache::reserve(int32_t slot, int64_t tokens) {
  if (layers_.empty()) return;  // no attention layers: nothing to page
  if ((size_t)slot >= slot_pages_.size()) slot_pages_.resize((size_t)slot + 1);
  std::vector<int32_t>& pages = slot_pages_[(size_t)slot];
  const int64_t need = (tokens + kKvPageTokens - 1) / kKvPageTokens;
  int64_t hi = -1;  // the highest page handed out here
  while ((int64_t)pages.size() < need) {
    if (free_.empty()) grow();
    hi = std::max<int64_t>(hi, free_.back());
    pages.push_back(free_.back());
    free_.pop_back();
  }
  // Pages handed out for the first time since the storage was created (they
  // come in index order: [resident_pages_, hi]): their memory mapped now, in
  // one call per store, not faulted in token by token by the decode steps
  // that append to them.
  if (hi >= resident_pages_) {
    for (LayerStore& l : layers_) {
      const int64_t pb = page_bytes(l), n = hi + 1 - resident_pages_;
      backend_.make_resident(l.k + resident_pages_ * pb, (size_t)(n * pb), true);
      backend_.make_resident(l.v + resident_pages_ * pb, (size_t)(n * pb), true);
    }
    resident_pages_ = hi + 1;
  }
}

void KvCache::release(int32_t slot) {
  if ((size_t)slot >= slot_pages_.size()) return;
  std::vector<int32_t>& pages = slot_pages_[(size_t)slot];
  free_.insert(free_.end(), pages.rbegin(), pages.rend());
  pages.clear();
}

const std::vector<int32_t>& KvCache::pages(int32_t slot) const {
  static const std::vector<int32_t> none;
  return (size_t)slot < slot_pages_.size() ? slot_pages_[(size_t)slot] : none;
}

PagedKvCache KvCache::view(int32_t layer) {
  LayerStore& l = layers_[(size_t)layer];
  PagedKvCache c;
  c.dtype = dtype_;
  c.k = l.k;
  c.v = l.v;
  c.num_pages = num_pages_;
  c.page_size = kKvPageTokens;
  c.n_kv_heads = l.n_kv_heads;
  c.head_dim = l.head_dim;
  c.head_stride = l.head_dim;
  c.slot_stride = l.n_kv_heads * l.head_dim;
  c.page_stride = kKvPageTokens * c.slot_stride;
  return c;
}

uint8_t* KvCache::row(uint8_t* store, const LayerStore& l, int32_t page, int64_t slot_in_page) const {
  const int64_t rb = l.n_kv_heads * l.head_dim * (int64_t)dtype_size(dtype_);
  return store + (int64_t)page * page_bytes(l) + slot_in_page * rb;
}

void KvCache::read(int32_t slot, int32_t layer, int64_t tokens, uint8_t* bytes) const {
  const LayerStore& l = layers_[(size_t)layer];
  const std::vector<int32_t>& pages = this->pages(slot);
  if ((int64_t)pages.size() * kKvPageTokens < tokens) throw std::logic_error("KV cache: read past the reserved pages");
  const int64_t rb = row_bytes(layer);
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t page = pages[(size_t)(t / kKvPageTokens)];
    backend_.download(bytes + t * rb, row(l.k, l, page, t % kKvPageTokens), (size_t)rb);
    backend_.download(bytes + (tokens + t) * rb, row(l.v, l, page, t % kKvPageTokens), (size_t)rb);
  }
}

void KvCache::write(int32_t slot, int32_t layer, int64_t tokens, const uint8_t* bytes) {
  reserve(slot, tokens);
  LayerStore& l = layers_[(size_t)layer];
  const std::vector<int32_t>& pages = slot_pages_[(size_t)slot];
  const int64_t rb = row_bytes(layer);
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t page = pages[(size_t)(t / kKvPageTokens)];
    backend_.upload(row(l.k, l, page, t % kKvPageTokens), bytes + t * rb, (size_t)rb);
    backend_.upload(row(l.v, l, page, t % kKvPageTokens), bytes + (tokens + t) * rb, (size_t)rb);
  }
}

}  // namespace nm::engine
