#!/usr/bin/env bash
# Checks the node-gyp fallback (binding.gyp): builds the addon in a scratch
# copy of the sources, then runs the native tests against that build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r binding.gyp package.json csrc scripts "$scratch"/
ln -s "$root/node_modules" "$scratch/node_modules"
(cd "$scratch" && npx node-gyp rebuild -j max >/dev/null)  # every core: CI's build took ~190 s on one of 2, 114 s on both
addon="$scratch/build/Release/node_mamba.node"
echo "check-gyp-build: built $addon"
NODE_MAMBA_ADDON="$addon" npx tap --disable-coverage test/native test/runtime.test.ts
