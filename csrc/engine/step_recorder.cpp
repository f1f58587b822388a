// Decode steps recorded once and replayed as a graph (step_recorder.h).
#include "engine/step_recorder.h"

#include <utility>

namespace nm::engine {

namespace {

// Trace entries: the kind in the top two bits, an entry id or a size below.
constexpr uint64_t kOp = 1ull << 62, kAlloc = 2ull << 62, kStaged = 3ull << 62;
constexpr size_t kArenaAlign = 256;

size_t aligned(size_t bytes) { return (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign; }

}  // namespace

StepRecorder::StepRecorder(RecorderDevice& device, bool enabled) : device_(device), enabled_(enabled) {}

StepRecorder::~StepRecorder() {
  clear();
  for (auto& s : spill_) device_.arena_free(s.first);
}

void StepRecorder::clear() noexcept {
  for (auto& kv : keys_) {
    if (kv.second.graph) device_.destroy_graph(kv.second.graph);
    if (kv.second.arena) device_.arena_free(kv.second.arena);
  }
  keys_.clear();
}

size_t StepRecorder::arena_need(const std::vector<uint64_t>& trace) const {
  size_t n = 0;
  for (uint64_t t : trace)
    if ((t & (3ull << 62)) == kAlloc) n += aligned((size_t)(t & ~(3ull << 62)));
  return n;
}

void StepRecorder::begin(int64_t key, uint64_t generation, bool graphable) {
  for (auto& s : spill_) device_.arena_free(s.first);
  spill_.clear();
  trace_.clear();
  held_.clear();
  pos_ = 0;
  arena_off_ = 0;
  capture_broken_ = false;
  departed_ = false;
  key_ = nullptr;
  mode_ = Mode::Eager;
  if (!enabled_ || !graphable) return;
  if (generation != generation_) {
    clear();
    generation_ = generation;
  }
  Key& k = keys_[key];
  key_ = &k;
  if (k.graph) {
    mode_ = Mode::Replay;
    return;
  }
  mode_ = Mode::Trace;
  if (k.failed || k.same < 2) return;
  if (!k.arena) {
    k.arena_bytes = arena_need(k.trace);
    try {
      k.arena = static_cast<uint8_t*>(device_.arena_alloc(k.arena_bytes > 0 ? k.arena_bytes : kArenaAlign));
    } catch (...) {
      k.failed = true;
      return;
    }
  }
  if (device_.begin_capture()) mode_ = Mode::Capture;
  else k.failed = true;
}

void StepRecorder::note(uint64_t t) {
  switch (mode_) {
    case Mode::Trace:
    case Mode::Capture:
      trace_.push_back(t);
      break;
    case Mode::Replay:
      if (pos_ < key_->trace.size() && key_->trace[pos_] == t) {
        ++pos_;
      } else {
        departed_ = true;
        fall_back();
      }
      break;
    default:
      break;
  }
}

void StepRecorder::op(uint32_t id, std::function<void()> launch) { dispatch(kOp | id, std::move(launch)); }

void StepRecorder::staged(size_t bytes, std::function<void()> copy) { dispatch(kStaged | bytes, std::move(copy)); }

void StepRecorder::dispatch(uint64_t trace, std::function<void()> launch) {
  note(trace);
  switch (mode_) {
    case Mode::Capture:
      held_.push_back(launch);
      if (device_.records_by_launching()) {
        try {
          launch();
        } catch (...) {
          capture_broken_ = true;  // run again eagerly at the step's end, where an error is reported
        }
      }
      break;
    case Mode::Replay:
      held_.push_back(std::move(launch));
      break;
    default:
      launch();
  }
}

void* StepRecorder::alloc(size_t bytes) {
  note(kAlloc | bytes);
  if (mode_ != Mode::Capture && mode_ != Mode::Replay) return nullptr;
  const size_t need = aligned(bytes > 0 ? bytes : 1);
  if (arena_off_ + need <= key_->arena_bytes) {
    void* p = key_->arena + arena_off_;
    arena_off_ += need;
    return p;
  }
  // Past the arena: the step left the trace it was sized by. Memory that
  // stays valid through this step's eager rerun.
  capture_broken_ = true;
  void* p = device_.arena_alloc(need);
  spill_.emplace_back(static_cast<uint8_t*>(p), need);
  if (mode_ == Mode::Replay) fall_back();
  return p;
}

bool StepRecorder::owns(const void* p) const {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (const auto& kv : keys_)
    if (kv.second.arena && b >= kv.second.arena && b < kv.second.arena + kv.second.arena_bytes) return true;
  for (const auto& s : spill_)
    if (b >= s.first && b < s.first + s.second) return true;
  return false;
}

void StepRecorder::fall_back() {
  // Replay: the held-back launches, in order; the rest of the step eagerly.
  std::vector<std::function<void()>> held = std::move(held_);
  held_.clear();
  mode_ = Mode::Eager;
  ++fallbacks_;
  for (auto& f : held) f();
}

void StepRecorder::flush() {
  if (mode_ == Mode::Replay) {
    fall_back();
  } else if (mode_ == Mode::Capture) {
    void* g = device_.end_capture(std::vector<std::function<void()>>(held_));
    if (g) device_.destroy_graph(g);
    key_->failed = true;
    std::vector<std::function<void()>> held = std::move(held_);
    held_.clear();
    mode_ = Mode::Eager;
    ++fallbacks_;
    for (auto& f : held) f();
  }
}

void StepRecorder::end() {
  switch (mode_) {
    case Mode::Trace:
      if (trace_ == key_->trace) {
        ++key_->same;
      } else {
        key_->trace = trace_;
        key_->same = 1;
        if (key_->arena) {  // sized for another trace
          device_.arena_free(key_->arena);
          key_->arena = nullptr;
        }
      }
      break;
    case Mode::Capture: {
      const bool ok = !capture_broken_ && trace_ == key_->trace;
      void* g = device_.end_capture(std::vector<std::function<void()>>(held_));
      if (ok && g) {
        key_->graph = g;
        ++captures_;
        held_.clear();
        device_.launch_graph(g);
      } else {
        if (g) device_.destroy_graph(g);
        key_->failed = true;
        ++fallbacks_;
        std::vector<std::function<void()>> held = std::move(held_);
        held_.clear();
        mode_ = Mode::Eager;
        for (auto& f : held) f();
      }
      break;
    }
    case Mode::Replay:
      if (pos_ == key_->trace.size()) {
        held_.clear();
        ++replays_;
        device_.launch_graph(key_->graph);
      } else {
        departed_ = true;
        fall_back();
      }
      break;
    default:
      break;
  }
  if (departed_ && key_) forget(*key_);
  mode_ = Mode::Off;
}

void StepRecorder::forget(Key& k) {
  // The step's launches changed (an attention block table widened, say): the
  // recording no longer describes the key's steps. Its arena served this
  // step's allocations, so it is freed with the spill at the next step; the
  // key is traced and captured anew.
  if (k.graph) device_.destroy_graph(k.graph);
  if (k.arena) spill_.emplace_back(k.arena, k.arena_bytes);
  k = Key{};
}

void StepRecorder::abort() noexcept {
  if (mode_ == Mode::Capture) {
    try {
      void* g = device_.end_capture({});
      if (g) device_.destroy_graph(g);
    } catch (...) {
    }
  }
  held_.clear();
  mode_ = Mode::Off;
}

}  // namespace nm::engine
