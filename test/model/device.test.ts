// loadModel's `device` option (lib/model/device.ts): 'cpu', 'cuda' (a typed
// error saying why when it cannot be served), 'auto' (the CPU here, and why),
// and model.device / model.deviceReason.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeviceUnavailableError, kernels, loadModel } from '../../lib';
import { chooseDevice, CUDA_ENGINE_PENDING } from '../../lib/model/device';
import type { CudaRuntimeInfo } from '../../lib/native/types';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const noCuda: CudaRuntimeInfo = {
  compiled: false, usable: false, reason: 'built without -DNODE_MAMBA_CUDA=ON', driverVersion: 0, runtimeVersion: 0, devices: [],
};
const usableCuda: CudaRuntimeInfo = {
  compiled: true, usable: true, driverVersion: 13000, runtimeVersion: 13000,
  devices: [{ index: 0, name: 'NVIDIA H200', computeCapability: '9.0', totalBytes: 2 ** 37, multiprocessors: 132, supported: true }],
};

t.test('chooseDevice', async (t) => {
  t.same(chooseDevice('cpu', noCuda), { device: 'cpu', reason: "asked for ('cpu')" });
  t.same(chooseDevice('cpu', usableCuda).device, 'cpu');
  const auto = chooseDevice('auto', noCuda);
  t.equal(auto.device, 'cpu');
  t.match(auto.reason, /'auto' chose the CPU: CUDA is not usable: built without -DNODE_MAMBA_CUDA=ON/);
  t.match(chooseDevice('auto', usableCuda).reason, CUDA_ENGINE_PENDING, 'usable CUDA: the engine does not run there yet');
  t.throws(() => chooseDevice('cuda', noCuda), { name: 'DeviceUnavailableError', code: 'ERR_DEVICE_UNAVAILABLE', device: 'cuda',
    reason: 'CUDA is not usable: built without -DNODE_MAMBA_CUDA=ON' });
  t.throws(() => chooseDevice('cuda', usableCuda), { name: 'DeviceUnavailableError', reason: CUDA_ENGINE_PENDING });
});

t.test('loadModel device option', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-device-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  writeRandomCheckpoint(root, { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 32, dtype: 'f32', tied: true, dialect: 'hf', seed: 1 });
  const cpu = await loadModel(root);
  t.equal(cpu.device, 'cpu');
  t.equal(cpu.deviceReason, "asked for ('cpu')");
  cpu.dispose();
  const auto = await loadModel(root, { device: 'auto' });
  t.equal(auto.device, 'cpu', "'auto' runs on the CPU in this version");
  t.match(auto.deviceReason, /^'auto' chose the CPU: /);
  const logits = await (await auto.createSequence()).prefill([1, 2, 3]);
  t.equal(logits?.length, 32, 'and computes');
  auto.dispose();
  const err = await loadModel(root, { device: 'cuda' }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof DeviceUnavailableError, 'device: cuda rejects with a DeviceUnavailableError');
  const cuda = kernels.runtimeInfo().cuda;
  t.equal((err as DeviceUnavailableError).reason, cuda.usable ? CUDA_ENGINE_PENDING : `CUDA is not usable: ${cuda.reason}`,
    'naming why: the runtime (this machine) or the engine');
});
