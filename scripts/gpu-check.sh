#!/usr/bin/env bash
# The CUDA backend on a machine with an NVIDIA GPU (no Node.js or network
# needed): builds the standalone check (cmake -DNODE_MAMBA_GPU_CHECK=ON,
# Release, into build-gpu-check/), then runs
#   nm_gpu_check --emulate  the CUDA kernels' per-thread math on the host
#                           against the CPU kernels, and the whole models of
#                           cuda/check/models on the device-emulation
#                           backend (as CI does)
#   NODE_MAMBA_CUDA_PDL=1 nm_gpu_check --no-bench  the GEMV cases and the
#                           whole models with programmatic launches
#   nm_gpu_check            the real CUDA kernels against the CPU kernels
#                           at awkward sizes, the whole models of
#                           cuda/check/models on the CUDA backend against
#                           the CPU engine's logits (shipped with the
#                           models), then timings at the benchmark
#                           shapes (mamba-130m, 1.4B, Mamba-2 decode) with
#                           the device copy bandwidth; the table comes last.
# Exits non-zero on any mismatch, error, or when no usable device is found
# (2). The CUDA backend issue (issue 10) wants the table recorded in
# bench/results/ together with the card and the commit (git rev-parse HEAD).
#
# Environment: NODE_MAMBA_CUDA_ARCHS (default: the native architecture of
# the GPU found here, else CMakeLists.txt's list), BUILD_DIR, GPU_CHECK_COMMIT
# (the commit to report, for a copy of the tree whose .git is not that
# commit's, e.g. a working tree copied to a lent GPU machine: pass
# GPU_CHECK_COMMIT=$(git rev-parse HEAD) from the checkout it came from).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build-gpu-check}"
archs="${NODE_MAMBA_CUDA_ARCHS:-}"
if [ -z "$archs" ] && command -v nvidia-smi >/dev/null 2>&1; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')" || cap=""
  [ -n "$cap" ] && archs="$cap"
fi
if [ -n "${GPU_CHECK_COMMIT:-}" ]; then
  commit="$GPU_CHECK_COMMIT (given by GPU_CHECK_COMMIT)"
elif commit="$(git rev-parse HEAD 2>/dev/null)"; then
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit (with uncommitted changes)"
else
  commit="unknown (not a git checkout)"
fi
echo "gpu-check: commit $commit"
nvcc --version | tail -n 1
cfg=(-S . -B "$build" -DNODE_MAMBA_GPU_CHECK=ON -DCMAKE_BUILD_TYPE=Release)
[ -n "$archs" ] && cfg+=("-DNODE_MAMBA_CUDA_ARCHS=$archs")
cmake "${cfg[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
if ! "$build/nm_gpu_check" --emulate >"$build/emulate.log"; then
  grep -v '^ok ' "$build/emulate.log"
  echo "gpu-check: nm_gpu_check --emulate FAILED (log: $build/emulate.log)"
  exit 1
fi
tail -n 1 "$build/emulate.log"
# The decode GEMVs launched programmatically (NODE_MAMBA_CUDA_PDL=1,
# cuda/pdl.cuh; off by default until timed): their cases and the whole
# models again, summary only (log: $build/gpu-check-pdl.log).
# A failure here still lets the main run below print its table; the script
# then exits 1.
pdl_failed=0
if ! NODE_MAMBA_CUDA_PDL=1 "$build/nm_gpu_check" --no-bench \
  --skip elementwise,norm,conv,scan,ssd,attention,hadamard,q8,moe,shapes,recorder >"$build/gpu-check-pdl.log"; then
  grep -v '^ok ' "$build/gpu-check-pdl.log" || true
  echo "gpu-check: the programmatic-launch pass FAILED (log: $build/gpu-check-pdl.log)"
  pdl_failed=1
fi
echo "programmatic launches (NODE_MAMBA_CUDA_PDL=1): $(tail -n 1 "$build/gpu-check-pdl.log" | cut -c1-60)"
# The device run: every case line, then the timing table last (also in
# $build/gpu-check.log).
"$build/nm_gpu_check" | tee "$build/gpu-check.log"
if [ "$pdl_failed" -ne 0 ]; then
  echo "gpu-check: FAILED with NODE_MAMBA_CUDA_PDL=1 (above the table; the table is the default path's)"
  exit 1
fi
