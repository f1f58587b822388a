// lib/model/native_args.ts: the engine's load arguments carry the contract's
// per-layer fields (docs/hybrid-engine.md) for hybrid and Mamba checkpoints,
// and every resolved tensor (row slices with their own offsets). No native
// addon needed: the arguments are only built, not loaded.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveCheckpoint } from '../../lib/loaders/checkpoint';
import { nativeLoadArgs, nativeModelShape } from '../../lib/model/native_args';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { graniteConfig, jambaConfig, writeHybridCheckpoint } from '../helpers/hybrid_checkpoint';

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-args-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('jamba', async (t) => {
  const dir = tmpdir(t);
  writeHybridCheckpoint(dir, jambaConfig());
  const ck = resolveCheckpoint(dir);
  const a = nativeLoadArgs(ck, { backend: 'cpu', roundActivations: true, contextSize: 1024, kvDtype: 'f32' });
  t.same(a.layers, [
    { mixer: 'mamba1', ffn: 'mlp' }, { mixer: 'mamba1', ffn: 'moe' }, { mixer: 'attention', ffn: 'mlp' }, { mixer: 'mamba1', ffn: 'moe' },
  ]);
  t.same(
    [a.arch, a.mambaInnerNorms, a.nHeads, a.nKvHeads, a.headDim, a.attnScale, a.ropeTheta, a.ropeDim, a.mlpDim],
    ['mamba', true, 4, 2, 4, 0.5, 0, 0, 24]);
  t.same([a.moeExperts, a.moeTopK, a.moeDim, a.moeRouter, a.moeSharedDim], [4, 2, 24, 'softmax_topk', 0]);
  t.same([a.embeddingMultiplier, a.residualMultiplier, a.logitsScaling, a.contextSize, a.kvDtype], [1, 1, 1, 1024, 'f32']);
  t.same([a.dtRank, a.dInner, a.dState, a.dConv, a.gatedNormGroupSize], [1, 32, 4, 3, 32]);
  t.equal(a.tensors.length, ck.tensors.size);
  t.notOk('threads' in a);
});

t.test('granitemoehybrid: row slices keep their own offsets', async (t) => {
  const dir = tmpdir(t);
  writeHybridCheckpoint(dir, graniteConfig({ position_embedding_type: 'rope' }), { dtype: 'BF16' });
  const ck = resolveCheckpoint(dir);
  const a = nativeLoadArgs(ck, { backend: 'cpu', threads: 2, roundActivations: false, contextSize: 4096, kvDtype: 'f16' });
  t.same([a.arch, a.mambaInnerNorms, a.gatedNormGroupSize, a.attnScale, a.ropeTheta, a.ropeDim], ['mamba2', false, 32, 0.0625, 10000, 4]);
  t.same([a.moeExperts, a.moeTopK, a.moeDim, a.moeRouter, a.moeSharedDim, a.mlpDim], [3, 2, 8, 'topk_softmax', 12, 0]);
  t.same([a.embeddingMultiplier, a.residualMultiplier, a.logitsScaling, a.threads], [12, 0.25, 3, 2]);
  const byName = new Map(a.tensors.map((x) => [x.name, x]));
  const gate = byName.get('backbone.layers.0.ffn.experts.1.gate_proj.weight')!;
  const up = byName.get('backbone.layers.0.ffn.experts.1.up_proj.weight')!;
  t.same(gate.shape, [8, 16]);
  t.equal(up.offset - gate.offset, 8 * 16 * 2, 'up rows right after expert 1 gate rows');
  t.equal(gate.nbytes, 8 * 16 * 2);
});

t.test('mamba: the schedule and neutral hybrid fields', async (t) => {
  const dir = tmpdir(t);
  writeRandomCheckpoint(dir, { arch: 'mamba2', dModel: 32, nLayer: 2, vocabSize: 20, dState: 8, headdim: 8, ngroups: 2, dtype: 'f32', tied: true, dialect: 'hf', seed: 1 });
  const ck = resolveCheckpoint(dir);
  const shape = nativeModelShape(ck.config, 4096, 'f16');
  t.same(shape, {
    layers: [{ mixer: 'mamba2', ffn: 'none' }, { mixer: 'mamba2', ffn: 'none' }],
    mambaInnerNorms: false, gatedNormGroupSize: 32,
    nHeads: 0, nKvHeads: 0, headDim: 0, attnScale: 0, ropeTheta: 0, ropeDim: 0, ropeInterleaved: false, mlpDim: 0,
    moeExperts: 0, moeTopK: 0, moeDim: 0, moeRouter: 'softmax_topk', moeSharedDim: 0,
    embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1, contextSize: 4096, kvDtype: 'f16',
  });
});
