// loadModel() turns every bad checkpoint into a ModelLoadError naming the file
// and the tensor or field (the loader's own cases are in test/loaders/), and
// rejects bad options with a TypeError / RangeError.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, ModelLoadError } from '../../lib';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-loaderr-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

function fresh(name: string): string {
  const dir = path.join(root, name);
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 32, dtype: 'f32', tied: true, dialect: 'hf', seed: 1 });
  return dir;
}

async function loadError(p: Promise<unknown>): Promise<ModelLoadError | undefined> {
  try {
    await p;
  } catch (e) {
    return e instanceof ModelLoadError ? e : undefined;
  }
  return undefined;
}

t.test('bad checkpoints reject with ModelLoadError', async (t) => {
  await t.rejects(loadModel(path.join(root, 'missing')), ModelLoadError);

  const trunc = fresh('truncated');
  const st = path.join(trunc, 'model.safetensors');
  fs.truncateSync(st, fs.statSync(st).size - 10);
  t.equal((await loadError(loadModel(trunc)))?.file, st, 'truncated file named');

  const badType = fresh('bad-type');
  const cfgFile = path.join(badType, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), model_type: 'llama' }));
  const e1 = await loadError(loadModel(badType));
  t.equal(e1?.file, cfgFile);
  t.equal(e1?.field, 'model_type');

  const badHeader = fresh('bad-header');
  const st2 = path.join(badHeader, 'model.safetensors');
  const bytes = fs.readFileSync(st2);
  bytes.writeBigUInt64LE(BigInt(bytes.length * 2), 0); // header length past the end of the file
  fs.writeFileSync(st2, bytes);
  t.equal((await loadError(loadModel(badHeader)))?.file, st2, 'bad header length named');
});

t.test('bad options', async (t) => {
  const dir = fresh('ok');
  await t.rejects(loadModel(dir, { device: 'gpu' as 'cpu' }), RangeError);
  await t.rejects(loadModel(dir, { threads: 0 }), RangeError);
  await t.rejects(loadModel(42 as unknown as string), TypeError);
  const m = await loadModel(dir, { threads: 2 });
  t.equal(m.vocabSize, 32);
  t.equal(m.config.arch, 'mamba');
  t.ok(m.memory.weightBytes > 0 && m.memory.stateBytesPerSequence > 0);
  m.dispose();
});
