#!/usr/bin/env bash
# Guards the per-ISA build: an object compiled with AVX2 / AVX-512 flags must
# not define weak (inline / template) symbols, or the linker could pick that
# copy for code that runs on a CPU without those instructions (an ODR trap).
# Run after a cmake-js build; checks build/CMakeFiles/**/_avx{2,512,512vnni}.cpp.o.
set -euo pipefail
cd "$(dirname "$0")/.."
objs=$(find build -name '*_avx2.cpp.o' -o -name '*_avx512.cpp.o' -o -name '*_avx512vnni.cpp.o' | sort)
[ -n "$objs" ] || { echo "check-isa-symbols: no ISA objects under build/ (build first)"; exit 1; }
bad=0
for o in $objs; do
  weak=$(nm -C "$o" | awk '$2 ~ /^[WVu]$/' || true)
  if [ -n "$weak" ]; then
    echo "check-isa-symbols: $o defines weak symbols:"; echo "$weak" | head -n 20; bad=1
  fi
done
[ $bad -eq 0 ] && echo "check-isa-symbols: $(echo "$objs" | wc -l) ISA objects, no weak symbols"
exit $bad
