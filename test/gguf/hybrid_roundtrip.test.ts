// exportGguf -> loadModel(.gguf) of Jamba and Granite 4.0-H checkpoints gives
// the logits of the Hugging Face checkpoint it came from (architectures
// `jamba` and `granitehybrid`): MoE and dense layers, Granite's packed
// experts and shared expert, Granite with the shared MLP alone (no experts),
// Granite with RoPE (q / k rows interleaved in the file for llama.cpp and put
// back in order for the engine), Granite with 2 SSM groups (the gated norm
// stays over all of d_inner, as Hugging Face computes it), tied heads, a
// missing conv bias, f32 / bf16 sources, export types f32, f16, q8_0, q4_0,
// and a file whose matrices are BF16.
//
// Bounds, relative to the logit scale s = max |logit| of the checkpoint:
// - f32 export of an f32 checkpoint: bit-identical logits. Every weight is
//   copied bit for bit (experts are row ranges of the stacked tensors, q / k
//   rows go back to their order), except A = -exp(A_log), computed here in
//   float64 and rounded where the engine computes -expf(A_log) (equal for
//   these checkpoints; see roundtrip.test.ts), and the multipliers, stored as
//   float32, which is what the engine computes with.
// - a checkpoint without conv bias is exported with a zero bias (llama.cpp's
//   jamba needs one): the conv then adds zeros in another order, within 1e-6·s.
// - f16: each matrix rounded to f16: within 5e-3·s.
// - q8_0 / q4_0: quantization noise moves logits, and near-ties in a router
//   can send a token to other experts, which moves that position's logits
//   further: per position, max |Δ| / s within 5e-2 (q8_0) / 0.5 (q4_0) for
//   at least 90% of the positions and within 1 everywhere (a wrong layout
//   gives logits unrelated to the model's, off by more than s).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, type GgufExportType, type MambaConfig } from '../../lib';
import { readGgufHeader, GgufValueType, ggufPlain, type GgufFile } from '../../lib/loaders/gguf';
import { GgufWriter } from '../../lib/export/gguf_writer';
import { encodeGgml } from '../../lib/export/export_gguf';
import { toF32 } from '../../lib/loaders/tensor_data';
import {
  graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint, type RandomHybridOptions,
} from '../../lib/testing/random_hybrid_checkpoint';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-hyb-gguf-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

function tokensFor(n: number, V: number, seed: number): number[] {
  let s = seed * 7919 + 13;
  return Array.from({ length: n }, () => (s = (s * 48271) % 2147483647) % V);
}

/** Per position, max |a - b| over the vocabulary divided by `scale`. */
function positionErrors(a: Float32Array, b: Float32Array, V: number, scale: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < a.length / V; p++) {
    let m = a.length === b.length ? 0 : Infinity;
    for (let v = p * V; v < (p + 1) * V; v++) {
      const d = Math.abs(a[v] - b[v]);
      if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
    }
    out.push(m / scale);
  }
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const f32 = (x: number) => Math.fround(x);

interface Case {
  name: string;
  opts: RandomHybridOptions;
  types: GgufExportType[];
  /** Bound of the f32 export (0: bit-identical). */
  f32Bound?: number;
}

const cases: Case[] = [
  { name: 'jamba', opts: jambaTinyPreset(), types: ['f32', 'f16', 'q8_0', 'q4_0'] },
  { name: 'jamba tied, no conv bias', opts: jambaTinyPreset({ tied: true, mambaConvBias: false, seed: 4 }), types: ['f32', 'q8_0'], f32Bound: 1e-6 },
  { name: 'granite moe + shared', opts: graniteTinyPreset(), types: ['f32', 'f16', 'q8_0', 'q4_0'] },
  { name: 'granite dense (no experts)', opts: graniteTinyPreset({ experts: 0, seed: 9 }), types: ['f32', 'q8_0'] },
  // The file's reordered q / k rows with interleaved RoPE give the same scores in another summation order.
  { name: 'granite rope', opts: graniteTinyPreset({ positionEmbeddingType: 'rope', ropeTheta: 5000, seed: 7 }), types: ['f32', 'q8_0'], f32Bound: 1e-6 },
  { name: 'granite 2 groups, tied, no conv bias', opts: graniteTinyPreset({ mambaNGroups: 2, tied: true, mambaConvBias: false, seed: 12 }), types: ['f32'] },
];

/**
 * The config fields a GGUF file carries, as the engine uses them (float32 where the file stores float32).
 * The RoPE pairing is not one: a file's q / k rows are in llama.cpp's order, which the engine rotates in
 * adjacent pairs (ropeInterleaved), the checkpoint's in Hugging Face's.
 */
function carried(c: MambaConfig): Record<string, unknown> {
  return {
    arch: c.arch, family: c.family, layers: c.layers, dModel: c.dModel, nLayer: c.nLayer, vocabSize: c.vocabSize,
    dState: c.dState, dConv: c.dConv, dInner: c.dInner, dtRank: c.dtRank, headdim: c.headdim, nheads: c.nheads, ngroups: c.ngroups,
    normEps: f32(c.normEps), tieEmbeddings: c.tieEmbeddings, useBias: c.useBias,
    attention: c.attention && { ...c.attention, scale: f32(c.attention.scale), ropeInterleaved: undefined },
    mlpDim: c.mlpDim, moe: c.moe, mambaInnerNorms: c.mambaInnerNorms, gatedNormGroupSize: c.gatedNormGroupSize,
    multipliers: c.multipliers && { embedding: f32(c.multipliers.embedding), residual: f32(c.multipliers.residual), logits: f32(c.multipliers.logits) },
  };
}


t.test('exported jamba / granitehybrid GGUF reproduces the checkpoint logits', async (t) => {
  for (const { name, opts, types, f32Bound = 0 } of cases) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    writeRandomHybridCheckpoint(dir, opts);
    writeTinyTokenizer(dir);
    const ref = await loadModel(dir, { inputRounding: 'none', kvCacheType: 'f32' });
    const V = ref.vocabSize;
    const tokens = tokensFor(33, V, name.length);
    const want = await ref.forward(tokens);
    const scale = maxAbs(want);
    const arch = opts.family === 'jamba' ? 'jamba' : 'granitehybrid';

    for (const type of types) {
      const label = `${name} ${type}`;
      const file = path.join(root, `${name.replace(/\W+/g, '_')}.${type}.gguf`);
      await exportGguf(dir, file, { type });
      const g = readGgufHeader(file);
      t.equal(ggufPlain(g.metadata.get('general.architecture')!.value), arch, `${label}: architecture`);
      const kv = ggufPlain(g.metadata.get(`${arch}.attention.head_count_kv`)!.value);
      t.same(kv, ref.config.layers.map((l) => (l.mixer === 'attention' ? opts.nKvHeads : 0)), `${label}: head_count_kv marks the attention layers`);
      const moeLayer = ref.config.layers.findIndex((l) => l.ffn === 'moe');
      if (moeLayer >= 0) {
        const b = `blk.${moeLayer}.`;
        t.equal(g.tensors.get(`${b}ffn_gate_inp.weight`)?.type, 'F32', `${label}: the router stays F32`);
        t.same(g.tensors.get(`${b}ffn_down_exps.weight`)?.dims, [opts.expertDim, opts.hiddenSize, opts.experts], `${label}: stacked experts {Ie, d, E}`);
        const want = { f32: 'F32', f16: 'F16', q8_0: 'Q8_0', q4_0: 'Q4_0' }[type];
        t.equal(g.tensors.get(`${b}ffn_up_exps.weight`)?.type, want, `${label}: experts as ${want}`);
      } else {
        t.notOk([...g.tensors.keys()].some((n) => n.includes('_exps') || n.includes('ffn_gate_inp')), `${label}: no expert tensors`);
      }
      t.equal(g.tensors.get('blk.0.ssm_a')?.type, 'F32', `${label}: ssm_a stays F32`);

      const m = await loadModel(file, { inputRounding: 'none', kvCacheType: 'f32' });
      if (type === 'f32') t.same(carried(m.config), carried(ref.config), `${label}: the config comes back`);
      const got = await m.forward(tokens);
      const errs = positionErrors(got, want, V, scale);
      const worst = Math.max(...errs);
      if (type === 'f32' || type === 'f16') {
        const b = type === 'f32' ? f32Bound : 5e-3;
        t.ok(worst <= b, `${label}: max |Δlogit| = ${worst.toExponential(3)}·scale (bound ${b}·scale, scale ${scale.toFixed(3)})`);
      } else {
        const b = type === 'q8_0' ? 5e-2 : 0.5;
        const within = errs.filter((e) => e <= b).length;
        t.ok(within >= 0.9 * errs.length && worst <= 1,
          `${label}: ${within}/${errs.length} positions within ${b}·scale, worst ${worst.toExponential(3)}·scale (median ${[...errs].sort((a, b) => a - b)[errs.length >> 1].toExponential(2)})`);
      }
      if (name === 'granite rope' && type === 'f32') {
        // The fingerprint reads the GGUF itself (the temporary file is gone): snapshots still work.
        const s = await m.createSequence();
        await s.prefill(tokens.slice(0, 9));
        const snap = await s.snapshot();
        const next = Array.from(await s.step(tokens[9]));
        await s.restore(snap);
        t.same(Array.from(await s.step(tokens[9])), next, `${label}: snapshot and restore`);
        await s.dispose();
      }
      m.dispose();
    }
    ref.dispose();
  }
});

// With rounded inputs (the default) Q8_0 matrices and experts are packed into
// panels at load and multiplied in int8; NODE_MAMBA_BLOCK_PANELS=0 keeps them
// in rows (float products of the same rounded inputs). The two differ only
// in float32 summation order, so the logits agree to ~1e-4 of their scale; a router near-tie
// may still send a token elsewhere, hence "90% of the positions". Prefill
// and decode steps both.
t.test('q8_0 hybrids: matrices and experts in panels give the logits of the rows layout', async (t) => {
  for (const { name, opts } of [cases[0], cases[2]]) {
    const dir = path.join(root, `panels_${name.replace(/\W+/g, '_')}`);
    writeRandomHybridCheckpoint(dir, opts);
    writeTinyTokenizer(dir);
    const file = path.join(dir, 'q8_0.gguf');
    await exportGguf(dir, file, { type: 'q8_0' });
    const run = async (panels: boolean) => {
      if (panels) delete process.env.NODE_MAMBA_BLOCK_PANELS;
      else process.env.NODE_MAMBA_BLOCK_PANELS = '0';
      const m = await loadModel(file, { kvCacheType: 'f32' });
      delete process.env.NODE_MAMBA_BLOCK_PANELS;
      const tokens = tokensFor(25, m.vocabSize, 5);
      const all = await m.forward(tokens);
      const seq = await m.createSequence();
      await seq.prefill(tokens.slice(0, -4));
      const steps: number[] = [];
      for (const tok of tokens.slice(-4)) steps.push(...(await seq.step(tok)));
      await seq.dispose();
      const V = m.vocabSize;
      m.dispose();
      return { all, steps: Float32Array.from(steps), V };
    };
    const p = await run(true), r = await run(false);
    const scale = maxAbs(r.all);
    for (const [what, a, b] of [['prefill', p.all, r.all], ['decode', p.steps, r.steps]] as const) {
      const errs = positionErrors(a, b, p.V, scale);
      const within = errs.filter((e) => e <= 1e-4).length;
      t.ok(within >= 0.9 * errs.length && Math.max(...errs) <= 1,
        `${name} q8_0 ${what}: ${within}/${errs.length} positions within 1e-4·scale of the rows layout, worst ${Math.max(...errs).toExponential(3)}·scale`);
    }
  }
});

/** `src` rewritten with every F32 matrix (2-D and 3-D weights but the routers) as BF16. */
async function asBf16(src: string, dst: string): Promise<GgufFile> {
  const g = readGgufHeader(src);
  const bytes = fs.readFileSync(src);
  const w = new GgufWriter();
  for (const [k, e] of g.metadata) w.add(k, e.type, e.value);
  for (const ti of g.tensors.values()) {
    const data = bytes.subarray(ti.offset, ti.offset + ti.nbytes);
    const matrix = ti.dims.length >= 2 && ti.name.endsWith('.weight') && !/ssm_conv1d|ssm_norm|ffn_gate_inp/.test(ti.name);
    if (!matrix) {
      w.tensor({ name: ti.name, dims: ti.dims, type: ti.type, data: () => data });
      continue;
    }
    const n = ti.dims.reduce((a, b) => a * b, 1);
    w.tensor({ name: ti.name, dims: ti.dims, type: 'BF16', data: () => encodeGgml(toF32(Buffer.from(data), 'f32', n, src, ti.name), 'BF16', ti.dims[0]) });
  }
  await w.write(dst);
  return readGgufHeader(dst);
}

t.test('BF16 matrices (attention, experts, feed-forwards) read as the checkpoint\'s bf16 weights', async (t) => {
  for (const [name, opts] of [['jamba bf16', jambaTinyPreset({ dtype: 'bf16', seed: 21 })], ['granite bf16', graniteTinyPreset({ dtype: 'bf16', seed: 22 })]] as const) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    writeRandomHybridCheckpoint(dir, opts);
    writeTinyTokenizer(dir);
    const f32file = path.join(root, `${name.replace(/\W+/g, '_')}.f32.gguf`);
    await exportGguf(dir, f32file, { type: 'f32' });
    const g = await asBf16(f32file, path.join(root, `${name.replace(/\W+/g, '_')}.bf16.gguf`));
    t.equal(g.tensors.get('blk.1.ffn_gate_exps.weight')?.type, 'BF16', `${name}: experts BF16`);
    t.equal(g.tensors.get('blk.2.attn_q.weight')?.type ?? g.tensors.get('blk.1.attn_q.weight')?.type, 'BF16', `${name}: attention BF16`);
    const ref = await loadModel(dir, { inputRounding: 'none', kvCacheType: 'f32' });
    const m = await loadModel(g.file, { inputRounding: 'none', kvCacheType: 'f32' });
    const tokens = tokensFor(21, ref.vocabSize, 5);
    const want = await ref.forward(tokens);
    const errs = positionErrors(await m.forward(tokens), want, ref.vocabSize, maxAbs(want));
    t.equal(Math.max(...errs), 0, `${name}: bit-identical logits`);
    m.dispose();
    ref.dispose();
  }
});

t.test('exportGguf refuses hybrid projection biases (llama.cpp has none), writing nothing', async (t) => {
  for (const [name, opts] of [['jamba bias', jambaTinyPreset({ mambaProjBias: true })], ['granite bias', graniteTinyPreset({ mambaProjBias: true })]] as const) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    writeRandomHybridCheckpoint(dir, opts);
    writeTinyTokenizer(dir);
    const file = path.join(root, `${name.replace(/\W+/g, '_')}.gguf`);
    await t.rejects(exportGguf(dir, file, { type: 'f32' }), { name: 'ModelLoadError', field: 'mamba_proj_bias', message: /no in_proj \/ out_proj biases/ }, name);
    t.notOk(fs.existsSync(file), `${name}: no file written`);
  }
  t.same(fs.readdirSync(root).filter((f) => f.includes('.tmp-')), [], 'no temporary file left');
});

t.test('granitehybrid metadata: Granite scales, expert sizes, RoPE switch', async (t) => {
  const dir = path.join(root, 'granite_rope');
  const file = path.join(root, 'granite_rope.f32.gguf');
  const g = readGgufHeader(file);
  const get = (k: string) => ggufPlain(g.metadata.get(`granitehybrid.${k}`)!.value);
  t.equal(get('embedding_scale'), 12);
  t.equal(get('residual_scale'), f32(0.22));
  t.equal(get('logit_scale'), 6);
  t.equal(get('attention.scale'), 1 / 16);
  t.equal(get('expert_count'), 8);
  t.equal(get('expert_used_count'), 2);
  t.equal(get('feed_forward_length'), 32);
  t.equal(get('expert_shared_feed_forward_length'), 64);
  t.equal(get('rope.scaling.finetuned'), true);
  t.equal(get('rope.freq_base'), 5000);
  t.equal(get('ssm.time_step_rank'), 12, 'the SSM head count');
  t.equal(get('context_length'), 131072, 'with RoPE: max_position_embeddings');
  t.equal(g.metadata.get('granitehybrid.attention.head_count_kv')?.type, GgufValueType.ARRAY);
  const nope = readGgufHeader(path.join(root, 'granite_moe_shared.f32.gguf'));
  t.equal(ggufPlain(nope.metadata.get('granitehybrid.rope.scaling.finetuned')!.value), false, 'no RoPE: finetuned false');
  t.notOk(nope.metadata.has('granitehybrid.rope.freq_base'));
  const dense = readGgufHeader(path.join(root, 'granite_dense_no_experts_.f32.gguf'));
  t.notOk(dense.metadata.has('granitehybrid.expert_count'), 'dense: no expert keys');
  t.equal(ggufPlain(dense.metadata.get('granitehybrid.feed_forward_length')!.value), 64, 'dense: the shared MLP width');
  t.ok(dense.tensors.has('blk.0.ffn_gate.weight') && !dense.tensors.has('blk.0.ffn_gate_shexp.weight'), 'dense: the shared MLP is ffn_gate / ffn_up / ffn_down');
  t.ok(fs.existsSync(dir));
});
