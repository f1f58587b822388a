// Whole forward passes of a Model, on the CPU kernels (csrc/kernels/).
// Callers hold the model's compute mutex and have validated token ids and
// slots (napi/model_binding.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/model.h"

namespace nm::engine {

enum class LogitsMode { None, Last, All };

// Runs `n` tokens of one sequence through the model, starting from (and
// updating) the recurrent state in `slot`. Long inputs are processed in
// chunks of kPrefillChunk (kMoePrefillChunk) tokens carrying the state. Writes logits for the
// last token ([vocab]) or every token ([n, vocab]) to `logits`.
void prefill(Model& m, int32_t slot, const int32_t* tokens, int64_t n, LogitsMode mode, float* logits);

// One decode step for `batch` sequences at once (one new token each):
// weights are read once for all of them. slots must be distinct and live.
// Writes logits [batch, vocab].
void decode_step(Model& m, const int32_t* slots, const int32_t* tokens, int64_t batch, float* logits);

constexpr int64_t kPrefillChunk = 512;
// Models with mixture-of-experts layers prefill in longer chunks: an expert
// sees k/E of a chunk's tokens, and its product packs its weights once per
// chunk, which at 512 tokens (Granite-4.0-H-Tiny-like: ~50 rows an expert)
// was a quarter of the work (bench/NOTES.md).
constexpr int64_t kMoePrefillChunk = 2048;

// Calibration (Quamba's static activation scales): while an observer is
// installed on the calling thread, every linear layer records statistics of
// its input as the layer sees it (after the online Hadamard rotation for
// out_proj) on each call:
//   absmax       max |x| over every call
//   quantiles    per call, the `percentile` quantile of |x| over the call's
//                elements (nearest rank; only when percentile > 0)
//   gram         Σ xᵀx over every input row x, [K, K] row-major in double,
//                symmetric (only when the observer's `gram` is set: GPTQ's
//                Hessians, H = 2/N · gram)
// keyed by the layer's Weight (Model::linear_layers() names them).
struct TapStats {
  float absmax = 0.0f;
  std::vector<float> quantiles;
  std::vector<double> gram;
};
// Channel taps of the SSM path (for its int8 scales), named
// "<mixer>conv1d:input" (conv input channels), Mamba-2 "<mixer>conv1d:output"
// (conv output after SiLU; quantiles over its x channels) and Mamba-1
// "<mixer>x_proj:output" ([dt | B | C]), <mixer> = "backbone.layers.<i>.mixer.":
//   absmax       per channel, max |x| over every call
//   quantiles    as TapStats (only where named above, when percentile > 0)
struct ChannelStats {
  std::vector<float> absmax;
  std::vector<float> quantiles;
};
struct ActivationObserver {
  double percentile = 0.0;  // in (0, 1]; 0: no quantiles
  bool gram = false;        // accumulate TapStats::gram
  std::map<const Weight*, TapStats> taps;
  std::map<std::string, ChannelStats> channels;
};

// Installs `obs` for the forward passes of this thread until the scope ends.
class ObserverScope {
 public:
  explicit ObserverScope(ActivationObserver* obs);
  ~ObserverScope();
  ObserverScope(const ObserverScope&) = delete;
  ObserverScope& operator=(const ObserverScope&) = delete;

 private:
  ActivationObserver* prev_;
};

}  // namespace nm::engine
