// The GGUF reader on jamba / granitehybrid files that disagree with
// themselves: every inconsistency between the metadata and the tensors (expert
// counts, routers, head counts, feed-forward widths, missing tensors, scales,
// RoPE keys) is a ModelLoadError naming the GGUF key or tensor at fault, from
// loadModel. Files are an export of a small preset rewritten with the change.
// Also: the layer schedule the reader derives (head_count_kv, routers), and
// llama.cpp's defaults (a granitehybrid file without rope.scaling.finetuned
// has RoPE; no head_count_kv means every layer is attention).
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportGguf, loadModel, ModelLoadError } from '../../lib';
import { GgufValueType, readGgufHeader, type GgmlType, type GgufValue } from '../../lib/loaders/gguf';
import { ggmlTensorBytes } from '../../lib/loaders/gguf';
import { GgufWriter } from '../../lib/export/gguf_writer';
import { loadGgufCheckpoint } from '../../lib/loaders/gguf_model';
import { graniteTinyPreset, jambaTinyPreset, writeRandomHybridCheckpoint } from '../../lib/testing/random_hybrid_checkpoint';
import { writeTinyTokenizer } from '../helpers/gguf_fixtures';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-hyb-rd-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

interface Edit {
  drop?: string[];
  set?: Array<[string, GgufValueType, GgufValue]>;
  dropTensors?: string[];
  tensor?: { name: string; dims?: number[]; type?: GgmlType };
}

const u32s = (values: number[]): GgufValue => ({ itemType: GgufValueType.UINT32, values });

/** Rewrites `good` through the writer with changes to its metadata and tensors (changed tensors hold zeros). */
async function variant(good: string, name: string, edit: Edit): Promise<string> {
  const g = readGgufHeader(good);
  const w = new GgufWriter();
  const sets = new Map((edit.set ?? []).map(([k, ty, v]) => [k, { ty, v }]));
  for (const [k, e] of g.metadata) {
    if (edit.drop?.includes(k)) continue;
    const s = sets.get(k);
    w.add(k, s ? s.ty : e.type, s ? s.v : e.value);
    sets.delete(k);
  }
  for (const [k, s] of sets) w.add(k, s.ty, s.v);
  const bytes = fs.readFileSync(good);
  for (const ti of g.tensors.values()) {
    if (edit.dropTensors?.includes(ti.name)) continue;
    const patch = edit.tensor?.name === ti.name ? edit.tensor : undefined;
    const dims = patch?.dims ?? ti.dims;
    const type = patch?.type ?? ti.type;
    const size = ggmlTensorBytes(type, dims);
    w.tensor({ name: ti.name, dims, type, data: () => (patch ? new Uint8Array(size) : bytes.subarray(ti.offset, ti.offset + ti.nbytes)) });
  }
  const file = path.join(root, `${name.replace(/\W+/g, '_')}.gguf`);
  await w.write(file);
  return file;
}

async function loadModelError(file: string): Promise<ModelLoadError | undefined> {
  try {
    (await loadModel(file)).dispose();
  } catch (e) {
    if (e instanceof ModelLoadError) return e;
    throw e;
  }
  return undefined;
}

async function exported(name: string, opts: Parameters<typeof writeRandomHybridCheckpoint>[1]): Promise<string> {
  const dir = path.join(root, name);
  writeRandomHybridCheckpoint(dir, opts);
  writeTinyTokenizer(dir);
  const file = path.join(root, `${name}.gguf`);
  await exportGguf(dir, file, { type: 'f32' });
  return file;
}

// Jamba preset: layers mamba/mlp, attention/moe, mamba/mlp, mamba/moe, attention/mlp, mamba/moe;
// 4 heads, 2 KV heads of 16; 4 experts, top-2, width 128. Granite preset: attention at 2 and 5;
// 6 heads, 2 KV heads of 16; 8 experts of 32, top-2, shared 64.
t.test('the schedule comes from head_count_kv and the routers', async (t) => {
  const jamba = loadGgufCheckpoint(await exported('jamba', jambaTinyPreset()));
  t.same(jamba.config.layers.map((l) => `${l.mixer}/${l.ffn}`),
    ['mamba1/mlp', 'attention/moe', 'mamba1/mlp', 'mamba1/moe', 'attention/mlp', 'mamba1/moe'], 'jamba');
  t.same(jamba.ggufNames.get('backbone.layers.1.ffn.experts.3.down_proj.weight'), 'blk.1.ffn_down_exps.weight', 'expert 3 is a slice of ffn_down_exps');
  const whole = jamba.gguf.tensors.get('blk.1.ffn_down_exps.weight')!;
  const e3 = jamba.tensors.get('backbone.layers.1.ffn.experts.3.down_proj.weight')!;
  t.same([e3.offset, e3.nbytes, e3.shape], [whole.offset + 3 * whole.nbytes / 4, whole.nbytes / 4, [64, 128]], 'its offset, size and shape');
  const granite = loadGgufCheckpoint(await exported('granite', graniteTinyPreset()));
  t.same(granite.config.layers.map((l) => `${l.mixer}/${l.ffn}`),
    ['mamba2', 'mamba2', 'attention', 'mamba2', 'mamba2', 'attention'].map((m) => `${m}/moe`), 'granite');
  t.notOk(granite.config.attention?.ropeInterleaved, 'granite without RoPE: no interleaved RoPE');
});

t.test('inconsistent jamba files are ModelLoadErrors naming the key or tensor', async (t) => {
  const good = path.join(root, 'jamba.gguf');
  const cases: Array<[string, Edit, string, RegExp]> = [
    ['expert_count disagrees with the routers', { set: [['jamba.expert_count', GgufValueType.UINT32, 3]] }, 'blk.1.ffn_gate_inp.weight', /implies 4 experts; jamba\.expert_count gives 3/],
    ['expert_count missing', { drop: ['jamba.expert_count'] }, 'jamba.expert_count', /required \(> 0\): layer 1 has a router/],
    ['expert_used_count above expert_count', { set: [['jamba.expert_used_count', GgufValueType.UINT32, 5]] }, 'jamba.expert_used_count', /5 experts per token must be in \[1, jamba\.expert_count 4\]/],
    ['expert_used_count missing', { drop: ['jamba.expert_used_count'] }, 'jamba.expert_used_count', /missing/],
    ['a router missing', { dropTensors: ['blk.3.ffn_gate_inp.weight'] }, 'blk.3.ffn_gate_inp.weight', /expert tensors \(ffn_gate_exps\) but no router/],
    ['stacked experts missing', { dropTensors: ['blk.5.ffn_up_exps.weight'] }, 'blk.5.ffn_up_exps.weight', /missing/],
    ['stacked experts of another count', { tensor: { name: 'blk.1.ffn_down_exps.weight', dims: [128, 64, 7] } }, 'blk.1.ffn_down_exps.weight', /holds 7 experts; jamba\.expert_count gives 4/],
    ['feed_forward_length disagrees', { set: [['jamba.feed_forward_length', GgufValueType.UINT32, 96]] }, 'blk.0.ffn_gate.weight', /feed-forward of 128 channels; jamba\.feed_forward_length gives 96/],
    ['feed_forward_length per layer, uneven', { set: [['jamba.feed_forward_length', GgufValueType.ARRAY, u32s([128, 128, 96, 128, 128, 128])]] }, 'jamba.feed_forward_length', /layers 0 and 2 have 128 and 96/],
    ['head_count_kv of the wrong length', { set: [['jamba.attention.head_count_kv', GgufValueType.ARRAY, u32s([0, 2, 0, 0, 2])]] }, 'jamba.attention.head_count_kv', /has 5 entries, one per layer is 6/],
    ['head_count_kv uneven', { set: [['jamba.attention.head_count_kv', GgufValueType.ARRAY, u32s([0, 2, 0, 0, 4, 0])]] }, 'jamba.attention.head_count_kv', /layers 1 and 4 have 2 and 4 key\/value heads/],
    ['head_count_kv not dividing head_count', { set: [['jamba.attention.head_count_kv', GgufValueType.ARRAY, u32s([0, 3, 0, 0, 3, 0])]] }, 'jamba.attention.head_count_kv', /3 key\/value heads do not divide jamba\.attention\.head_count 4/],
    ['head_count_kv disagreeing with attn_k', { set: [['jamba.attention.head_count_kv', GgufValueType.ARRAY, u32s([0, 4, 0, 0, 4, 0])]] }, 'blk.1.attn_k.weight', /rows imply 2 key\/value heads of 16; jamba\.attention\.head_count_kv gives 4/],
    ['head_count_kv marking a Mamba layer as attention', { set: [['jamba.attention.head_count_kv', GgufValueType.ARRAY, u32s([2, 2, 0, 0, 2, 0])]] }, 'blk.0.attn_q.weight', /missing/],
    ['head_count_kv marking an attention layer as Mamba', { set: [['jamba.attention.head_count_kv', GgufValueType.ARRAY, u32s([0, 0, 0, 0, 2, 0])]] }, 'blk.1.ssm_in.weight', /missing/],
    ['head_count missing', { drop: ['jamba.attention.head_count'] }, 'jamba.attention.head_count', /missing \(layers 1, 4 are attention layers/],
    // (8 heads of 8 fill attn_q's rows too: the key/value rows tell)
    ['head_count disagreeing with the attention tensors', { set: [['jamba.attention.head_count', GgufValueType.UINT32, 8]] }, 'blk.1.attn_k.weight', /imply 4 key\/value heads of 8; .*head dim 8 is jamba\.embedding_length \/ jamba\.attention\.head_count/],
    ['an inner norm missing', { dropTensors: ['blk.2.ssm_b_norm.weight'] }, 'blk.2.ssm_b_norm.weight', /missing/],
    ['a quantized norm', { tensor: { name: 'blk.0.ssm_dt_norm.weight', dims: [32], type: 'Q8_0' } }, 'blk.0.ssm_dt_norm.weight', /shape|Q8_0 is not supported/],
    ['time_step_rank missing', { drop: ['jamba.ssm.time_step_rank'] }, 'jamba.ssm.time_step_rank', /missing/],
  ];
  for (const [what, edit, field, re] of cases) {
    const file = await variant(good, `jamba ${what}`, edit);
    const e = await loadModelError(file);
    t.ok(e, `${what}: ModelLoadError`);
    t.equal(e?.file, file, `${what}: names the file`);
    t.equal(e?.field, field, `${what}: names ${field} (${e?.message})`);
    t.match(e?.message ?? '', re, `${what}: says why`);
  }
  // A quantized expert tensor is fine (only its values change).
  const q = await variant(good, 'jamba q8 experts', { tensor: { name: 'blk.3.ffn_gate_exps.weight', type: 'Q8_0' } });
  const m = await loadModel(q);
  t.equal(m.config.moe?.experts, 4, 'Q8_0 experts load');
  m.dispose();
});

t.test('inconsistent granitehybrid files are ModelLoadErrors naming the key or tensor', async (t) => {
  const good = path.join(root, 'granite.gguf');
  const cases: Array<[string, Edit, string, RegExp]> = [
    ['expert_count disagrees with the routers', { set: [['granitehybrid.expert_count', GgufValueType.UINT32, 6]] }, 'blk.0.ffn_gate_inp.weight', /implies 8 experts; granitehybrid\.expert_count gives 6/],
    ['expert_count 0 with experts in the file', { set: [['granitehybrid.expert_count', GgufValueType.UINT32, 0]] }, 'blk.0.ffn_gate.weight', /missing/],
    ['a router missing', { dropTensors: ['blk.3.ffn_gate_inp.weight'] }, 'blk.3.ffn_gate_inp.weight', /missing/],
    ['experts of another width', { set: [['granitehybrid.feed_forward_length', GgufValueType.UINT32, 64]] }, 'blk.0.ffn_gate_exps.weight', /experts are 32 channels wide; granitehybrid\.feed_forward_length gives 64/],
    ['shared width disagrees', { set: [['granitehybrid.expert_shared_feed_forward_length', GgufValueType.UINT32, 32]] }, 'blk.0.ffn_gate_shexp.weight', /shared expert of 64 channels; granitehybrid\.expert_shared_feed_forward_length gives 32/],
    ['shared width missing', { drop: ['granitehybrid.expert_shared_feed_forward_length'] }, 'granitehybrid.expert_shared_feed_forward_length', /blk\.0\.ffn_gate_shexp\.weight/],
    ['head_count_kv absent (every layer attention)', { drop: ['granitehybrid.attention.head_count_kv'] }, 'blk.0.attn_q.weight', /missing/],
    ['group_count not dividing the heads', { set: [['granitehybrid.ssm.group_count', GgufValueType.UINT32, 5]] }, 'granitehybrid.ssm.group_count', /does not divide the head count 12/],
    ['negative logit_scale', { set: [['granitehybrid.logit_scale', GgufValueType.FLOAT32, -1]] }, 'granitehybrid.logit_scale', /positive/],
    ['attention.scale as a string', { set: [['granitehybrid.attention.scale', GgufValueType.STRING, '0.0625']] }, 'granitehybrid.attention.scale', /expected a float/],
    ['scaled RoPE', { set: [['granitehybrid.rope.scaling.finetuned', GgufValueType.BOOL, true], ['granitehybrid.rope.scaling.type', GgufValueType.STRING, 'yarn']] }, 'granitehybrid.rope.scaling.type', /"yarn"\) is not supported/],
    ['odd rotary dimension', { set: [['granitehybrid.rope.scaling.finetuned', GgufValueType.BOOL, true], ['granitehybrid.rope.dimension_count', GgufValueType.UINT32, 15]] }, 'granitehybrid.rope.dimension_count', /even/],
    ['the gated norm of another group count', { set: [['granitehybrid.ssm.group_count', GgufValueType.UINT32, 2]] }, 'blk.0.ssm_in.weight', /rows imply group_count 1/],
  ];
  for (const [what, edit, field, re] of cases) {
    const file = await variant(good, `granite ${what}`, edit);
    const e = await loadModelError(file);
    t.ok(e, `${what}: ModelLoadError`);
    t.equal(e?.file, file, `${what}: names the file`);
    t.equal(e?.field, field, `${what}: names ${field} (${e?.message})`);
    t.match(e?.message ?? '', re, `${what}: says why`);
  }

  // llama.cpp's defaults: without rope.scaling.finetuned, granitehybrid has RoPE (base 10000, the whole head).
  const noSwitch = await variant(good, 'granite no rope switch', { drop: ['granitehybrid.rope.scaling.finetuned'] });
  const ck = loadGgufCheckpoint(noSwitch);
  t.same(ck.config.attention && [ck.config.attention.ropeTheta, ck.config.attention.ropeDim], [10000, 16], 'RoPE on by default');
  t.equal(ck.config.attention?.ropeInterleaved, true, "RoPE over the file's q / k rows pairs channels 2i, 2i + 1 (llama.cpp's order)");
  const m = await loadModel(noSwitch);
  t.ok(m.config.attention?.ropeTheta === 10000, 'loads');
  m.dispose();
  // 0 means "none" for the Granite scales, as llama.cpp reads them.
  const zero = loadGgufCheckpoint(await variant(good, 'granite zero scales', {
    set: [['granitehybrid.logit_scale', GgufValueType.FLOAT32, 0], ['granitehybrid.attention.scale', GgufValueType.FLOAT32, 0]],
    drop: ['granitehybrid.embedding_scale'],
  }));
  t.same([zero.config.multipliers?.logits, zero.config.multipliers?.embedding, zero.config.attention?.scale], [1, 1, 0.25], 'scales 0 / absent: 1, and 1/sqrt(head dim)');
});
