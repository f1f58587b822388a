#include "engine/buffers.h"

#include <stdexcept>

#include "engine/backend.h"

namespace nm::engine {

namespace {
thread_local BufPool* t_buf_pool = nullptr;
// A request takes a free block of at most this many times its size.
constexpr size_t kMaxFitRatio = 4;
}  // namespace

void BufCache::take(BufPool& pool) {
  std::lock_guard<std::mutex> lk(mu_);
  pool.blocks.swap(blocks_);
  pool.caps.swap(caps_);
}

void BufCache::give(BufPool& pool) noexcept {
  std::lock_guard<std::mutex> lk(mu_);
  for (size_t i = 0; i < pool.blocks.size(); ++i) {
    try {
      blocks_.push_back(pool.blocks[i]);
      caps_.push_back(pool.caps[i]);
    } catch (...) {
      if (blocks_.size() > caps_.size()) blocks_.pop_back();
      pool.backend->release(pool.blocks[i]);
    }
  }
  pool.blocks.clear();
  pool.caps.clear();
}

void BufCache::release(Backend& backend) noexcept {
  std::lock_guard<std::mutex> lk(mu_);
  for (float* b : blocks_) backend.release(b);
  blocks_.clear();
  caps_.clear();
}

Backend* current_buf_backend() { return t_buf_pool ? t_buf_pool->backend : nullptr; }

BufScope::BufScope(Backend& backend, BufCache* cache) : prev_(t_buf_pool), cache_(cache) {
  pool_.backend = &backend;
  if (cache_) cache_->take(pool_);
  t_buf_pool = &pool_;
}

BufScope::~BufScope() {
  t_buf_pool = prev_;
  if (cache_) cache_->give(pool_);
  for (float* b : pool_.blocks) pool_.backend->release(b);
}

Buf::Buf(size_t n) : pool_(t_buf_pool) {
  if (!pool_) throw std::logic_error("node-mamba: an activation buffer outside a BufScope");
  // Best fit among the free blocks, if it is at most kMaxFitRatio times the
  // request: a decode step's small buffers put at the starts of a prefill's
  // multi-MB blocks (page-aligned alike) ran measurably slower than in blocks
  // of their own.
  size_t best = pool_->blocks.size();
  for (size_t i = 0; i < pool_->blocks.size(); ++i)
    if (pool_->caps[i] >= n && pool_->caps[i] / kMaxFitRatio <= n &&
        (best == pool_->blocks.size() || pool_->caps[i] < pool_->caps[best]))
      best = i;
  if (best < pool_->blocks.size()) {
    block_ = pool_->blocks[best];
    cap_ = pool_->caps[best];
    pool_->blocks.erase(pool_->blocks.begin() + (std::ptrdiff_t)best);
    pool_->caps.erase(pool_->caps.begin() + (std::ptrdiff_t)best);
    return;
  }
  cap_ = n > 0 ? n : 1;
  block_ = static_cast<float*>(pool_->backend->alloc(cap_ * sizeof(float)));
}

Buf::~Buf() {
  // Back to the pool (freed with it), even when a push fails.
  try {
    pool_->blocks.push_back(block_);
    pool_->caps.push_back(cap_);
  } catch (...) {
    pool_->backend->release(block_);
  }
}

}  // namespace nm::engine
