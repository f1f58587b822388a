// loadModel's `device` option (lib/model/device.ts): 'cpu', 'cuda' (a typed
// error saying why when it cannot be served), 'auto' (the GPU when CUDA is
// usable, else the CPU, and why), and model.device / model.deviceReason.
// Where this machine has a usable GPU, 'cuda' runs and gives the CPU's logits.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeviceUnavailableError, kernels, loadModel } from '../../lib';
import { chooseDevice, nativeBackend } from '../../lib/model/device';
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
  t.same(chooseDevice('auto', usableCuda), { device: 'cuda', reason: "'auto' chose GPU 0, NVIDIA H200 (compute capability 9.0)" },
    'usable CUDA: the GPU');
  t.throws(() => chooseDevice('cuda', noCuda), { name: 'DeviceUnavailableError', code: 'ERR_DEVICE_UNAVAILABLE', device: 'cuda',
    reason: 'CUDA is not usable: built without -DNODE_MAMBA_CUDA=ON' });
  t.same(chooseDevice('cuda', usableCuda), { device: 'cuda', reason: "asked for ('cuda'): GPU 0, NVIDIA H200 (compute capability 9.0)" });
  const oldCard = { ...usableCuda, devices: [{ ...usableCuda.devices[0], index: 0, computeCapability: '7.0', supported: false },
    { ...usableCuda.devices[0], index: 1 }] };
  t.match(chooseDevice('cuda', oldCard).reason, /GPU 1, NVIDIA H200/, 'the first supported device, as the engine takes it');
  t.equal(nativeBackend('cuda', {}), 'cuda');
  t.equal(nativeBackend('cuda', { NODE_MAMBA_DEVICE_EMULATION: '1' }), 'cuda', 'the emulation stands in for a GPU on the CPU only');
  t.equal(nativeBackend('cpu', { NODE_MAMBA_DEVICE_EMULATION: '1' }), 'cpu-device-emulation');
  t.equal(nativeBackend('cpu', {}), 'cpu');
});

t.test('loadModel device option', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-device-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  writeRandomCheckpoint(root, { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 32, dtype: 'f32', tied: true, dialect: 'hf', seed: 1 });
  const cpu = await loadModel(root);
  t.equal(cpu.device, 'cpu');
  t.equal(cpu.deviceReason, "asked for ('cpu')");
  cpu.dispose();
  const cuda = kernels.runtimeInfo().cuda;
  const auto = await loadModel(root, { device: 'auto' });
  t.equal(auto.device, cuda.usable ? 'cuda' : 'cpu', "'auto': the GPU where CUDA is usable, else the CPU");
  t.match(auto.deviceReason, cuda.usable ? /^'auto' chose GPU / : /^'auto' chose the CPU: CUDA is not usable: /);
  const logits = await (await auto.createSequence()).prefill([1, 2, 3]);
  t.equal(logits?.length, 32, 'and computes');
  auto.dispose();
  if (!cuda.usable) {
    const err = await loadModel(root, { device: 'cuda' }).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof DeviceUnavailableError, 'device: cuda rejects with a DeviceUnavailableError');
    t.equal((err as DeviceUnavailableError).reason, `CUDA is not usable: ${cuda.reason}`, 'naming why');
    t.comment(`no usable GPU here (${cuda.reason}): the GPU half of this test ran as the rejection only`);
    return;
  }
  const onCpu = await loadModel(root);
  const onGpu = await loadModel(root, { device: 'cuda' });
  t.equal(onGpu.device, 'cuda');
  const want = await (await onCpu.createSequence()).prefill([1, 2, 3, 4, 5]);
  const got = await (await onGpu.createSequence()).prefill([1, 2, 3, 4, 5]);
  let err = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  t.ok(err <= 1e-4 * scale, `the GPU's logits are the CPU's (max |diff| ${err.toExponential(2)}, max |logit| ${scale.toExponential(2)})`);
  onCpu.dispose();
  onGpu.dispose();
});
