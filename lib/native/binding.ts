// Loads the native addon: the file named by NODE_MAMBA_ADDON if set (a
// sanitizer or debug build), else a local build (build/Release), else the
// prebuild for this platform (prebuilds/<platform>-<arch>/), via node-gyp-build.
import * as path from 'node:path';
import type { NativeModule } from './types';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const nodeGypBuild: { resolve(dir: string): string } = require('node-gyp-build');

/** Package root: this file is lib/native/binding.ts or dist/native/binding.js. */
export const packageRoot = path.resolve(__dirname, '..', '..');

function resolveAddon(): string {
  const explicit = process.env.NODE_MAMBA_ADDON;
  if (explicit) return path.resolve(explicit);
  try {
    return nodeGypBuild.resolve(packageRoot);
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

/** Absolute path of the addon file that was loaded. */
export const addonPath: string = resolveAddon();
export const native: NativeModule = require(addonPath) as NativeModule;
