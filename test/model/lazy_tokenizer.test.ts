// The checkpoint's (or the default) tokenizer is built on first use: a
// service that passes token ids never pays its ~60 MB. A broken
// tokenizer.json still raises a ModelLoadError naming the file, at that use.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, ModelLoadError } from '../../lib';
import { LazyTokenizer } from '../../lib/tokenizer/lazy';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-lazytok-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

t.test('built on first use only', async (t) => {
  const dir = path.join(root, 'm');
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 2 });
  const m = await loadModel(dir);
  t.teardown(() => m.dispose());
  const tok = m.tokenizer as LazyTokenizer;
  t.ok(tok instanceof LazyTokenizer);
  await m.forward([1, 2, 3]);
  t.equal(tok.isLoaded, false, 'token ids alone do not build it');
  t.same(m.tokenizer.encode('Hey how are you doing?'), [8262, 849, 403, 368, 2509, 32], 'the default GPT-NeoX tokenizer');
  t.equal(tok.isLoaded, true);
});

t.test("a broken tokenizer.json fails at first use with the file's name", async (t) => {
  const dir = path.join(root, 'broken');
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 16, nLayer: 1, vocabSize: 300, dtype: 'f32', tied: false, dialect: 'hf', seed: 2 });
  const file = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(file, '{ not json');
  const m = await loadModel(dir);
  t.teardown(() => m.dispose());
  t.throws(() => m.tokenizer.encode('x'), ModelLoadError);
  await t.rejects(m.complete('x'), { name: 'ModelLoadError', file });
  await t.rejects(loadModel(dir, { tokenizer: file }), ModelLoadError, 'an explicit path is read at load');
});
