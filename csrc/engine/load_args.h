// The model half of the engine's load arguments (lib/native/types.ts
// NativeLoadArgs without files and tensors), read from any source of named
// values: the JavaScript object (napi/model_binding.cpp) or the GPU check's
// model manifests (cuda/check/model_check.cpp). One parser, one set of
// checks; each source reports a failure in its own way (a JS TypeError /
// RangeError, a manifest error) naming the key.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"

namespace nm::engine {

class LoadArgs {
 public:
  virtual ~LoadArgs() = default;
  virtual bool has(const char* key) const = 0;
  // The value of a present key: an integer in [min, max], a number, a
  // boolean, a string (each a type or range error otherwise).
  virtual int64_t integer(const char* key, int64_t min, int64_t max) const = 0;
  virtual double number(const char* key) const = 0;
  virtual bool boolean(const char* key) const = 0;
  virtual std::string text(const char* key) const = 0;
  // The `layers` list as (mixer, ffn) names; false when there is none.
  virtual bool layers(std::vector<std::pair<std::string, std::string>>& out) const = 0;
  [[noreturn]] virtual void type_error(const std::string& key, const std::string& what) const = 0;
  [[noreturn]] virtual void range_error(const std::string& key, const std::string& what) const = 0;

  int64_t integer_or(const char* key, int64_t min, int64_t max, int64_t def) const {
    return has(key) ? integer(key, min, max) : def;
  }
  double number_or(const char* key, double def) const { return has(key) ? number(key) : def; }
  bool boolean_or(const char* key, bool def) const { return has(key) ? boolean(key) : def; }
  std::string text_or(const char* key, const std::string& def) const { return has(key) ? text(key) : def; }
};

// dModel, nLayer, vocabSize, layers (or arch), the Mamba, attention and
// feed-forward sizes, the quantization switches, the multipliers,
// contextSize and kvDtype, with their defaults and range checks.
ModelConfig parse_model_config(const LoadArgs& a);

}  // namespace nm::engine
