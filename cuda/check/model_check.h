// Whole models on an engine backend against the CPU engine's logits: the
// cases of cuda/check/models (scripts/write-gpu-check-models.js).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"

namespace nm::check {

struct ModelCheckTotals {
  int cases = 0, failed = 0;
  double worst = 0.0;  // largest max |Δ| / max |logit| of a passing case
};

// Every <dir>/*/manifest.txt, loaded on `kind` (Cuda on a GPU,
// DeviceEmulation in the host emulation); one line per model.
ModelCheckTotals run_model_checks(const std::string& dir, engine::BackendKind kind);

// The engine's configuration from load-argument keys (lib/native/types.ts
// NativeLoadArgs spelled as text) and a layer list; errors name `what`.
engine::ModelConfig config_from_keys(const std::map<std::string, std::string>& keys,
                                     const std::vector<std::pair<std::string, std::string>>& layers,
                                     const std::string& what);

}  // namespace nm::check
