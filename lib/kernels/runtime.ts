// Which instruction set the kernels use and how many threads they run on.
import { addonPath, addonSource, cudaPackage, native, type AddonSource, type CudaPackageStatus } from '../native/binding';
import type { CudaDeviceInfo, CudaRuntimeInfo, Isa, NativeRuntimeInfo } from '../native/types';

export type { AddonSource, CudaDeviceInfo, CudaPackageStatus, CudaRuntimeInfo, Isa };
export interface RuntimeInfo extends NativeRuntimeInfo {
  /** The native addon file in use. */
  addonPath: string;
  /** Why that file: NODE_MAMBA_ADDON names it, a local build (build/Release), the CUDA package, or the prebuild for this platform. */
  addonSource: AddonSource;
  /** The optional CUDA package (@node-mamba/<platform>-<arch>-cuda): loaded, not installed, or why not. */
  cudaPackage: CudaPackageStatus;
}

/**
 * The active and detected instruction-set levels, the thread-pool size, the
 * addon file, and whether CUDA is compiled in and usable here (and why not).
 */
export function runtimeInfo(): RuntimeInfo {
  return { ...native.runtimeInfo(), addonPath, addonSource, cudaPackage: { ...cudaPackage } };
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

/** Best, median and worst of the repeats (G = 1e9; two operations per multiply-add). */
export interface PeakRate {
  best: number;
  median: number;
  worst: number;
}

/** Result of measureArithmeticPeak. */
export interface ArithmeticPeak {
  /** float32 multiply-adds of the active level (fma on 16 / 8 lanes; plain loops at 'portable'). */
  f32Gflops: PeakRate;
  /** int8 multiply-adds as the W8A8 prefill kernels do them at the active level (AVX2 and AVX-512 without VNNI: int8 values widened to int16). */
  int8Gops: PeakRate;
  /** The int8 instruction sequence timed: 'vpdpbusd', 'vpmaddwd (int16)' or 'scalar'. */
  int8Op: string;
  repeats: number;
  threads: number;
  isa: Isa;
  /** Keeps the results observable; no meaning. */
  checksum: number;
}

/**
 * Measures the arithmetic peak of the active level: `threads` pool threads
 * (default: all) each run independent chains of float32 multiply-adds, then
 * of the int8 dot-product step the qlinear kernels use, from registers (no
 * memory traffic), `repeats` times (default 5) of ~20 ms. Synchronous; for
 * benchmarks (bench/), as the limit of a compute-bound prefill.
 */
export function measureArithmeticPeak(options: { repeats?: number; threads?: number } = {}): ArithmeticPeak {
  return native.measureArithmeticPeak(options);
}

/** Sets the thread-pool size (default: physical cores, or NODE_MAMBA_THREADS). */
export function setThreads(threads: number): number {
  return native.setThreads(threads);
}
