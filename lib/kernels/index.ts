// The `kernels` namespace: every CPU kernel on typed arrays with explicit
// shapes. Each call is synchronous (it runs on the thread pool while the
// calling thread waits) and validates every argument before touching memory.
export { runtimeInfo, setIsa, setThreads, measureReadBandwidth, measureArithmeticPeak } from './runtime';
export type { AddonSource, CudaDeviceInfo, CudaPackageStatus, CudaRuntimeInfo, Isa, RuntimeInfo, ReadBandwidth, ArithmeticPeak, PeakRate } from './runtime';
export type { FloatData, HalfDtype, QuantData, QuantDtype } from './tensor';
export { QUANT_BLOCK_BYTES } from './tensor';
export * from './norm';
export * from './conv1d';
export * from './linear';
export * from './qlinear';
export * from './moe';
export * from './selective_scan';
export * from './ssd';
export * from './attention';
export * from './hadamard';
export * from './ssm_q8';
export * from './sampling';
