// The native module's exact shape: the one file to update when the C++
// exports change (csrc/napi/*_binding.cpp). Arguments are plain option
// objects; every field is re-checked on the native side.

export type HalfDtype = 'f16' | 'bf16';
export type Isa = 'scalar' | 'avx2' | 'avx512';

export interface NativeRuntimeInfo {
  isa: Isa;
  detectedIsa: Isa;
  threads: number;
  physicalCores: number;
}

/** Options objects as the native functions read them. */
export type NativeArgs = Record<string, unknown>;

export interface NativeModule {
  runtimeInfo(): NativeRuntimeInfo;
  setIsa(isa: string): Isa;
  setThreads(threads: number): number;

  rmsNorm(args: NativeArgs): { out: Float32Array; residual: Float32Array };
  gatedRmsNorm(args: NativeArgs): Float32Array;
  causalConv1d(args: NativeArgs): { out: Float32Array; convState: Float32Array };
  causalConv1dUpdate(args: NativeArgs): { out: Float32Array; convState: Float32Array };
  linear(args: NativeArgs): Float32Array;
  selectiveScan(args: NativeArgs): { out: Float32Array; lastState: Float32Array };
  selectiveStateUpdate(args: NativeArgs): { out: Float32Array; state: Float32Array };
  ssdChunkScan(args: NativeArgs): { out: Float32Array; finalStates: Float32Array };
}
