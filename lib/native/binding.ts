// Loads the native addon: the file named by NODE_MAMBA_ADDON if set (a
// sanitizer or debug build), else a local build (build/Release), else the
// optional CUDA package when installed (@node-mamba/<platform>-<arch>-cuda,
// scripts/build-cuda-package.js), else the prebuild for this platform
// (prebuilds/<platform>-<arch>/), via node-gyp-build.
import * as path from 'node:path';
import type { NativeModule } from './types';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const nodeGypBuild: { resolve(dir: string): string } = require('node-gyp-build');

/** Package root: this file is lib/native/binding.ts or dist/native/binding.js. */
export const packageRoot = path.resolve(__dirname, '..', '..');

/** Why this addon file was chosen (`node-mamba doctor` prints it). */
export type AddonSource = 'NODE_MAMBA_ADDON' | 'local build' | 'cuda package' | 'prebuild';

/** The optional CUDA build's package for this platform (installed on its own: npm i @node-mamba/linux-x64-cuda). */
export const cudaPackageName = `@node-mamba/${process.platform}-${process.arch}-cuda`;

/** What became of the CUDA package: loaded, or why not. */
export interface CudaPackageStatus {
  name: string;
  status: 'loaded' | 'not installed' | 'not tried' | 'failed to load';
  /** For 'not tried' and 'failed to load': why. */
  reason?: string;
}

/** The addon file of the installed CUDA package, or undefined when none is installed. */
function cudaPackageAddon(): string | undefined {
  for (const from of [packageRoot, process.cwd()]) {
    try {
      return path.join(path.dirname(require.resolve(`${cudaPackageName}/package.json`, { paths: [from] })), 'node_mamba.node');
    } catch {
      // not installed where `from` resolves
    }
  }
  return undefined;
}

interface Resolved {
  native: NativeModule;
  file: string;
  source: AddonSource;
  cuda: CudaPackageStatus;
}

// NODE_MAMBA_ADDON, else a local build (build/Release), else the CUDA
// package when installed (its addon holds every CPU kernel too; a package
// that fails to load falls back to the CPU prebuild, saying why; skipped
// with NODE_MAMBA_CUDA_PACKAGE=0), else the prebuild for this platform.
function loadAddon(): Resolved {
  const explicit = process.env.NODE_MAMBA_ADDON;
  if (explicit) {
    const file = path.resolve(explicit);
    return { native: require(file) as NativeModule, file, source: 'NODE_MAMBA_ADDON', cuda: { name: cudaPackageName, status: 'not tried', reason: 'NODE_MAMBA_ADDON names the addon' } };
  }
  let file: string;
  try {
    file = nodeGypBuild.resolve(packageRoot);
  } catch (err) {
    file = '';
    if (!cudaPackageAddon()) throw noAddon(err);
  }
  // node-gyp-build prefers build/Release (a local build) over prebuilds/<platform>-<arch>/.
  const local = file !== '' && path.relative(packageRoot, file).split(path.sep)[0] !== 'prebuilds';
  if (local) {
    return { native: require(file) as NativeModule, file, source: 'local build', cuda: { name: cudaPackageName, status: 'not tried', reason: 'a local build takes precedence' } };
  }
  let cuda: CudaPackageStatus = { name: cudaPackageName, status: 'not installed' };
  const cudaFile = process.env.NODE_MAMBA_CUDA_PACKAGE === '0' ? undefined : cudaPackageAddon();
  if (process.env.NODE_MAMBA_CUDA_PACKAGE === '0') cuda = { name: cudaPackageName, status: 'not tried', reason: 'NODE_MAMBA_CUDA_PACKAGE=0' };
  if (cudaFile) {
    try {
      return { native: require(cudaFile) as NativeModule, file: cudaFile, source: 'cuda package', cuda: { name: cudaPackageName, status: 'loaded' } };
    } catch (err) {
      cuda = { name: cudaPackageName, status: 'failed to load', reason: (err as Error).message.split('\n')[0] };
      if (file === '') throw noAddon(err);
    }
  }
  return { native: require(file) as NativeModule, file, source: 'prebuild', cuda };
}

function noAddon(err: unknown): Error {
  const e = new Error(
    `node-mamba: could not load the native addon (${(err as Error).message}). ` +
      `No prebuild matches ${process.platform}-${process.arch}; build from source with ` +
      '`npm run build:native` (needs cmake and a C++17 compiler).',
  );
  (e as Error & { cause?: unknown }).cause = err;
  return e;
}

const resolved = loadAddon();
/** Absolute path of the addon file that was loaded. */
export const addonPath: string = resolved.file;
export const addonSource: AddonSource = resolved.source;
/** The CUDA package: loaded, not installed, or why it was not used. */
export const cudaPackage: CudaPackageStatus = resolved.cuda;
export const native: NativeModule = resolved.native;
