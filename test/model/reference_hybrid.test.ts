// The float64 hybrid reference (test/helpers/reference_hybrid.ts) and the
// random hybrid checkpoint writer (lib/testing/random_hybrid_checkpoint.ts)
// checked against each other and against identities that only hold if the
// math is right: prefill then decode equals one prefill; the stateful Mamba
// blocks equal reference_model.ts's mixers; a MoE of identical experts equals
// a dense MLP (block and whole model); one attention token is its value path;
// Granite's all-attention, no-MoE model equals the same Jamba model under the
// other family's names; RMSNorm scale invariances expose where the norms and
// multipliers sit; f16 / bf16 checkpoints are the f32 one rounded; the files
// read back through the loader's safetensors header reader.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MambaConfig } from '../../lib/model/config';
import { readSafetensorsHeader } from '../../lib/loaders/safetensors';
import { bf16Value, bf16Bits, f16Bits, f16Value, rng } from '../../lib/testing/random_checkpoint';
import {
  graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint, type RandomHybridCheckpoint, type RandomHybridOptions,
} from '../../lib/testing/random_hybrid_checkpoint';
import { mamba1Mixer, mamba2Mixer, linear } from '../helpers/reference_model';
import { HybridReference, hybridLayout, hybridReferenceForward, type HybridWeights } from '../helpers/reference_hybrid';
import {
  applyRope, attentionBlock, mamba1Block, mamba2Block, moeBlock, newKvCache, newMamba1State, newMamba2State, route, swiGlu,
  tensorSource, type Mamba1Dims, type Mamba2Dims, type SwiGluWeights,
} from '../helpers/reference_hybrid_blocks';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-hybrid-ref-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
function write(opts: RandomHybridOptions): RandomHybridCheckpoint {
  return writeRandomHybridCheckpoint(path.join(root, `ck${dirs++}`), opts);
}

/** max |a - b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}
function close(t: Test, a: ArrayLike<number>, b: ArrayLike<number>, tol: number, msg: string): void {
  const e = relErr(a, b);
  t.ok(e <= tol, `${msg} (rel err ${e.toExponential(2)} <= ${tol})`);
}
function differ(t: Test, a: ArrayLike<number>, b: ArrayLike<number>, min: number, msg: string): void {
  const e = relErr(a, b);
  t.ok(e >= min, `${msg} (rel diff ${e.toExponential(2)} >= ${min})`);
}

function tokens(n: number, V: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * V));
}
function randn(r: () => number, n: number, std = 1, mean = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  return out;
}
function copyWeights(w: HybridWeights): HybridWeights {
  return new Map([...w].map(([k, v]) => [k, v.slice()]));
}
function stats(x: ArrayLike<number>): { mean: number; std: number } {
  let s = 0, s2 = 0;
  for (let i = 0; i < x.length; i++) { s += x[i]; s2 += x[i] * x[i]; }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean) };
}

// ---------------------------------------------------------------------------
t.test('presets: shapes, schedule, scale and a well-scaled forward', async (t) => {
  const j = jambaTinyPreset(), g = graniteTinyPreset();
  t.match(j, { hiddenSize: 64, nLayer: 6, vocabSize: 512, nHeads: 4, nKvHeads: 2, experts: 4, topK: 2, expertDim: 128 });
  t.match(g, { hiddenSize: 96, nLayer: 6, vocabSize: 512, nHeads: 6, nKvHeads: 2, experts: 8, topK: 2, expertDim: 32, sharedDim: 64, mambaNHeads: 12 });
  t.match(jambaTinyPreset({ scale: 2 }), { hiddenSize: 128, expertDim: 256, vocabSize: 1024 });
  t.match(graniteTinyPreset({ scale: 8 }), { hiddenSize: 768, mambaNHeads: 24, mambaDState: 128, attentionMultiplier: 1 / 128 });
  t.throws(() => jambaTinyPreset({ scale: 1.5 }));
  for (const opts of [j, g, graniteTinyPreset({ positionEmbeddingType: 'rope', tied: true })]) {
    const ck = write(opts);
    const kinds = ck.layers.map((l) => `${l.mixer}/${l.ffn}`);
    t.ok(ck.layers.some((l) => l.mixer === 'attention') && ck.layers.some((l) => l.mixer !== 'attention'), `${opts.family}: attention and Mamba layers (${kinds})`);
    t.ok(ck.layers.some((l) => l.ffn === 'moe'), `${opts.family}: a MoE layer`);
    t.same(hybridLayout(ck.config).layers, ck.layers, `${opts.family}: the reference reads the schedule the writer meant`);
    const ref = new HybridReference(ck.config, ck.weights);
    const T = 32, V = opts.vocabSize;
    const logits = ref.prefill(tokens(T, V, 7));
    const s = stats(logits);
    const tiedGranite = opts.family === 'granitemoehybrid' && opts.tied;
    // a tied Granite head is the 1/embedding_multiplier-scaled embedding: flatter logits by design
    const [lo, hi] = tiedGranite ? [0.02, 1] : [0.3, 3];
    t.ok(s.std > lo && s.std < hi && Number.isFinite(s.mean), `${opts.family}: logits std ${s.std.toFixed(3)} in (${lo}, ${hi})`);
    const used = new Set(ref.routing.flatMap((r) => r.experts));
    t.equal(used.size, opts.experts, `${opts.family}: every expert is chosen for some token`);
    const gap = ref.minRouterGap();
    t.ok(gap > 1e-4, `${opts.family}: smallest top-k router gap ${gap.toExponential(2)} is far from a tie`);
    const distinct = new Set(ref.routing.map((r) => r.experts.join(','))).size;
    t.ok(distinct > 3, `${opts.family}: ${distinct} distinct expert sets (routing not degenerate)`);
  }
});

t.test('writer: tensor names and shapes per family and schedule', async (t) => {
  const j = write(jambaTinyPreset());
  const d = 64, I = 128, E = 4, di = 128, N = 16, R = 4, V = 512, hd = 16;
  const jn = [...j.weights.keys()];
  for (const [i, l] of j.layers.entries()) {
    const p = `model.layers.${i}.`;
    t.equal(jn.some((n) => n.startsWith(p + 'self_attn.')), l.mixer === 'attention', `jamba layer ${i}: self_attn iff attention`);
    t.equal(jn.some((n) => n.startsWith(p + 'mamba.')), l.mixer === 'mamba1', `jamba layer ${i}: mamba iff Mamba`);
    t.equal(j.weights.has(p + 'feed_forward.router.weight'), l.ffn === 'moe', `jamba layer ${i}: router iff MoE`);
    t.equal(j.weights.has(p + 'feed_forward.gate_proj.weight'), l.ffn === 'mlp', `jamba layer ${i}: dense MLP iff not MoE`);
    t.ok(j.weights.has(p + 'input_layernorm.weight') && j.weights.has(p + 'pre_ff_layernorm.weight'));
  }
  t.same(j.shapes.get('model.layers.0.mamba.in_proj.weight'), [2 * di, d]);
  t.same(j.shapes.get('model.layers.0.mamba.conv1d.weight'), [di, 1, 4]);
  t.same(j.shapes.get('model.layers.0.mamba.x_proj.weight'), [R + 2 * N, di]);
  t.same(j.shapes.get('model.layers.0.mamba.dt_layernorm.weight'), [R]);
  t.same(j.shapes.get('model.layers.0.mamba.b_layernorm.weight'), [N]);
  t.same(j.shapes.get('model.layers.0.mamba.c_layernorm.weight'), [N]);
  t.same(j.shapes.get('model.layers.0.mamba.A_log'), [di, N]);
  t.same(j.shapes.get('model.layers.1.self_attn.q_proj.weight'), [4 * hd, d]);
  t.same(j.shapes.get('model.layers.1.self_attn.k_proj.weight'), [2 * hd, d]);
  t.same(j.shapes.get('model.layers.1.self_attn.o_proj.weight'), [d, 4 * hd]);
  t.same(j.shapes.get('model.layers.1.feed_forward.router.weight'), [E, d]);
  t.same(j.shapes.get(`model.layers.1.feed_forward.experts.${E - 1}.down_proj.weight`), [d, I]);
  t.notOk(j.weights.has(`model.layers.1.feed_forward.experts.${E}.down_proj.weight`));
  t.same(j.shapes.get('model.final_layernorm.weight'), [d]);
  t.same(j.shapes.get('lm_head.weight'), [V, d]);
  t.match(j.config, { model_type: 'jamba', attn_layer_period: 3, attn_layer_offset: 1, expert_layer_period: 2, expert_layer_offset: 1, num_experts: 4, mamba_dt_rank: 4, tie_word_embeddings: false });

  const g = write(graniteTinyPreset({ tied: true }));
  const gd = 96, gI = 32, gIs = 64, gE = 8, gdi = 192, gN = 32, H = 12;
  for (const [i, l] of g.layers.entries()) {
    const p = `model.layers.${i}.`;
    t.equal(g.weights.has(p + 'self_attn.q_proj.weight'), l.mixer === 'attention', `granite layer ${i}: self_attn iff attention`);
    t.same(g.shapes.get(p + 'block_sparse_moe.router.layer.weight'), [gE, gd]);
    t.same(g.shapes.get(p + 'block_sparse_moe.input_linear.weight'), [gE, 2 * gI, gd]);
    t.same(g.shapes.get(p + 'block_sparse_moe.output_linear.weight'), [gE, gd, gI]);
    t.same(g.shapes.get(p + 'shared_mlp.input_linear.weight'), [2 * gIs, gd]);
    t.same(g.shapes.get(p + 'shared_mlp.output_linear.weight'), [gd, gIs]);
    t.ok(g.weights.has(p + 'post_attention_layernorm.weight'));
  }
  t.same(g.shapes.get('model.layers.0.mamba.in_proj.weight'), [gdi + gdi + 2 * gN + H, gd]);
  t.same(g.shapes.get('model.layers.0.mamba.conv1d.weight'), [gdi + 2 * gN, 1, 4]);
  t.same(g.shapes.get('model.layers.0.mamba.norm.weight'), [gdi]);
  t.same(g.shapes.get('model.layers.0.mamba.dt_bias'), [H]);
  t.ok(g.weights.has('model.norm.weight'));
  t.notOk(g.weights.has('lm_head.weight'), 'tied: no lm_head');
  t.match(g.config, { model_type: 'granitemoehybrid', num_local_experts: 8, shared_intermediate_size: 64, mamba_n_heads: 12, mamba_d_head: 16, embedding_multiplier: 12, residual_multiplier: 0.22, logits_scaling: 6, position_embedding_type: 'nope' });

  const dense = write(graniteTinyPreset({ experts: 0 }));
  t.notOk([...dense.weights.keys()].some((n) => n.includes('block_sparse_moe')), 'granite experts 0: no block_sparse_moe tensors');
  t.ok(dense.layers.every((l) => l.ffn === 'mlp'));
  const allDense = write(jambaTinyPreset({ experts: 1 }));
  t.notOk([...allDense.weights.keys()].some((n) => n.includes('router')), 'jamba num_experts 1: every layer dense');

  t.throws(() => write(jambaTinyPreset({ attnLayerOffset: 3 })), /attnLayerOffset/);
  t.throws(() => write(graniteTinyPreset({ layerTypes: ['mamba'] })), /layerTypes/);
  t.throws(() => write(jambaTinyPreset({ topK: 5 })), /topK/);
  t.throws(() => write(graniteTinyPreset({ mambaNHeads: 7 })), /mambaNHeads/);
});

t.test('writer: files round-trip through the safetensors header reader', async (t) => {
  for (const [opts, dtype, shards] of [
    [jambaTinyPreset(), 'f32', 1], [graniteTinyPreset(), 'bf16', 3], [jambaTinyPreset({ tied: true }), 'f16', 2],
  ] as const) {
    const ck = write({ ...opts, dtype, shards });
    const dir = path.dirname(ck.files[0]);
    t.equal(ck.files.length, shards);
    t.same(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), ck.config, `${opts.family} ${dtype}: config.json is the returned config`);
    if (shards > 1) {
      const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
      t.same(Object.keys(index.weight_map).sort(), [...ck.weights.keys()].sort(), 'the index maps every tensor');
    }
    const seen = new Set<string>();
    let mismatches = 0;
    for (const file of ck.files) {
      const st = readSafetensorsHeader(file);
      const bytes = fs.readFileSync(file);
      for (const [name, info] of st.tensors) {
        seen.add(name);
        t.equal(info.dtype, { f32: 'F32', f16: 'F16', bf16: 'BF16' }[dtype]);
        if (JSON.stringify(info.shape) !== JSON.stringify(ck.shapes.get(name))) mismatches++;
        const want = ck.weights.get(name)!;
        for (let i = 0; i < want.length; i++) {
          const v = dtype === 'f32' ? bytes.readFloatLE(info.offset + 4 * i)
            : dtype === 'f16' ? f16Value(bytes.readUInt16LE(info.offset + 2 * i)) : bf16Value(bytes.readUInt16LE(info.offset + 2 * i));
          if (v !== want[i]) { mismatches++; break; }
        }
      }
    }
    t.equal(mismatches, 0, `${opts.family} ${dtype} x${shards}: every tensor's shape and values as returned`);
    t.same([...seen].sort(), [...ck.weights.keys()].sort(), 'every tensor is stored once');
  }
});

t.test('writer: config.json in Python\'s dialect (time_step_limit with Infinity)', async (t) => {
  const ck = write(graniteTinyPreset({ timeStepLimit: [0, Infinity] }));
  const text = fs.readFileSync(path.join(path.dirname(ck.files[0]), 'config.json'), 'utf8');
  t.match(text, /"time_step_limit": \[\s*0,\s*Infinity\s*\]/, 'a bare Infinity token, as json.dumps writes it');
  t.same(JSON.parse(text.replace(/\bInfinity\b/g, '1e999')), ck.config, 'otherwise the returned config');
  t.same(hybridLayout(ck.config).mamba2!.dtLimit, [0, Infinity]);
  const toks = tokens(6, 512, 4);
  const { time_step_limit: _, ...without } = ck.config;
  close(t, hybridReferenceForward(ck.config, ck.weights, toks), hybridReferenceForward(without, ck.weights, toks), 0, '[0, Infinity] is no clamp');
});

t.test('writer: f16 / bf16 checkpoints are the f32 one rounded; the seed decides', async (t) => {
  for (const base of [jambaTinyPreset(), graniteTinyPreset()]) {
    const a = write({ ...base, dtype: 'f32' });
    const toks = tokens(12, base.vocabSize, 3);
    const la = hybridReferenceForward(a.config, a.weights, toks);
    for (const [dtype, bits, value] of [['f16', f16Bits, f16Value], ['bf16', bf16Bits, bf16Value]] as const) {
      const b = write({ ...base, dtype });
      let bad = 0, changed = 0;
      for (const [name, w32] of a.weights) {
        const w = b.weights.get(name)!;
        for (let i = 0; i < w.length; i++) {
          if (w[i] !== value(bits(w32[i]))) bad++;
          if (w[i] !== w32[i]) changed++;
        }
      }
      t.equal(bad, 0, `${base.family} ${dtype}: every weight is the f32 weight rounded`);
      t.ok(changed > 0, `${base.family} ${dtype}: rounding changed weights`);
      t.same({ ...b.config, torch_dtype: 0 }, { ...a.config, torch_dtype: 0 }, 'same config but torch_dtype');
      const lb = hybridReferenceForward(b.config, b.weights, toks);
      const e = relErr(lb, la);
      t.ok(e > 0 && e < (dtype === 'f16' ? 0.01 : 0.1), `${base.family} ${dtype}: logits move by rounding only (rel ${e.toExponential(2)})`);
    }
    const same = write({ ...base });
    t.ok([...a.weights].every(([n, w]) => relErr(w, same.weights.get(n)!) === 0), 'same seed: same weights');
    const other = write({ ...base, seed: base.seed + 100 });
    differ(t, other.weights.get('model.embed_tokens.weight')!, a.weights.get('model.embed_tokens.weight')!, 0.1, 'another seed: other weights');
  }
});

// ---------------------------------------------------------------------------
t.test('reference: prefill then decode equals one prefill; pieces and clones', async (t) => {
  for (const opts of [jambaTinyPreset(), graniteTinyPreset(), graniteTinyPreset({ positionEmbeddingType: 'rope', ropeTheta: 500 })]) {
    const ck = write(opts);
    const label = `${opts.family}${(opts as { positionEmbeddingType?: string }).positionEmbeddingType === 'rope' ? ' rope' : ''}`;
    const V = opts.vocabSize, toks = tokens(20, V, 11);
    const whole = new HybridReference(ck.config, ck.weights).prefill(toks);

    const inc = new HybridReference(ck.config, ck.weights);
    const parts = [inc.prefill(toks.slice(0, 13))];
    for (const tok of toks.slice(13)) parts.push(inc.step(tok));
    t.equal(inc.position, 20);
    close(t, Float64Array.from(parts.flatMap((p) => [...p])), whole, 1e-12, `${label}: prefill(13) + 7 steps = prefill(20)`);

    const pieces = new HybridReference(ck.config, ck.weights);
    const out = [pieces.prefill(toks.slice(0, 2)), pieces.prefill(toks.slice(2, 9)), pieces.prefill(toks.slice(9))];
    close(t, Float64Array.from(out.flatMap((p) => [...p])), whole, 1e-12, `${label}: prefill in pieces of 2, 7, 11 = one prefill`);

    // causality: the first 20 rows do not see what follows
    const longer = new HybridReference(ck.config, ck.weights).prefill([...toks, 1, 2, 3]);
    close(t, longer.subarray(0, 20 * V), whole, 1e-12, `${label}: appending tokens leaves earlier logits`);

    // a clone continues independently
    const a = new HybridReference(ck.config, ck.weights);
    a.prefill(toks.slice(0, 19));
    const b = a.clone();
    const fromClone = b.step(toks[19]);
    a.step(5);
    close(t, fromClone, whole.subarray(19 * V), 1e-12, `${label}: a clone's step`);
    close(t, a.clone().step(toks[0]), a.step(toks[0]), 0, `${label}: the clone of a clone`);
  }
});

t.test('reference: errors name what is wrong', async (t) => {
  const ck = write(jambaTinyPreset());
  const w = copyWeights(ck.weights);
  w.delete('model.layers.1.self_attn.k_proj.weight');
  t.throws(() => hybridReferenceForward(ck.config, w, [1]), /missing tensor model\.layers\.1\.self_attn\.k_proj\.weight/);
  const w2 = copyWeights(ck.weights);
  w2.set('model.layers.0.mamba.b_layernorm.weight', new Float64Array(3));
  t.throws(() => hybridReferenceForward(ck.config, w2, [1]), /b_layernorm\.weight has 3 elements/);
  t.throws(() => hybridReferenceForward(ck.config, ck.weights, [512]), RangeError);
  t.throws(() => hybridReferenceForward({ ...ck.config, model_type: 'mamba' }, ck.weights, [1]), /model_type/);
  t.throws(() => hybridLayout({ model_type: 'granitemoehybrid', num_hidden_layers: 2, layer_types: ['mamba'] }), /layer_types/);
});

t.test('reference: config defaults and schedules', async (t) => {
  const jl = hybridLayout({ model_type: 'jamba' });
  t.same(jl.layers.flatMap((l, i) => (l.mixer === 'attention' ? [i] : [])), [4, 12, 20, 28], 'jamba defaults: attention at i % 8 == 4');
  t.ok(jl.layers.every((l, i) => (l.ffn === 'moe') === (i % 2 === 1)), 'jamba defaults: MoE at odd layers');
  t.match(jl, { d: 4096, V: 65536, eps: 1e-6, attention: { Hq: 32, Hkv: 8, hd: 128, ropeTheta: 0 }, mamba1: { N: 16, R: 256, K: 4, di: 8192 }, moe: { E: 16, k: 2, router: 'softmax_topk' } });
  t.ok(hybridLayout({ model_type: 'jamba', num_experts: 1 }).layers.every((l) => l.ffn === 'mlp'), 'jamba num_experts 1: all dense');
  const gl = hybridLayout({ model_type: 'granitemoehybrid' });
  t.ok(gl.layers.length === 32 && gl.layers.every((l) => l.mixer === 'mamba2' && l.ffn === 'moe'), 'granite defaults: layer_types None = all Mamba, MoE (8 experts)');
  t.match(gl, { attention: { Hq: 32, Hkv: 32, scale: 1, ropeTheta: 0 }, mamba2: { N: 256, H: 128, P: 64, normGroupSize: 8192, dtLimit: [0, Infinity] }, moe: { E: 8, I: 11008, router: 'topk_softmax' }, mlpDim: 1024 });
  t.equal(hybridLayout({ model_type: 'granitemoehybrid', position_embedding_type: 'rope' }).attention.ropeTheta, 10000);
  t.equal(hybridLayout({ model_type: 'granitemoehybrid', position_embedding_type: 'rope', rope_parameters: { rope_type: 'default', rope_theta: 7 } }).attention.ropeTheta, 7);
  t.same(hybridLayout({ model_type: 'granitemoehybrid', time_step_limit: [0.01, 5] }).mamba2!.dtLimit, [0.01, 5]);
});

// ---------------------------------------------------------------------------
// Blocks against reference_model.ts (state-spaces names, same layouts).

function mambaConfig(o: Partial<MambaConfig>): MambaConfig {
  return {
    arch: 'mamba', dModel: 8, nLayer: 1, vocabSize: 4, dState: 4, dConv: 4, expand: 2, dInner: 16, dtRank: 2, headdim: 0, nheads: 0,
    ngroups: 1, chunkSize: 256, normEps: 1e-5, tieEmbeddings: true, residualInFp32: true, useBias: false, convBias: true,
    timeStepLimit: [0, Infinity], ...o,
  } as MambaConfig;
}

function randomMamba(r: () => number, p: string, m: { d: number; di: number; N: number; K: number; R?: number; H?: number; G?: number }): HybridWeights {
  const w: HybridWeights = new Map();
  const { d, di, N, K } = m;
  if (m.R !== undefined) {
    const R = m.R;
    w.set(p + 'in_proj.weight', randn(r, 2 * di * d, 1 / Math.sqrt(d)));
    w.set(p + 'conv1d.weight', randn(r, di * K, 0.4));
    w.set(p + 'conv1d.bias', randn(r, di, 0.3));
    w.set(p + 'x_proj.weight', randn(r, (R + 2 * N) * di, 1 / Math.sqrt(di)));
    w.set(p + 'dt_proj.weight', randn(r, di * R, 1 / Math.sqrt(R)));
    w.set(p + 'dt_proj.bias', randn(r, di, 0.5, -2));
    w.set(p + 'A_log', randn(r, di * N, 0.5, 1));
    w.set(p + 'D', randn(r, di, 0.1, 1));
    w.set(p + 'dt_layernorm.weight', randn(r, R, 0.1, 1));
    w.set(p + 'b_layernorm.weight', randn(r, N, 0.1, 1));
    w.set(p + 'c_layernorm.weight', randn(r, N, 0.1, 1));
  } else {
    const H = m.H!, G = m.G!, conv = di + 2 * G * N, proj = di + conv + H;
    w.set(p + 'in_proj.weight', randn(r, proj * d, 1 / Math.sqrt(d)));
    w.set(p + 'conv1d.weight', randn(r, conv * K, 0.4));
    w.set(p + 'conv1d.bias', randn(r, conv, 0.3));
    w.set(p + 'dt_bias', randn(r, H, 0.5, -2));
    w.set(p + 'A_log', randn(r, H, 0.5, 1));
    w.set(p + 'D', randn(r, H, 0.1, 1));
    w.set(p + 'norm.weight', randn(r, di, 0.1, 1));
  }
  w.set(p + 'out_proj.weight', randn(r, d * di, 1 / Math.sqrt(di)));
  return w;
}

t.test('blocks: Mamba-1 equals reference_model mamba1Mixer (fed in pieces); Jamba inner norms are scale invariant', async (t) => {
  const r = rng(21), p = 'backbone.layers.0.mixer.';
  const m: Mamba1Dims = { d: 8, di: 16, N: 4, R: 2, K: 4 };
  const w = randomMamba(r, p, m);
  const L = 9, h = randn(r, L * m.d);
  const want = mamba1Mixer(mambaConfig({}), w, p, h, L);
  const st = newMamba1State(m), src = tensorSource(w);
  const got = [0, 1, 2, 5, 9].slice(1).map((end, i, a) => {
    const start = i === 0 ? 0 : a[i - 1];
    return mamba1Block(src, p, m, st, h.slice(start * m.d, end * m.d), end - start);
  });
  close(t, Float64Array.from(got.flatMap((g) => [...g])), want, 1e-12, 'Mamba-1 in pieces of 1, 1, 3, 4 = the whole-sequence mixer');

  // with inner norms, scaling all of x_proj (so dt, B and C) changes nothing but eps's share (tiny eps here)
  const jm: Mamba1Dims = { ...m, innerNormEps: 1e-14 };
  const base = mamba1Block(src, p, jm, newMamba1State(jm), h, L);
  differ(t, base, want, 1e-3, 'the inner norms change the output');
  const w5 = new Map(w);
  w5.set(p + 'x_proj.weight', w.get(p + 'x_proj.weight')!.map((v) => 5 * v));
  close(t, mamba1Block(tensorSource(w5), p, jm, newMamba1State(jm), h, L), base, 1e-10, 'with dt/B/C norms, x_proj * 5 leaves the output');
  differ(t, mamba1Block(tensorSource(w5), p, m, newMamba1State(m), h, L), want, 1e-2, 'without them it does not');
});

t.test('blocks: Mamba-2 equals reference_model mamba2Mixer (groups of the gated norm as configured)', async (t) => {
  const r = rng(22), p = 'backbone.layers.0.mixer.';
  for (const G of [1, 2]) {
    const m: Mamba2Dims = { d: 8, di: 16, N: 4, H: 4, P: 4, G, K: 4, normEps: 1e-5, normGroupSize: 16 / G, dtLimit: [0, Infinity] };
    const w = randomMamba(r, p, { ...m });
    const L = 7, h = randn(r, L * m.d);
    const cfg = mambaConfig({ arch: 'mamba2', dState: 4, headdim: 4, nheads: 4, ngroups: G, dtRank: 0 });
    const want = mamba2Mixer(cfg, w, p, h, L);
    const st = newMamba2State(m), src = tensorSource(w);
    const a = mamba2Block(src, p, m, st, h.slice(0, 3 * m.d), 3);
    const b = mamba2Block(src, p, m, st, h.slice(3 * m.d, 4 * m.d), 1);
    const c = mamba2Block(src, p, m, st, h.slice(4 * m.d), 3);
    close(t, Float64Array.from([...a, ...b, ...c]), want, 1e-12, `G=${G}, norm group ${m.normGroupSize}: pieces 3, 1, 3 = the whole-sequence mixer`);
    if (G === 2) {
      // HF / Granite: the gated norm over the whole inner size, which differs from per-group once G > 1
      const full = mamba2Block(src, p, { ...m, normGroupSize: 16 }, newMamba2State(m), h, L);
      differ(t, full, want, 1e-4, 'G=2: the ungrouped norm is a different function');
    }
    // time_step_limit: dt clamped to 0 freezes the state, so A_log no longer matters
    const frozen = { ...m, dtLimit: [0, 0] as [number, number] };
    const wA = new Map(w);
    wA.set(p + 'A_log', w.get(p + 'A_log')!.map((v) => v + 1));
    close(t, mamba2Block(tensorSource(wA), p, frozen, newMamba2State(m), h, L), mamba2Block(src, p, frozen, newMamba2State(m), h, L), 0, `G=${G}: dt clamped to 0 makes A_log irrelevant`);
    differ(t, mamba2Block(tensorSource(wA), p, m, newMamba2State(m), h, L), want, 1e-4, `G=${G}: unclamped, A_log matters`);
  }
});

t.test('blocks: attention of one token is its value path; RoPE is HF rotate_half and relative', async (t) => {
  const r = rng(23), p = 'a.';
  const d = 12, Hq = 6, Hkv = 2, hd = 4;
  const w: HybridWeights = new Map([
    [p + 'q_proj.weight', randn(r, Hq * hd * d)], [p + 'k_proj.weight', randn(r, Hkv * hd * d)],
    [p + 'v_proj.weight', randn(r, Hkv * hd * d)], [p + 'o_proj.weight', randn(r, d * Hq * hd)],
  ]);
  const x = randn(r, d);
  const v = linear(x, 1, d, w.get(p + 'v_proj.weight')!, Hkv * hd);
  const rep = new Float64Array(Hq * hd); // repeat_kv: query head h reads KV head h / (Hq / Hkv)
  for (let h = 0; h < Hq; h++) for (let i = 0; i < hd; i++) rep[h * hd + i] = v[Math.floor(h / (Hq / Hkv)) * hd + i];
  const want = linear(rep, 1, Hq * hd, w.get(p + 'o_proj.weight')!, d);
  for (const [scale, ropeTheta] of [[0.5, 0], [3, 10000]]) {
    close(t, attentionBlock(tensorSource(w), p, { d, Hq, Hkv, hd, scale, ropeTheta }, newKvCache(), x, 1), want, 1e-12,
      `scale ${scale}, rope ${ropeTheta}: one token = o_proj(repeat_kv(v_proj x))`);
  }
  // two tokens: the second attends to both with softmax weights of scaled dot products (no RoPE)
  const x2 = randn(r, 2 * d);
  const q = linear(x2, 2, d, w.get(p + 'q_proj.weight')!, Hq * hd), k = linear(x2, 2, d, w.get(p + 'k_proj.weight')!, Hkv * hd);
  const vv = linear(x2, 2, d, w.get(p + 'v_proj.weight')!, Hkv * hd);
  const head = new Float64Array(Hq * hd);
  for (let h = 0; h < Hq; h++) {
    const kv = Math.floor(h / 3);
    const s = [0, 1].map((j) => 0.7 * [0, 1, 2, 3].reduce((a, i) => a + q[Hq * hd + h * hd + i] * k[j * Hkv * hd + kv * hd + i], 0));
    const pw = [Math.exp(s[0]), Math.exp(s[1])], z = pw[0] + pw[1];
    for (let i = 0; i < hd; i++) head[h * hd + i] = (pw[0] * vv[kv * hd + i] + pw[1] * vv[Hkv * hd + kv * hd + i]) / z;
  }
  const two = attentionBlock(tensorSource(w), p, { d, Hq, Hkv, hd, scale: 0.7, ropeTheta: 0 }, newKvCache(), x2, 2);
  close(t, two.subarray(d), linear(head, 1, Hq * hd, w.get(p + 'o_proj.weight')!, d), 1e-12, 'second token: softmax over both positions, GQA');

  // rotate_half pairs i with i + hd/2: e_0 at position m -> cos(m) e_0 + sin(m) e_{hd/2}
  const e0 = new Float64Array(8); e0[0] = 1;
  applyRope(e0, 0, 8, 3, 10000);
  close(t, e0, [Math.cos(3), 0, 0, 0, Math.sin(3), 0, 0, 0], 1e-15, 'RoPE of e_0 at position 3 (frequency 1)');
  const e1 = new Float64Array(8); e1[1] = 1;
  applyRope(e1, 0, 8, 2, 100);
  close(t, e1, [0, Math.cos(2 * 100 ** -0.25), 0, 0, 0, Math.sin(2 * 100 ** -0.25), 0, 0], 1e-15, 'RoPE of e_1 at position 2, theta 100 (frequency 100^(-2/8))');
  const qv = randn(r, 8), kv = randn(r, 8);
  const dotAt = (m: number, n: number) => {
    const a = qv.slice(), b = kv.slice();
    applyRope(a, 0, 8, m, 50);
    applyRope(b, 0, 8, n, 50);
    return a.reduce((s, x, i) => s + x * b[i], 0);
  };
  t.ok(Math.abs(dotAt(7, 3) - dotAt(4, 0)) < 1e-12 && Math.abs(dotAt(7, 3) - dotAt(3, 3)) > 1e-3, 'RoPE scores depend on the offset only');
});

function identicalExperts(r: () => number, E: number, d: number, I: number): { one: SwiGluWeights; experts: SwiGluWeights[] } {
  const one = { gate: randn(r, I * d, 1 / Math.sqrt(d)), up: randn(r, I * d, 1 / Math.sqrt(d)), down: randn(r, d * I, 1 / Math.sqrt(I)) };
  return { one, experts: Array.from({ length: E }, () => one) };
}

t.test('blocks: routers and a MoE of identical experts', async (t) => {
  t.same(route([1, 3, 3, 0], 2, 'topk_softmax').experts, [1, 2], 'ties go to the lower index');
  t.same(route([3, 1, 3, 3], 2, 'softmax_topk').experts, [0, 2], 'ties go to the lower index (softmax first)');
  const js = route([0, 1, 2, 3], 2, 'softmax_topk');
  const z = [0, 1, 2, 3].reduce((a, v) => a + Math.exp(v), 0);
  close(t, js.weights, [Math.exp(3) / z, Math.exp(2) / z], 1e-15, 'Jamba: softmax over all experts, not renormalised');
  const gs = route([0, 1, 2, 3], 2, 'topk_softmax');
  close(t, gs.weights, [Math.exp(1) / (1 + Math.exp(1)), 1 / (1 + Math.exp(1))], 1e-15, 'Granite: softmax over the top k');
  t.equal(gs.gap, 1);
  t.equal(route([0, 1], 2, 'topk_softmax').gap, Infinity);

  const r = rng(24), E = 5, d = 6, I = 7, L = 4;
  const { one, experts } = identicalExperts(r, E, d, I);
  const router = randn(r, E * d, 1), x = randn(r, L * d);
  const dense = swiGlu(one, x, L, d, I);
  const logits = linear(x, L, d, router, E);
  for (const kind of ['softmax_topk', 'topk_softmax'] as const) {
    const { out } = moeBlock(router, experts, kind, 2, x, L, d, I);
    const want = new Float64Array(L * d);
    for (let t0 = 0; t0 < L; t0++) {
      const row = Array.from(logits.subarray(t0 * E, (t0 + 1) * E));
      const z = row.reduce((a, v) => a + Math.exp(v), 0);
      const top2 = row.map((v) => Math.exp(v) / z).sort((a, b) => b - a).slice(0, 2);
      const sum = kind === 'softmax_topk' ? top2[0] + top2[1] : 1;
      for (let c = 0; c < d; c++) want[t0 * d + c] = sum * dense[t0 * d + c];
    }
    close(t, out, want, 1e-12, `${kind}: identical experts = the dense MLP times the sum of the routing weights`);
  }
  // distinct experts: the output is the weighted sum of the two chosen experts' outputs
  const distinct = Array.from({ length: E }, () => identicalExperts(r, 1, d, I).one);
  const { out, routing } = moeBlock(router, distinct, 'topk_softmax', 2, x, L, d, I);
  const want = new Float64Array(L * d);
  routing.forEach((rt, t0) => rt.experts.forEach((e, j) => {
    const y = swiGlu(distinct[e], x.subarray(t0 * d, (t0 + 1) * d), 1, d, I);
    for (let c = 0; c < d; c++) want[t0 * d + c] += rt.weights[j] * y[c];
  }));
  close(t, out, want, 1e-12, 'distinct experts: the routed weighted sum');
  t.ok(new Set(routing.map((x) => x.experts.join())).size > 1, 'tokens route differently');
});

// ---------------------------------------------------------------------------
// Whole-model identities.

t.test('model: Jamba with top-k = all of E identical experts equals the all-dense Jamba', async (t) => {
  const E = 3;
  const ck = write(jambaTinyPreset({ experts: E, topK: E }));
  const w = copyWeights(ck.weights), dense = new Map<string, Float64Array>();
  for (const [name, v] of w) if (!name.includes('feed_forward.router') && !name.includes('feed_forward.experts.')) dense.set(name, v);
  for (const [i, l] of ck.layers.entries()) {
    if (l.ffn !== 'moe') continue;
    const f = `model.layers.${i}.feed_forward.`;
    for (const proj of ['gate_proj', 'up_proj', 'down_proj']) {
      const e0 = w.get(`${f}experts.0.${proj}.weight`)!;
      for (let e = 1; e < E; e++) w.set(`${f}experts.${e}.${proj}.weight`, e0);
      dense.set(`${f}${proj}.weight`, e0);
    }
  }
  const toks = tokens(10, 512, 5);
  const moe = hybridReferenceForward(ck.config, w, toks);
  close(t, moe, hybridReferenceForward({ ...ck.config, num_experts: 1 }, dense, toks), 1e-12, 'softmax weights over all experts sum to 1');
  differ(t, hybridReferenceForward(ck.config, ck.weights, toks), moe, 1e-3, 'the original distinct experts differ');
});

t.test('model: Granite with identical experts equals the E=0 model with the expert appended to the shared MLP', async (t) => {
  const ck = write(graniteTinyPreset({ positionEmbeddingType: 'rope' }));
  const { d, moe: { E, I }, mlpDim: Is } = hybridLayout(ck.config);
  const w = copyWeights(ck.weights), dense = new Map<string, Float64Array>();
  for (const [name, v] of w) if (!name.includes('block_sparse_moe') && !name.includes('shared_mlp')) dense.set(name, v);
  for (let i = 0; i < ck.layers.length; i++) {
    const b = `model.layers.${i}.block_sparse_moe.`, s = `model.layers.${i}.shared_mlp.`;
    const inp = w.get(b + 'input_linear.weight')!, outp = w.get(b + 'output_linear.weight')!;
    for (let e = 1; e < E; e++) {
      inp.copyWithin(e * 2 * I * d, 0, 2 * I * d);
      outp.copyWithin(e * d * I, 0, d * I);
    }
    // shared input_linear [gate_s; up_s] -> [gate_e; gate_s; up_e; up_s]; output_linear [d, Is] -> [d, I + Is]
    const sin = w.get(s + 'input_linear.weight')!, sout = w.get(s + 'output_linear.weight')!;
    const J = I + Is, cin = new Float64Array(2 * J * d), cout = new Float64Array(d * J);
    cin.set(inp.subarray(0, I * d), 0);
    cin.set(sin.subarray(0, Is * d), I * d);
    cin.set(inp.subarray(I * d, 2 * I * d), J * d);
    cin.set(sin.subarray(Is * d), J * d + I * d);
    for (let c = 0; c < d; c++) {
      cout.set(outp.subarray(c * I, (c + 1) * I), c * J);
      cout.set(sout.subarray(c * Is, (c + 1) * Is), c * J + I);
    }
    dense.set(s + 'input_linear.weight', cin);
    dense.set(s + 'output_linear.weight', cout);
  }
  const toks = tokens(10, 512, 6);
  const moe = hybridReferenceForward(ck.config, w, toks);
  const denseCfg = { ...ck.config, num_local_experts: 0, shared_intermediate_size: I + Is };
  close(t, moe, hybridReferenceForward(denseCfg, dense, toks), 1e-12, 'top-k softmax weights sum to 1; moe + shared = one wider SwiGLU');
  differ(t, hybridReferenceForward(ck.config, ck.weights, toks), moe, 1e-3, 'the original distinct experts differ');
});

t.test('model: an all-attention dense Granite (nope, multipliers 1, scale 1/sqrt(hd)) is the same Jamba under other names', async (t) => {
  const nLayer = 3, d = 64, hd = 16;
  const g = write(graniteTinyPreset({
    hiddenSize: d, nHeads: 4, nKvHeads: 2, nLayer, layerTypes: ['attention', 'attention', 'attention'], experts: 0, sharedDim: 48,
    mambaNHeads: 8, embeddingMultiplier: 1, residualMultiplier: 1, logitsScaling: 1, attentionMultiplier: 1 / Math.sqrt(hd),
    rmsNormEps: 1e-6, tied: false,
  }));
  const jw = new Map<string, Float64Array>();
  for (const [name, v] of g.weights) {
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    if (name === 'model.norm.weight') jw.set('model.final_layernorm.weight', v);
    else if (!m) jw.set(name, v);
    else if (m[2] === 'post_attention_layernorm.weight') jw.set(`model.layers.${m[1]}.pre_ff_layernorm.weight`, v);
    else if (m[2] === 'shared_mlp.input_linear.weight') {
      jw.set(`model.layers.${m[1]}.feed_forward.gate_proj.weight`, v.subarray(0, 48 * d));
      jw.set(`model.layers.${m[1]}.feed_forward.up_proj.weight`, v.subarray(48 * d));
    } else if (m[2] === 'shared_mlp.output_linear.weight') jw.set(`model.layers.${m[1]}.feed_forward.down_proj.weight`, v);
    else jw.set(name, v);
  }
  const jcfg = {
    model_type: 'jamba', vocab_size: 512, hidden_size: d, intermediate_size: 48, num_hidden_layers: nLayer, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-6, num_experts: 1, attn_layer_period: 1, attn_layer_offset: 0, tie_word_embeddings: false,
  };
  const toks = tokens(9, 512, 8);
  close(t, hybridReferenceForward(g.config, g.weights, toks), hybridReferenceForward(jcfg, jw, toks), 1e-12, 'same logits');
});

t.test('model: where Granite multipliers and Jamba norms act', async (t) => {
  const ck = write(graniteTinyPreset({ positionEmbeddingType: 'rope' }));
  const toks = tokens(10, 512, 9);
  const base = hybridReferenceForward(ck.config, ck.weights, toks);
  const scaled = hybridReferenceForward({ ...ck.config, logits_scaling: 1.5 }, ck.weights, toks);
  close(t, scaled.map((v) => v * 1.5), base.map((v) => v * 6), 1e-12, 'logits are divided by logits_scaling');
  // every norm input scales with embedding_multiplier and residual_multiplier together (RMSNorm is scale invariant up to eps)
  const both = hybridReferenceForward({ ...ck.config, embedding_multiplier: 12 * 4, residual_multiplier: 0.22 * 4 }, ck.weights, toks);
  close(t, both, base, 1e-4, 'embedding and residual multipliers x4 together: same logits');
  differ(t, hybridReferenceForward({ ...ck.config, residual_multiplier: 0.22 * 4 }, ck.weights, toks), base, 1e-2, 'residual multiplier alone matters');
  differ(t, hybridReferenceForward({ ...ck.config, attention_multiplier: 0.25 }, ck.weights, toks), base, 1e-3, 'attention multiplier matters');
  differ(t, hybridReferenceForward({ ...ck.config, position_embedding_type: 'nope' }, ck.weights, toks), base, 1e-3, 'RoPE matters');
  differ(t, hybridReferenceForward({ ...ck.config, rope_theta: 100 }, ck.weights, toks), base, 1e-3, 'rope_theta matters');
  const noClamp = hybridReferenceForward({ ...ck.config, time_step_limit: [0, 1e30] }, ck.weights, toks);
  close(t, noClamp, base, 0, 'a time_step_limit that never binds changes nothing');
  differ(t, hybridReferenceForward({ ...ck.config, time_step_limit: [0, 1e-3] }, ck.weights, toks), base, 1e-3, 'a binding time_step_limit clamps dt');

  const j = write(jambaTinyPreset());
  const jbase = hybridReferenceForward(j.config, j.weights, toks);
  const w = copyWeights(j.weights);
  for (const [name, v] of w) if (name.endsWith('mamba.x_proj.weight')) v.forEach((x, i) => (v[i] = 3 * x));
  close(t, hybridReferenceForward(j.config, w, toks), jbase, 1e-5, 'jamba: x_proj x3 in every Mamba layer is undone by the dt/B/C norms');
  const w2 = copyWeights(j.weights);
  for (const [name, v] of w2) if (name.endsWith('mamba.b_layernorm.weight')) v.forEach((x, i) => (v[i] = 2 * x));
  differ(t, hybridReferenceForward(j.config, w2, toks), jbase, 1e-3, 'jamba: the b_layernorm weight is used');
  for (const layer of [1, 4]) {
    const w3 = copyWeights(j.weights);
    const q = w3.get(`model.layers.${layer}.self_attn.q_proj.weight`)!;
    q.forEach((x, i) => (q[i] = 2 * x));
    differ(t, hybridReferenceForward(j.config, w3, toks), jbase, 1e-4, `jamba: attention layer ${layer}'s q_proj is used (softmax not saturated)`);
  }
});
