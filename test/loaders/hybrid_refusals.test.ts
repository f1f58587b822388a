// What hybrid checkpoints cannot do yet fails with a typed error before
// anything is written: exportGguf (a ModelLoadError naming model_type). The
// quantizer's refusal (a QuantizeError) is tested in test/quant/quantize_hybrid.test.ts,
// which needs the native addon. No native addon needed here.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf } from '../../lib/export/export_gguf';
import { graniteConfig, jambaConfig, writeHybridCheckpoint } from '../helpers/hybrid_checkpoint';

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-refuse-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('exportGguf refuses hybrid models', async (t) => {
  const root = tmpdir(t);
  for (const [name, raw] of [['jamba', jambaConfig()], ['granite', graniteConfig({ num_local_experts: 0 })]] as const) {
    const dir = path.join(root, name);
    writeHybridCheckpoint(dir, raw);
    const out = path.join(root, `${name}.gguf`);
    await t.rejects(exportGguf(dir, out), {
      name: 'ModelLoadError', field: 'model_type', file: path.join(dir, 'config.json'),
      message: /exportGguf: export is not yet supported for hybrid models/,
    }, name);
    t.notOk(fs.existsSync(out), `${name}: nothing written`);
  }
});
