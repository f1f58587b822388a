#!/usr/bin/env bash
# Checks the CUDA variant where a toolkit is installed (nvcc), GPU or not:
# builds the addon with -DNODE_MAMBA_CUDA=ON into build-cuda/, runs the
# runtime tests and a few kernel tests against it (it must load and run on
# the CPU without a driver, and say why CUDA is unusable), and runs the
# standalone GPU check, built beside it from the same CUDA library, in its
# host emulation (nm_gpu_check --emulate: the CUDA kernels' per-thread math
# against the CPU kernels; the real kernels run in scripts/gpu-check.sh on a
# GPU machine), and the whole models of cuda/check/models on the engine's
# device-emulation backend; then packs the optional CUDA package from the
# addon and checks that an installed copy is what node-mamba loads.
#
# NODE_MAMBA_CUDA_ARCHS (e.g. "80-virtual" in CI, where every
# architecture's machine code costs compile time) is passed to the build;
# default: CMakeLists.txt's list.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
  echo "check-cuda-build: no nvcc on this machine: the CUDA variant was NOT built or tested here"
  exit 0
fi
nvcc --version | tail -n 1
# Always passed explicitly, and configured every time (`cmake-js build` alone
# keeps a folder's earlier configuration), so that a build folder configured
# earlier with another list or without the check is reconfigured.
archs="${NODE_MAMBA_CUDA_ARCHS:-$(sed -n 's/^set(NODE_MAMBA_CUDA_ARCHS "\([^"]*\)".*/\1/p' CMakeLists.txt)}"
echo "check-cuda-build: CUDA architectures $archs"
# One build tree for the addon and the standalone check (nm_gpu_check), so
# that the CUDA library is compiled once.
npx cmake-js configure -O build-cuda --CDNODE_MAMBA_CUDA=ON --CDNODE_MAMBA_GPU_CHECK=ON "--CDNODE_MAMBA_CUDA_ARCHS=$archs" >/dev/null
npx cmake-js build -O build-cuda >/dev/null
addon="$PWD/build-cuda/Release/node_mamba.node"
NODE_MAMBA_ADDON="$addon" node -e "const i = require('./dist').kernels.runtimeInfo(); if (!i.cuda.compiled) { console.error('check-cuda-build: the addon in build-cuda has no CUDA kernels'); process.exit(1); } console.log('check-cuda-build: ' + i.addonPath + ': cuda ' + JSON.stringify(i.cuda))"
NODE_MAMBA_ADDON="$addon" npx tap --disable-coverage test/runtime.test.ts test/native/norm.test.ts
check="$(find build-cuda -name nm_gpu_check -type f -perm -u+x | head -n 1)"
if [ -z "$check" ]; then
  echo "check-cuda-build: build-cuda has no nm_gpu_check"
  exit 1
fi
echo "check-cuda-build: compiled $check; running its host emulation"
"$check" --emulate >build-cuda/emulate.log || {
  grep -v '^ok ' build-cuda/emulate.log
  echo "check-cuda-build: nm_gpu_check --emulate FAILED (full log: build-cuda/emulate.log)"
  exit 1
}
tail -n 1 build-cuda/emulate.log

# The optional CUDA package (scripts/build-cuda-package.js) from this addon,
# installed beside node-mamba in a scratch project: it is what loads there.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
node scripts/build-cuda-package.js --addon "$addon" --out "$scratch/packages"
mkdir -p "$scratch/project/node_modules/@node-mamba"
ln -s "$PWD" "$scratch/project/node_modules/node-mamba"
pkgdir="$(ls -d "$scratch"/packages/*-cuda)"
cp -r "$pkgdir" "$scratch/project/node_modules/@node-mamba/"
(cd "$scratch/project" && PREBUILDS_ONLY=1 NODE_MAMBA_ADDON= node -e "
const i = require('node-mamba').kernels.runtimeInfo();
if (i.addonSource !== 'cuda package' || !i.cuda.compiled) {
  console.error('check-cuda-build: the installed CUDA package did not load: ' + JSON.stringify({ source: i.addonSource, cudaPackage: i.cudaPackage }));
  process.exit(1);
}
console.log('check-cuda-build: the CUDA package loads: ' + i.addonPath);")
