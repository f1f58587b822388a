#!/usr/bin/env node
// Builds the optional CUDA package for this platform,
// @node-mamba/<platform>-<arch>-cuda: the addon compiled with
// -DNODE_MAMBA_CUDA=ON (every CPU kernel, the CUDA kernels and the CUDA
// runtime linked statically; it loads where there is no driver), as
// node_mamba.node beside a package.json. Users install it next to node-mamba
// (npm i @node-mamba/linux-x64-cuda); lib/native/binding.ts loads it when
// present and falls back to the CPU prebuild when it cannot.
//
//   node scripts/build-cuda-package.js [--addon FILE] [--out DIR]
//
// --addon: package an addon already built with CUDA (e.g. build-cuda's,
// scripts/check-cuda-build.sh) instead of building one into
// build-cuda-package/ (NODE_MAMBA_CUDA_ARCHS: the architectures, default
// CMakeLists.txt's). --out: where the package directory goes (default
// packages/). The addon must report CUDA compiled in; the directory is
// written under a temporary name and renamed.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  if (i + 1 >= args.length) throw new Error(`${name} needs a value`);
  return args[i + 1];
};

function build() {
  const out = 'build-cuda-package';
  const defs = ['--CDNODE_MAMBA_CUDA=ON'];
  if (process.env.NODE_MAMBA_CUDA_ARCHS) defs.push(`--CDNODE_MAMBA_CUDA_ARCHS=${process.env.NODE_MAMBA_CUDA_ARCHS}`);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  for (const step of [['configure', '-O', out, ...defs], ['build', '-O', out]]) {
    const r = spawnSync(process.execPath, [cmakeJs, ...step], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`cmake-js ${step[0]} failed`);
  }
  return path.join(root, out, 'Release', 'node_mamba.node');
}

function main() {
  const addon = path.resolve(flag('--addon') ?? build());
  if (!fs.existsSync(addon)) throw new Error(`no addon at ${addon}`);
  // The addon must carry the CUDA kernels (it says so without a GPU).
  const probe = spawnSync(process.execPath, ['-e', "process.stdout.write(JSON.stringify(require('./dist').kernels.runtimeInfo().cuda))"], {
    cwd: root, env: { ...process.env, NODE_MAMBA_ADDON: addon }, encoding: 'utf8',
  });
  if (probe.status !== 0) throw new Error(`the addon does not load: ${probe.stderr}`);
  if (!JSON.parse(probe.stdout).compiled) throw new Error(`${addon} was built without CUDA (-DNODE_MAMBA_CUDA=ON)`);

  const main = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const tag = `${process.platform}-${process.arch}`;
  const name = `@node-mamba/${tag}-cuda`;
  const outDir = path.resolve(flag('--out') ?? path.join(root, 'packages'));
  const dest = path.join(outDir, `${tag}-cuda`);
  const tmp = `${dest}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fs.copyFileSync(addon, path.join(tmp, 'node_mamba.node'));
    const pkg = {
      name, version: main.version,
      description: `node-mamba's addon with CUDA kernels for ${tag} (NVIDIA GPUs of compute capability 7.5 and newer; the CUDA runtime linked in, the driver loaded when present)`,
      license: main.license, os: [process.platform], cpu: [process.arch],
      files: ['node_mamba.node', 'README.md'],
      peerDependencies: { 'node-mamba': main.version },
    };
    fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
    fs.writeFileSync(path.join(tmp, 'README.md'),
      `# ${name}\n\nThe CUDA build of [node-mamba](https://www.npmjs.com/package/node-mamba)'s native addon for ${tag}. ` +
      'Install it beside node-mamba; node-mamba loads it when present (`node-mamba doctor` says which addon loaded and why) ' +
      'and falls back to its CPU prebuild when it cannot. `NODE_MAMBA_CUDA_PACKAGE=0` skips it.\n');
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(tmp, dest);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  console.log(`${name}@${main.version}: ${dest} (${(fs.statSync(path.join(dest, 'node_mamba.node')).size / 2 ** 20).toFixed(1)} MiB addon)`);
}

try {
  main();
} catch (err) {
  console.error(`build-cuda-package: ${err.message}`);
  process.exit(1);
}
