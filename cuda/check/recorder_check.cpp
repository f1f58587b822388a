#include "recorder_check.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "engine/step_recorder.h"

namespace nm::check {

namespace {

using engine::StepRecorder;

// A device whose graphs are the held launches (as the device-emulation
// backend's), logging every launch that runs and every graph call.
class LogDevice final : public engine::RecorderDevice {
 public:
  std::vector<std::string> log;
  bool refuse_capture = false;
  bool records_by_launching() const override { return false; }
  bool begin_capture() override {
    log.push_back("begin_capture");
    return !refuse_capture;
  }
  void* end_capture(std::vector<std::function<void()>>&& launches) override {
    log.push_back("end_capture");
    return new std::vector<std::function<void()>>(std::move(launches));
  }
  void launch_graph(void* g) override {
    log.push_back("graph");
    for (auto& f : *static_cast<std::vector<std::function<void()>>*>(g)) f();
  }
  void destroy_graph(void* g) noexcept override { delete static_cast<std::vector<std::function<void()>>*>(g); }
  void* arena_alloc(size_t bytes) override { return std::malloc(bytes); }
  void arena_free(void* p) noexcept override { std::free(p); }
};

struct Ctx {
  LogDevice dev;
  StepRecorder rec{dev, true};
  uint64_t generation = 0;  // Model::memory_generation: where the states are
  // A step of key 1: ops named by `ids` (launch "<step>:<id>"), an alloc
  // after the first op; returns the alloc's pointer.
  void* step(int n, const std::vector<uint32_t>& ids, bool graphable = true, size_t alloc = 64) {
    rec.begin(1, generation, graphable);
    void* p = nullptr;
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string name = std::to_string(n) + ":" + std::to_string(ids[i]);
      rec.op(ids[i], [this, name] { dev.log.push_back(name); });
      if (i == 0) p = rec.alloc(alloc);
    }
    rec.end();
    return p;
  }
  std::string tail(size_t from) const {
    std::string s;
    for (size_t i = from; i < dev.log.size(); ++i) s += (s.empty() ? "" : " ") + dev.log[i];
    return s;
  }
};

RecorderCheckTotals totals;

void expect(bool ok, const std::string& what, const std::string& got = "") {
  ++totals.cases;
  if (!ok) ++totals.failed;
  std::printf("%s recorder                 %s%s%s\n", ok ? "ok  " : "FAIL", what.c_str(), got.empty() ? "" : ": ",
              got.c_str());
}

}  // namespace

RecorderCheckTotals run_recorder_checks() {
  totals = {};
  {
    Ctx c;
    c.step(1, {1, 2, 3});
    c.step(2, {1, 2, 3});
    size_t at = c.dev.log.size();
    void* p3 = c.step(3, {1, 2, 3});
    expect(c.tail(at) == "begin_capture end_capture graph 3:1 3:2 3:3",
           "the third step with the same launches is captured, then run as the graph", c.tail(at));
    at = c.dev.log.size();
    void* p4 = c.step(4, {1, 2, 3});
    expect(c.tail(at) == "graph 3:1 3:2 3:3", "the fourth replays the capture (its own launches held back)", c.tail(at));
    expect(p3 && p3 == p4 && c.rec.owns(p4), "a replay's allocations are the capture's arena addresses");
    at = c.dev.log.size();
    c.step(5, {1, 9, 3});
    expect(c.tail(at) == "5:1 5:9 5:3", "a step that departs runs its held launches, then the rest, in order", c.tail(at));
    at = c.dev.log.size();
    c.step(6, {1, 2, 3});
    expect(c.tail(at) == "6:1 6:2 6:3", "the departure dropped the recording: the next step is traced, eagerly",
           c.tail(at));
    const engine::RecorderStats s = c.rec.stats();
    expect(s.captures == 1 && s.replays == 1 && s.fallbacks == 1, "counts: 1 capture, 1 replay, 1 fallback",
           std::to_string(s.captures) + " " + std::to_string(s.replays) + " " + std::to_string(s.fallbacks));
  }
  {
    Ctx c;
    for (int n = 1; n <= 4; ++n) c.step(n, {1, 2, 3});  // trace, trace, capture, replay
    size_t at = c.dev.log.size();
    c.step(5, {1, 2});
    expect(c.tail(at) == "5:1 5:2", "a step shorter than the recording runs eagerly at its end", c.tail(at));
    for (int n = 1; n <= 4; ++n) c.step(5 + n, {1, 2, 3});
    at = c.dev.log.size();
    c.step(10, {1, 2, 3, 4});
    expect(c.tail(at) == "10:1 10:2 10:3 10:4", "a longer one departs at its extra launch", c.tail(at));
    c.step(11, {1, 2, 3, 4});
    c.step(12, {1, 2, 3, 4});
    at = c.dev.log.size();
    c.step(13, {1, 2, 3, 4});
    c.step(14, {1, 2, 3, 4});
    expect(c.tail(at) == "begin_capture end_capture graph 13:1 13:2 13:3 13:4 graph 13:1 13:2 13:3 13:4",
           "the key's new launches are captured after two steps in a row, then replayed", c.tail(at));
    at = c.dev.log.size();
    c.rec.begin(1, c.generation, true);
    c.rec.op(1, [&c] { c.dev.log.push_back("15:1"); });
    c.rec.flush();  // a download inside the step
    c.rec.op(2, [&c] { c.dev.log.push_back("15:2"); });
    c.rec.end();
    expect(c.tail(at) == "15:1 15:2", "a flush inside a replay runs what was held back and goes on eagerly", c.tail(at));
    at = c.dev.log.size();
    c.step(16, {1, 2, 3, 4});
    expect(c.tail(at) == "graph 13:1 13:2 13:3 13:4", "a flush is not a departure: the next step replays", c.tail(at));
    const engine::RecorderStats s = c.rec.stats();
    expect(s.captures == 3 && s.fallbacks == 3, "counts: 3 captures, 3 fallbacks (two departures, one flush)",
           std::to_string(s.captures) + " " + std::to_string(s.fallbacks));
  }
  {
    Ctx c;
    c.step(1, {1, 2});
    c.step(2, {1, 3});
    c.step(3, {1, 3});
    size_t at = c.dev.log.size();
    c.step(4, {1, 3});
    expect(c.tail(at).rfind("begin_capture", 0) == 0, "capture waits for two steps in a row with the same launches",
           c.tail(at));
    at = c.dev.log.size();
    c.step(5, {1, 3}, false);
    expect(c.tail(at) == "5:1 5:3", "a step that is not graphable runs eagerly", c.tail(at));
  }
  {
    Ctx c;
    c.step(1, {1});
    c.step(2, {1});
    c.rec.begin(1, c.generation, true);
    c.rec.op(1, [&c] { c.dev.log.push_back("3:1"); });
    c.rec.abort();  // an exception left the step
    size_t at = c.dev.log.size();
    c.step(4, {1});
    expect(c.tail(at) == "begin_capture end_capture graph 4:1",
           "an aborted capture runs nothing and the next step captures again", c.tail(at));
  }
  {
    Ctx c;
    for (int n = 1; n <= 4; ++n) c.step(n, {1, 2});  // trace, trace, capture, replay
    c.generation = 1;  // the sequence states moved
    size_t at = c.dev.log.size();
    c.step(5, {1, 2});
    c.step(6, {1, 2});
    expect(c.tail(at) == "5:1 5:2 6:1 6:2", "a new memory generation drops the graphs: its steps run eagerly again",
           c.tail(at));
    at = c.dev.log.size();
    c.step(7, {1, 2});
    expect(c.tail(at) == "begin_capture end_capture graph 7:1 7:2", "and are captured anew", c.tail(at));
  }
  {
    Ctx c;
    c.dev.refuse_capture = true;
    c.step(1, {1});
    c.step(2, {1});
    size_t at = c.dev.log.size();
    c.step(3, {1});
    c.step(4, {1});
    expect(c.tail(at) == "begin_capture 3:1 4:1", "a device that cannot capture leaves the steps eager", c.tail(at));
  }
  {
    Ctx c;
    c.step(1, {1, 2}, true, 64);
    c.step(2, {1, 2}, true, 64);
    size_t at = c.dev.log.size();
    c.step(3, {1, 2}, true, 4096);  // sized for 64: the capture spills and is dropped
    expect(c.tail(at) == "begin_capture end_capture 3:1 3:2",
           "a capture that outgrows its arena is dropped and its launches run eagerly", c.tail(at));
  }
  return totals;
}

}  // namespace nm::check
