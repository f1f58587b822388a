// What hybrid checkpoints cannot do fails with a typed error before anything
// is written: exportGguf of what llama.cpp's jamba / granitehybrid cannot
// represent (a ModelLoadError naming the config key). The
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

t.test('exportGguf refuses hybrids llama.cpp cannot represent, before writing anything', async (t) => {
  const root = tmpdir(t);
  // (projection biases: test/gguf/hybrid_roundtrip.test.ts, whose writer stores them)
  const cases: Array<[string, ReturnType<typeof jambaConfig>, string, RegExp]> = [
    ['jamba expand 3', jambaConfig({ mamba_expand: 3 }), 'mamba_expand', /llama.cpp's jamba supports only an expansion factor of 2/],
    ['granite dense expand 4', graniteConfig({ num_local_experts: 0, mamba_expand: 4 }), 'mamba_expand', /granitehybrid supports only an expansion factor of 2/],
  ];
  for (const [name, raw, field, re] of cases) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    writeHybridCheckpoint(dir, raw);
    const out = path.join(root, `${name.replace(/\W+/g, '_')}.gguf`);
    await t.rejects(exportGguf(dir, out), { name: 'ModelLoadError', field, file: path.join(dir, 'config.json'), message: re }, name);
    t.notOk(fs.existsSync(out), `${name}: nothing written`);
  }
});
