// The decode-step recorder's logic (csrc/engine/step_recorder.h) on a
// device that logs what runs: warm-up, capture, replay, departures from the
// recording, flushes, aborts. Host only; part of nm_gpu_check in both modes.
#pragma once

namespace nm::check {

struct RecorderCheckTotals {
  int cases = 0, failed = 0;
};

RecorderCheckTotals run_recorder_checks();

}  // namespace nm::check
