#!/usr/bin/env bash
# Checks the CUDA variant where a toolkit is installed (nvcc), GPU or not:
# builds the addon with -DNODE_MAMBA_CUDA=ON into build-cuda/, runs the
# runtime tests and a few kernel tests against it (it must load and run on
# the CPU without a driver, and say why CUDA is unusable), and compiles the
# standalone GPU check (scripts/gpu-check.sh runs it on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
  echo "check-cuda-build: no nvcc on this machine: the CUDA variant was NOT built or tested here"
  exit 0
fi
nvcc --version | tail -n 1
npx cmake-js build -O build-cuda --CDNODE_MAMBA_CUDA=ON >/dev/null
addon="$PWD/build-cuda/Release/node_mamba.node"
NODE_MAMBA_ADDON="$addon" node -e "const i = require('./dist').kernels.runtimeInfo(); if (!i.cuda.compiled) { console.error('check-cuda-build: the addon in build-cuda has no CUDA kernels'); process.exit(1); } console.log('check-cuda-build: ' + i.addonPath + ': cuda ' + JSON.stringify(i.cuda))"
NODE_MAMBA_ADDON="$addon" npx tap --disable-coverage test/runtime.test.ts test/native/norm.test.ts
if [ -d cuda/check ]; then
  cmake -S . -B build-gpu-check -DNODE_MAMBA_GPU_CHECK=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-gpu-check -j "$(nproc)" >/dev/null
  echo "check-cuda-build: compiled build-gpu-check/nm_gpu_check"
fi
