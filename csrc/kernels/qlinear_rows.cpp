#include "kernels/qlinear_rows.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <utility>

#include "cpu/threadpool.h"
#include "kernels/qlinear_levels.h"

namespace nm {

namespace {

// The calling thread's scratch for the rows (the batched 4-bit paths'
// unpacked weights, the panel path's packed ones), reused across calls.
uint8_t* rows_scratch(int64_t bytes) {
  thread_local std::vector<char> buf;
  // (a valid pointer even for K = 0: the paths that take one may pass it to memset)
  return bytes >= 0 ? reinterpret_cast<uint8_t*>(scratch<float>(buf, bytes / 4 + 1)) : nullptr;
}

// The weight rows of units [u0, u1) of `unit` rows each, at the active level.
void rows_of_units(const QLinearArgs& a, const QInput& in, int64_t unit, int64_t u0, int64_t u1, int64_t scratch_bytes) {
  qlinear_rows_for_level(a, in, u0 * unit, std::min(a.N, u1 * unit), rows_scratch(scratch_bytes));
}

// A decode call as recomputable work (cpu::RecomputableWork): a copy of the
// arguments and of the prepared int8 inputs, so that a worker finishing
// after the call touches only this object and the weights; the workers'
// outputs go to stage_ ([M, N]) and the caller copies them out.
class QRowsWork final : public cpu::RecomputableWork {
 public:
  // Whether `in` holds only what copy_inputs copies (int8 rows, their sums, Q8 block scales).
  static bool copyable(const QInput& in) { return in.q && !in.q16 && !in.xf && !in.xg && !in.xsum8 && !in.xi; }

  void set(const QLinearArgs& a, const QInput& in, int64_t unit, int64_t scratch_bytes) {
    a_ = a;
    a_.x = nullptr;  // (the rows read only in_)
    a_.xq = nullptr;
    a_.x_rows = nullptr;
    unit_ = unit;
    scratch_bytes_ = scratch_bytes;
    copy_inputs(in);
    if ((int64_t)stage_.size() < a.M * a.N) stage_.resize((size_t)(a.M * a.N));
  }

  void compute(int64_t b, int64_t e, bool caller) override {
    QLinearArgs t = a_;
    if (!caller) {
      t.y = stage_.data();
      t.y_stride = a_.N;
    }
    rows_of_units(t, in_, unit_, b, e, scratch_bytes_);
  }

  void commit(int64_t b, int64_t e) override {
    const int64_t n0 = b * unit_, n1 = std::min(a_.N, e * unit_);
    for (int64_t m = 0; m < a_.M; ++m)
      std::memcpy(a_.y + m * a_.y_stride + n0, stage_.data() + m * a_.N + n0, (size_t)(n1 - n0) * sizeof(float));
  }

 private:
  // Each array of `in` that the rows read, into one block (64-byte aligned parts).
  void copy_inputs(const QInput& in) {
    const int64_t M = a_.M, G = std::max<int64_t>(in.groups, 1), nb = a_.K / 32;
    struct Part {
      const void* src;
      int64_t bytes;
      const void** dst;
    };
    in_ = in;
    const Part parts[] = {
        {in.q, M * in.Kp, reinterpret_cast<const void**>(&in_.q)},
        {in.gsum, M * G * 4, reinterpret_cast<const void**>(&in_.gsum)},
        {in.rowsum, M * 4, reinterpret_cast<const void**>(&in_.rowsum)},
        {in.nan_row, M, reinterpret_cast<const void**>(&in_.nan_row)},
        {in.q8_scale, M * nb * 4, reinterpret_cast<const void**>(&in_.q8_scale)},
        {in.q8_sum, M * nb * 4, reinterpret_cast<const void**>(&in_.q8_sum)},
    };
    int64_t total = 64;
    for (const Part& p : parts)
      if (p.src) total += (p.bytes + 63) / 64 * 64;
    if ((int64_t)inputs_.size() < total) inputs_.resize((size_t)total);
    char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(inputs_.data()) + 63) / 64 * 64);
    for (const Part& p : parts) {
      if (!p.src) continue;
      std::memcpy(base, p.src, (size_t)p.bytes);
      *p.dst = base;
      base += (p.bytes + 63) / 64 * 64;
    }
  }

  QLinearArgs a_;
  QInput in_;
  int64_t unit_ = 1, scratch_bytes_ = -1;
  std::vector<char> inputs_;
  std::vector<float> stage_;
};

// A work object of the calling thread that no late worker holds (the pool
// keeps the last call's until the next call, a stalled worker its own).
std::shared_ptr<QRowsWork> free_work() {
  thread_local std::vector<std::shared_ptr<QRowsWork>> cache;
  for (auto& w : cache) {
    if (w.use_count() != 1) continue;
    // (pairs with the release of the last other holder's count: its
    // writes to the work happen before this thread's reuse)
    std::atomic_thread_fence(std::memory_order_acquire);
    return w;
  }
  cache.push_back(std::make_shared<QRowsWork>());
  return cache.back();
}

// The largest output a recomputable call stages (each calling thread keeps
// a few work objects of the largest size it has seen): a batch-8 step's
// lm_head at a large vocabulary takes the ordinary ranges instead.
constexpr int64_t kMaxStagedBytes = 1 << 20;

}  // namespace

void run_qlinear_rows(const QLinearArgs& a, const QInput& in, int64_t unit, std::vector<int64_t> unit_ends,
                      int64_t scratch_bytes) {
  if (cpu::recompute_allowed() && in.stream && QRowsWork::copyable(in) && unit_ends.size() > 1 &&
      a.M * a.N * (int64_t)sizeof(float) <= kMaxStagedBytes && cpu::pool().size() > 1) {
    std::shared_ptr<QRowsWork> w = free_work();
    w->set(a, in, unit, scratch_bytes);
    cpu::pool().run_recomputable(std::move(unit_ends), w);
    return;
  }
  cpu::pool().run_ranges(std::move(unit_ends),
                         [&](int64_t u0, int64_t u1) { rows_of_units(a, in, unit, u0, u1, scratch_bytes); });
}

}  // namespace nm
