#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ and runs the native tests (or the tap files given as arguments)
# against it. Node itself is not instrumented, so the sanitizer runtimes are
# preloaded; leak detection is off because Node keeps memory until exit.
set -euo pipefail
cd "$(dirname "$0")/.."

npx cmake-js build --out build-asan --CDNODE_MAMBA_ASAN=ON --CDCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
addon="$PWD/build-asan/Release/node_mamba.node"
[ -f "$addon" ] || addon="$PWD/build-asan/RelWithDebInfo/node_mamba.node"

asan_rt=$(g++ -print-file-name=libasan.so)
ubsan_rt=$(g++ -print-file-name=libubsan.so)
files=("$@")
# By default the native tests and the model tests that drive native code
# (the JavaScript-only ones, the references, the option checks and the
# trained fixtures' long forwards over paths the logits tests already take,
# are left out: no native code of their own, minutes under the sanitizers).
model_tests=(chained_step concurrency_stress device_emulation generate greedy_step hybrid_logits load_errors logits
             rounding_levels sampled_step sequence stalled_worker)
if [ ${#files[@]} -eq 0 ]; then
  files=(test/native test/quant/quantize.test.ts test/quant/hadamard.test.ts test/quant/gptq.test.ts test/runtime.test.ts)
  for m in "${model_tests[@]}"; do files+=("test/model/$m.test.ts"); done
fi

echo "test-asan: $addon"
# Node's own allocations go through the preloaded runtime too: a shorter
# allocation stack (8 frames, not 30) and a 32 MB quarantine of freed blocks
# (not 256) took a small test file from ~13 s to ~9 s here; use-after-free
# of a block freed more than 32 MB of frees ago goes unseen.
LD_PRELOAD="$asan_rt:$ubsan_rt" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:malloc_context_size=8:quarantine_size_mb=32" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
NODE_MAMBA_ADDON="$addon" \
  npx tap --disable-coverage --timeout=600 "${files[@]}"
