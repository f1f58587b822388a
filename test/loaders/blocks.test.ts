// lib/model/blocks: every block declares a stored name for each family whose
// layers use it, canonical names are unique, row slices fit their stored
// tensor, and a config that asks for a block its family cannot store is an
// internal error rather than a wrong tensor table.
import t from 'tap';
import { normalizeConfig } from '../../lib/loaders/config';
import { FFN_BLOCKS, MIXER_BLOCKS, modelTensors, storedLayerPrefix } from '../../lib/model/blocks';
import type { ModelFamily } from '../../lib/model/config';
import { graniteConfig, jambaConfig } from '../helpers/hybrid_checkpoint';

const USERS: Record<string, ModelFamily[]> = {
  mamba1: ['mamba', 'jamba'], mamba2: ['mamba2', 'granitemoehybrid'],
  attention: ['jamba', 'granitemoehybrid'], mlp: ['jamba', 'granitemoehybrid'], moe: ['jamba', 'granitemoehybrid'],
};

t.test('every block names its tensors for the families that use it', async (t) => {
  for (const block of [...Object.values(MIXER_BLOCKS), ...Object.values(FFN_BLOCKS)]) {
    for (const d of block.tensors) {
      // Jamba's inner norms and Granite's shared expert belong to one family each.
      const only: ModelFamily[] | undefined = /^mixer\.(dt|B|C)_norm\./.test(d.role) ? ['jamba'] : d.role.startsWith('ffn.shared.') ? ['granitemoehybrid'] : undefined;
      const families = only ?? USERS[block.kind];
      for (const f of families) t.ok(d.stored[f] !== undefined, `${block.kind} ${d.role}: ${f}`);
      t.equal(d.kind === 'experts', d.role.includes('{e}'), `${d.role}: {e} iff per expert`);
    }
  }
});

t.test('canonical names are unique and row slices stay inside their stored tensor', async (t) => {
  for (const raw of [jambaConfig(), graniteConfig(), graniteConfig({ num_local_experts: 0 }), jambaConfig({ num_experts: 1 })]) {
    const c = normalizeConfig(raw, 'c');
    const ts = modelTensors(c);
    t.equal(new Set(ts.map((x) => x.name)).size, ts.length, `${c.family}: unique`);
    for (const x of ts) {
      if (!x.slice) continue;
      const rows = x.slice.storedShape.slice(0, -1).reduce((a, b) => a * b, 1);
      const [first, count] = x.slice.rows;
      if (!(first >= 0 && count > 0 && first + count <= rows)) t.fail(`${x.name}: rows ${first}+${count} of ${rows}`);
    }
    t.ok(ts.every((x) => x.linear === (x.kind !== 'vector')));
  }
  t.equal(storedLayerPrefix('mamba2', 3), 'backbone.layers.3.');
  t.equal(storedLayerPrefix('jamba', 3), 'model.layers.3.');
});

t.test('a schedule the family cannot store is an internal error', async (t) => {
  const c = normalizeConfig({ model_type: 'mamba', hidden_size: 16, num_hidden_layers: 2, vocab_size: 10 }, 'c');
  t.throws(() => modelTensors({ ...c, layers: [{ mixer: 'attention', ffn: 'none' }, c.layers[1]] }), /internal error/);
  t.throws(() => modelTensors({ ...c, layers: c.layers.slice(1) }), /internal error: the config lists 1 layers/);
  t.throws(() => modelTensors({ ...c, layers: [{ mixer: 'mamba1', ffn: 'mlp' }, c.layers[1]] }), /internal error/);
});
