// lib/errors.ts: class chain, names, codes, and messages that name file and field.
import t from 'tap';
import { DisposedError, MambaError, ModelLoadError } from '../../lib/errors';

t.test('ModelLoadError names file and field', async (t) => {
  const e = new ModelLoadError('tensor shape disagrees', { file: '/m/model.safetensors', field: 'lm_head.weight', expected: [4, 2], actual: [4, 3] });
  t.ok(e instanceof ModelLoadError);
  t.ok(e instanceof MambaError);
  t.ok(e instanceof Error);
  t.equal(e.name, 'ModelLoadError');
  t.equal(e.code, 'ERR_MODEL_LOAD');
  t.equal(e.file, '/m/model.safetensors');
  t.equal(e.field, 'lm_head.weight');
  t.equal(e.reason, 'tensor shape disagrees');
  t.match(e.message, /\/m\/model\.safetensors/);
  t.match(e.message, /lm_head\.weight/);
  t.match(e.message, /expected \[4, 2\], got \[4, 3\]/);
  t.match(String(e), /^ModelLoadError: /);
  t.match(e.stack ?? '', /ModelLoadError/);
});

t.test('ModelLoadError without a field', async (t) => {
  const cause = new Error('ENOENT');
  const e = new ModelLoadError('config.json not found', { file: '/m/config.json', cause });
  t.equal(e.field, undefined);
  t.equal(e.cause, cause);
  t.match(e.message, /config\.json not found \(in \/m\/config\.json\)/);
  t.notMatch(e.message, /field/);
});

t.test('DisposedError', async (t) => {
  const m = new DisposedError('model');
  const s = new DisposedError('sequence');
  t.ok(m instanceof MambaError);
  t.equal(m.name, 'DisposedError');
  t.equal(m.code, 'ERR_DISPOSED');
  t.equal(m.message, 'model has been disposed');
  t.equal(s.message, 'sequence has been disposed');
  t.equal(new DisposedError().message, 'model has been disposed');
});

t.test('MambaError', async (t) => {
  const e = new MambaError('x', 'ERR_X');
  t.equal(e.name, 'MambaError');
  t.equal(e.code, 'ERR_X');
  t.equal(new MambaError('y').code, 'ERR_MAMBA');
});
