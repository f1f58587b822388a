// Whole models on an engine backend against the CPU engine's logits: the
// cases of cuda/check/models (scripts/write-gpu-check-models.js).
#pragma once
#include <string>

#include "engine/backend.h"

namespace nm::check {

struct ModelCheckTotals {
  int cases = 0, failed = 0;
  double worst = 0.0;  // largest max |Δ| / max |logit| of a passing case
};

// Every <dir>/*/manifest.txt, loaded on `kind` (Cuda on a GPU,
// DeviceEmulation in the host emulation); one line per model.
ModelCheckTotals run_model_checks(const std::string& dir, engine::BackendKind kind);

}  // namespace nm::check
