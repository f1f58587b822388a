// quantize() refuses hybrid models (Jamba, Granite 4.0-H) with a QuantizeError
// naming the model before anything is written. Needs the native addon only to
// import the library (no model is loaded).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { quantize } from '../../lib';
import { graniteConfig, jambaConfig, writeHybridCheckpoint } from '../helpers/hybrid_checkpoint';

t.test('quantize refuses hybrid models', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-qhyb-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const [name, raw] of [['jamba', jambaConfig()], ['granite', graniteConfig()]] as const) {
    const dir = path.join(root, name);
    writeHybridCheckpoint(dir, raw);
    const out = path.join(root, `${name}-q`);
    await t.rejects(quantize({ model: dir, output: out, scheme: 'w4a16' }), {
      name: 'QuantizeError', field: 'model', file: path.join(dir, 'config.json'),
      message: /not yet supported for hybrid models/,
    }, name);
    t.notOk(fs.existsSync(out), `${name}: nothing written`);
  }
});
