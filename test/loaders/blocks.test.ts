// lib/model/blocks: every block declares a stored name for each family whose
// layers use it, canonical names are unique, row slices fit their stored
// tensor, and a config that asks for a block its family cannot store is an
// internal error rather than a wrong tensor table. ggufTensors lists the same
// tensors under llama.cpp's names, with its ggml dims (shared/REFERENCE.md 7).
import t from 'tap';
import { normalizeConfig } from '../../lib/loaders/config';
import { FFN_BLOCKS, ggufTensors, MIXER_BLOCKS, modelTensors, storedLayerPrefix } from '../../lib/model/blocks';
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

t.test('ggufTensors: the same tensors under llama.cpp\'s names and ggml dims', async (t) => {
  for (const raw of [jambaConfig(), graniteConfig(), graniteConfig({ num_local_experts: 0 }), jambaConfig({ num_experts: 1 })]) {
    const c = normalizeConfig(raw, 'c');
    const ts = modelTensors(c), gs = ggufTensors(c);
    t.same(gs.map((g) => g.source), ts.map((x) => x.name), `${c.family}: one GGUF entry per canonical tensor, same order`);
    for (const g of gs) {
      const rows = g.dims[0].slice(1).reduce((a, b) => a * b, 1);
      if (g.rows) {
        if (!(g.rows[0] + g.rows[1] <= rows && g.dims[0][0] === g.shape[1])) t.fail(`${g.name}: rows ${g.rows} of ${g.gguf} {${g.dims[0]}}`);
      } else if (g.dims[0].reduce((a, b) => a * b, 1) !== g.shape.reduce((a, b) => a * b, 1)) {
        t.fail(`${g.name}: ${g.gguf} {${g.dims[0]}} is not [${g.shape}]`);
      }
    }
  }
  const j = ggufTensors(normalizeConfig(jambaConfig(), 'c'));
  const at = (name: string) => j.find((g) => g.gguf === name);
  // Layer 1 is mamba / MoE, layer 2 attention / MLP (hybrid_checkpoint.ts): d 16, di 32, N 4, R 1, K 3, 4 experts of 24.
  t.same(at('blk.1.ssm_x.weight')?.dims, [[32, 1 + 8]]);
  t.same(at('blk.1.ssm_a')?.dims, [[4, 32]]);
  t.equal(at('blk.1.ssm_a')?.name, 'backbone.layers.1.mixer.A', 'ssm_a is read as A');
  t.same(at('blk.1.ssm_conv1d.weight')?.shape, [32, 3], 'conv squeezed');
  t.same(at('blk.1.ffn_gate_inp.weight')?.dims, [[16, 4]]);
  t.ok(at('blk.1.ffn_gate_inp.weight')?.f32, 'the router stays F32');
  t.same(j.filter((g) => g.gguf === 'blk.1.ffn_down_exps.weight').map((g) => [g.name, g.rows]),
    [0, 1, 2, 3].map((e) => [`backbone.layers.1.ffn.experts.${e}.down_proj.weight`, [16 * e, 16]]), 'experts: row ranges of the stacked tensor');
  t.same(at('blk.1.ffn_up_exps.weight')?.dims, [[16, 24, 4]]);
  t.same(at('blk.2.attn_k.weight')?.dims, [[16, 8]]);
  t.notOk(at('blk.2.attn_q.weight')?.ropePairs, 'no RoPE: q in place');
  const rope = ggufTensors(normalizeConfig(graniteConfig({ position_embedding_type: 'rope' }), 'c'));
  t.same(rope.find((g) => g.gguf === 'blk.1.attn_k.weight')?.ropePairs, { heads: 2, headDim: 4, rotaryDim: 4 }, 'RoPE: k rows interleaved per head');
  t.same(rope.find((g) => g.gguf === 'blk.0.ssm_dt.bias')?.dims[0], [4], 'mamba2 dt bias written {H}');
});
