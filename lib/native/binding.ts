// Loads the native addon: the file named by NODE_MAMBA_ADDON if set (a
// sanitizer or debug build), else a local build (build/Release), else the
// prebuild for this platform (prebuilds/<platform>-<arch>/), via node-gyp-build.
import * as path from 'node:path';
import type { NativeModule } from './types';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const nodeGypBuild: { resolve(dir: string): string } = require('node-gyp-build');

/** Package root: this file is lib/native/binding.ts or dist/native/binding.js. */
export const packageRoot = path.resolve(__dirname, '..', '..');

/** Why this addon file was chosen (`node-mamba doctor` prints it). */
export type AddonSource = 'NODE_MAMBA_ADDON' | 'local build' | 'prebuild';

function resolveAddon(): { file: string; source: AddonSource } {
  const explicit = process.env.NODE_MAMBA_ADDON;
  if (explicit) return { file: path.resolve(explicit), source: 'NODE_MAMBA_ADDON' };
  try {
    const file = nodeGypBuild.resolve(packageRoot);
    // node-gyp-build prefers build/Release (a local build) over prebuilds/<platform>-<arch>/.
    const rel = path.relative(packageRoot, file).split(path.sep);
    return { file, source: rel[0] === 'prebuilds' ? 'prebuild' : 'local build' };
  } catch (err) {
    const e = new Error(
      `node-mamba: could not load the native addon (${(err as Error).message}). ` +
        `No prebuild matches ${process.platform}-${process.arch}; build from source with ` +
        '`npm run build:native` (needs cmake and a C++17 compiler).',
    );
    (e as Error & { cause?: unknown }).cause = err;
    throw e;
  }
}

const resolved = resolveAddon();
/** Absolute path of the addon file that was loaded. */
export const addonPath: string = resolved.file;
export const addonSource: AddonSource = resolved.source;
export const native: NativeModule = require(addonPath) as NativeModule;
