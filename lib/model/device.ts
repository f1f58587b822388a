// loadModel's choice of device (the `device` option): what the CUDA runtime
// says (kernels.runtimeInfo().cuda) and what this version can run there.
import { DeviceUnavailableError } from '../errors';
import type { CudaRuntimeInfo } from '../native/types';
import type { Device } from './load_options';

export interface DeviceChoice {
  device: Device;
  /** Why this device (for 'auto', which GPU or why not one; for 'cpu', that it was asked for). */
  reason: string;
}

/**
 * The device for `requested` given the CUDA runtime's state: a usable GPU
 * (the engine runs on the first device of compute capability 7.5 or newer,
 * cuda_backend.cpp) for 'cuda' and 'auto', else the CPU for 'auto'. 'cuda'
 * that cannot be served throws a DeviceUnavailableError naming the reason.
 */
export function chooseDevice(requested: Device | 'auto', cuda: CudaRuntimeInfo): DeviceChoice {
  if (requested === 'cpu') return { device: 'cpu', reason: "asked for ('cpu')" };
  if (!cuda.usable) {
    const why = `CUDA is not usable: ${cuda.reason ?? 'unknown reason'}`;
    if (requested === 'cuda') throw new DeviceUnavailableError('cuda', why);
    return { device: 'cpu', reason: `'auto' chose the CPU: ${why}` };
  }
  const gpu = cuda.devices.find((d) => d.supported);
  const name = gpu ? `GPU ${gpu.index}, ${gpu.name} (compute capability ${gpu.computeCapability})` : 'the GPU';
  return { device: 'cuda', reason: requested === 'cuda' ? `asked for ('cuda'): ${name}` : `'auto' chose ${name}` };
}

/** The engine backend a placement runs on (NativeLoadArgs.backend). */
export type NativeBackend = 'cpu' | 'cpu-device-emulation' | 'cuda';

/**
 * The engine backend for `device`. On the CPU, with the environment variable
 * NODE_MAMBA_DEVICE_EMULATION=1 (for tests), the CPU kernels on memory that
 * the engine's host code may reach only through the backend, as a GPU's
 * (docs/cuda-backend.md, "The seam"): any direct access faults.
 */
export function nativeBackend(device: Device, env: NodeJS.ProcessEnv = process.env): NativeBackend {
  if (device === 'cuda') return 'cuda';
  return env.NODE_MAMBA_DEVICE_EMULATION === '1' ? 'cpu-device-emulation' : 'cpu';
}
