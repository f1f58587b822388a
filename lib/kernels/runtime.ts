// Which instruction set the kernels use and how many threads they run on.
import { addonPath, native } from '../native/binding';
import type { Isa, NativeRuntimeInfo } from '../native/types';

export type { Isa };
export interface RuntimeInfo extends NativeRuntimeInfo {
  /** The native addon file in use (local build, prebuild, or NODE_MAMBA_ADDON). */
  addonPath: string;
}

/** The active and detected instruction-set levels, the thread-pool size and the addon file. */
export function runtimeInfo(): RuntimeInfo {
  return { ...native.runtimeInfo(), addonPath };
}

/**
 * Caps the kernels' instruction-set level ('scalar' | 'avx2' | 'avx512'; never
 * above what the CPU has) and returns the level now active. The environment
 * variable NODE_MAMBA_ISA sets the initial cap.
 */
export function setIsa(isa: Isa): Isa {
  return native.setIsa(isa);
}

/** Sets the thread-pool size (default: physical cores, or NODE_MAMBA_THREADS). */
export function setThreads(threads: number): number {
  return native.setThreads(threads);
}
