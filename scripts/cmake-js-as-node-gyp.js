#!/usr/bin/env node
// prebuildify drives node-gyp (`<bin> rebuild --target=... --devdir=... --release`)
// and has no cmake-js backend. This shim accepts that call and runs cmake-js
// instead, so `npm run prebuild` builds with CMakeLists.txt and prebuildify
// collects build/Release/node_mamba.node into prebuilds/<platform>-<arch>/.
// Extra CMake defines come from PREBUILD_CMAKE_DEFS (e.g. "-DNODE_MAMBA_CUDA=ON").
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`cmake-js-as-node-gyp: only 'rebuild' is supported, got '${args[0]}'`);
  process.exit(2);
}
const cmakeArgs = ['rebuild'];
for (const a of args.slice(1)) {
  const arch = /^--arch=(.+)$/.exec(a);
  if (arch) cmakeArgs.push(`--arch=${arch[1]}`);
  // --target / --devdir name node headers; a Node-API build uses cmake-js's
  // bundled node-api-headers instead, so they are not needed.
}
for (const def of (process.env.PREBUILD_CMAKE_DEFS || '').split(/\s+/).filter(Boolean)) {
  cmakeArgs.push(def.replace(/^-D/, '--CD'));
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, ...cmakeArgs], {
  stdio: 'inherit',
  cwd: path.resolve(__dirname, '..'),
});
process.exit(r.status === null ? 1 : r.status);
