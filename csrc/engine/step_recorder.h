// Decode steps replayed as one recorded graph (CUDA graphs; docs/cuda-backend.md
// "Decode steps as graphs"): the host-side logic a device backend shares.
//
// A decode step launches the same kernels with the same arguments every time
// for one batch size, except for the contents of the host index arrays
// (tokens, sequence slots) the backend stages. The recorder watches each
// step of a key (the batch size) as a trace of operations (an id per kernel
// entry, the size of each allocation and of each staged array). Once two
// steps in a row leave the same trace, the third is captured: its
// allocations come from an arena (so that a replay finds the same addresses),
// its launches are recorded by the device instead of run, and at the step's
// end the device turns the record into a graph and launches it. Later steps
// of the key are replayed: the engine's host code runs as always, each entry
// stages its index arrays into the same staging offsets (the graph's copies
// read them when it runs) and hands its launch to the recorder, which checks
// the trace and holds the launch back; at the step's end the graph runs
// instead. Whenever a step departs from the trace (or a capture fails) the
// held-back launches run one by one, in order, and the rest of the step runs
// eagerly: a graph never runs a step it was not recorded from. A replayed
// step that departs drops its key's recording (the key's launches changed:
// an attention block table widened, say); the key is traced and captured
// again.
//
// What the backend provides (RecorderDevice): whether launches during a
// capture are recorded by the device (CUDA: launching on a capturing stream
// records) or must not be called (the device-emulation backend's graphs are
// the recorder's own lists of launches), and the capture / graph calls.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace nm::engine {

class RecorderDevice {
 public:
  virtual ~RecorderDevice() = default;
  // Launches during a capture are recorded by calling them (CUDA), or are
  // only kept by the recorder (false).
  virtual bool records_by_launching() const = 0;
  // Starts a capture; false: this device cannot now (the step runs eagerly).
  virtual bool begin_capture() = 0;
  // The graph of the launches since begin_capture (the recorder's list of
  // them, for a device that does not record), or nullptr when it failed.
  virtual void* end_capture(std::vector<std::function<void()>>&& launches) = 0;
  virtual void launch_graph(void* graph) = 0;
  virtual void destroy_graph(void* graph) noexcept = 0;
  // Memory for a key's arena (released when the recorder goes).
  virtual void* arena_alloc(size_t bytes) = 0;
  virtual void arena_free(void* p) noexcept = 0;
};

struct RecorderStats {
  int64_t captures = 0, replays = 0, fallbacks = 0;
  // Launches in the latest captured step (the backend's count, 0 before
  // any): CUDA the graph's kernel nodes, device emulation the operations the
  // capture held back (one per backend entry).
  int64_t launches_per_step = 0;
};

class StepRecorder {
 public:
  explicit StepRecorder(RecorderDevice& device, bool enabled);
  ~StepRecorder();
  StepRecorder(const StepRecorder&) = delete;
  StepRecorder& operator=(const StepRecorder&) = delete;

  // A decode step of `key` starts (graphable: its launches depend only on the
  // key, the memory `generation` and the staged contents); ends before its
  // results are downloaded. A new generation (the sequence states or the KV
  // cache moved to other memory) drops every graph: they address the old
  // memory.
  void begin(int64_t key, uint64_t generation, bool graphable);
  void end();
  // The step ended by an exception: a capture is dropped, nothing held back
  // runs.
  void abort() noexcept;

  // A kernel entry's launch: run now (eager), recorded (capture) or held
  // back until the step's end (replay). `id` names the entry kind.
  void op(uint32_t id, std::function<void()> launch);
  // A staged copy of `bytes` bytes (its launch as op's).
  void staged(size_t bytes, std::function<void()> copy);
  // Memory for the step: from the key's arena while capturing or replaying
  // (nullptr: not the recorder's, allocate as usual).
  void* alloc(size_t bytes);
  // Whether p is arena memory (then there is nothing to free).
  bool owns(const void* p) const;
  // Before a synchronous operation inside a step (an upload, a download, a
  // full staging buffer): held-back launches run and the step goes on
  // eagerly.
  void flush();

  bool deferring() const { return mode_ == Mode::Capture || mode_ == Mode::Replay; }
  // Readable from any thread.
  RecorderStats stats() const { return {captures_.load(), replays_.load(), fallbacks_.load()}; }

 private:
  enum class Mode { Off, Eager, Trace, Capture, Replay };
  struct Key {
    std::vector<uint64_t> trace;   // of the last eager step
    int same = 0;                  // eager steps in a row with that trace
    void* graph = nullptr;
    uint8_t* arena = nullptr;
    size_t arena_bytes = 0;
    bool failed = false;           // a capture failed: stays eager
  };

  void note(uint64_t t);
  // op / staged: the trace entry, then run, record or hold back the launch.
  void dispatch(uint64_t trace, std::function<void()> launch);
  void clear() noexcept;
  void fall_back();
  void forget(Key& k);
  size_t arena_need(const std::vector<uint64_t>& trace) const;

  RecorderDevice& device_;
  bool enabled_;
  Mode mode_ = Mode::Off;
  Key* key_ = nullptr;
  std::map<int64_t, Key> keys_;
  uint64_t generation_ = ~0ull;
  std::vector<uint64_t> trace_;
  size_t pos_ = 0;                 // replay: next trace entry to match
  size_t arena_off_ = 0;
  bool capture_broken_ = false;
  bool departed_ = false;          // a replayed step left its key's trace
  std::vector<std::function<void()>> held_;
  std::vector<std::pair<uint8_t*, size_t>> spill_;  // memory past an arena, freed at the next step
  std::atomic<int64_t> captures_{0}, replays_{0}, fallbacks_{0};
};

}  // namespace nm::engine
