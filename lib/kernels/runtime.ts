// Which instruction set the kernels use and how many threads they run on.
import { addonPath, native } from '../native/binding';
import type { CudaDeviceInfo, CudaRuntimeInfo, Isa, NativeRuntimeInfo } from '../native/types';

export type { CudaDeviceInfo, CudaRuntimeInfo, Isa };
export interface RuntimeInfo extends NativeRuntimeInfo {
  /** The native addon file in use (local build, prebuild, or NODE_MAMBA_ADDON). */
  addonPath: string;
}

/**
 * The active and detected instruction-set levels, the thread-pool size, the
 * addon file, and whether CUDA is compiled in and usable here (and why not).
 */
export function runtimeInfo(): RuntimeInfo {
  return { ...native.runtimeInfo(), addonPath };
}

/**
 * Caps the kernels' instruction-set level ('scalar' | 'avx2' | 'avx512' |
 * 'avx512vnni'; never above what the CPU has) and returns the level now
 * active. 'avx512vnni' adds the int8 (VNNI) and bf16 (AVX512_BF16, where the
 * CPU has it) dot products of the linear layer's rounded-activation path;
 * every other kernel runs its 'avx512' code there. The environment
 * variable NODE_MAMBA_ISA sets the initial cap.
 */
export function setIsa(isa: Isa): Isa {
  return native.setIsa(isa);
}

/** Result of measureReadBandwidth (GB = 1e9 bytes). */
export interface ReadBandwidth {
  bestGBps: number;
  medianGBps: number;
  worstGBps: number;
  /** Bytes streamed per repeat (rounded down to whole cache lines). */
  bytes: number;
  repeats: number;
  threads: number;
  /** The vector width used for the loads. */
  isa: Isa;
  /** Sum of the words read (keeps the loads observable; no meaning). */
  checksum: number;
}

/**
 * Measures memory read bandwidth: streams a buffer of `bytes` (default
 * 256 MiB; make it much larger than the last-level cache) `repeats` times
 * (default 10) with `threads` pool threads (default: all), each summing its
 * own contiguous part with the active ISA's widest loads. Synchronous; for
 * benchmarks (bench/), as the limit of a memory-bound decode step.
 */
export function measureReadBandwidth(options: { bytes?: number; repeats?: number; threads?: number } = {}): ReadBandwidth {
  return native.measureReadBandwidth(options);
}

/** Sets the thread-pool size (default: physical cores, or NODE_MAMBA_THREADS). */
export function setThreads(threads: number): number {
  return native.setThreads(threads);
}
