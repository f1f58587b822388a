// loadModel's choice of device (the `device` option): what the CUDA runtime
// says (kernels.runtimeInfo().cuda) and what this version can run there.
import { DeviceUnavailableError } from '../errors';
import type { CudaRuntimeInfo } from '../native/types';
import type { Device } from './load_options';

/** Why this version runs no model on a GPU even where CUDA is usable. */
export const CUDA_ENGINE_PENDING =
  'this version runs whole models on the CPU only: its CUDA kernels and engine backend are built, ' +
  'but the backend has not yet passed its whole-model check on a GPU';

export interface DeviceChoice {
  device: Device;
  /** Why this device (for 'auto', why not the GPU; for 'cpu', that it was asked for). */
  reason: string;
}

/**
 * The device for `requested` given the CUDA runtime's state. 'cuda' that
 * cannot be served throws a DeviceUnavailableError naming the reason.
 */
export function chooseDevice(requested: Device | 'auto', cuda: CudaRuntimeInfo): DeviceChoice {
  if (requested === 'cpu') return { device: 'cpu', reason: "asked for ('cpu')" };
  const why = cuda.usable ? CUDA_ENGINE_PENDING : `CUDA is not usable: ${cuda.reason ?? 'unknown reason'}`;
  if (requested === 'cuda') throw new DeviceUnavailableError('cuda', why);
  return { device: 'cpu', reason: `'auto' chose the CPU: ${why}` };
}

/** The engine backend a placement runs on (NativeLoadArgs.backend). */
export type NativeBackend = 'cpu' | 'cpu-device-emulation';

/**
 * The engine backend for `device`: the CPU's. With the environment variable
 * NODE_MAMBA_DEVICE_EMULATION=1 (for tests), the CPU kernels on memory that
 * the engine's host code may reach only through the backend, as a GPU's
 * (docs/cuda-backend.md, "The seam"): any direct access faults.
 */
export function nativeBackend(device: Device, env: NodeJS.ProcessEnv = process.env): NativeBackend {
  void device;  // 'cpu' only in this version (chooseDevice)
  return env.NODE_MAMBA_DEVICE_EMULATION === '1' ? 'cpu-device-emulation' : 'cpu';
}
