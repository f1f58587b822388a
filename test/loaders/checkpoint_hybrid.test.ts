// lib/loaders/checkpoint.ts on Jamba and Granite 4.0-H checkpoints written by
// test/helpers/hybrid_checkpoint.ts: every stored tensor lands on its
// canonical name (docs/hybrid-engine.md's table, spelled out again here) with
// the bytes written, row slices of Granite's packed tensors included (their
// own offset, size and 2-D shape); broken checkpoints are ModelLoadErrors
// naming the stored tensor and its file, or the config key.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelLoadError } from '../../lib/errors';
import { expectedTensors, resolveCheckpoint, type Checkpoint } from '../../lib/loaders/checkpoint';
import { normalizeConfig } from '../../lib/loaders/config';
import { readSafetensorsHeader } from '../../lib/loaders/safetensors';
import { graniteConfig, jambaConfig, writeHybridCheckpoint, type Raw, type WrittenHybrid } from '../helpers/hybrid_checkpoint';

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-hyb-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Where a canonical tensor comes from: a stored tensor, or rows [first, first + count) of it seen as 2-D. */
interface Source { stored: string; rows?: [number, number] }

/** The contract's canonical names -> stored names of a Jamba checkpoint (all one to one). */
function jambaSources(raw: Raw): Map<string, Source> {
  const c = normalizeConfig(raw, 'config.json');
  const m = new Map<string, Source>();
  const one = (canonical: string, stored: string) => m.set(canonical, { stored });
  one('backbone.embeddings.weight', 'model.embed_tokens.weight');
  c.layers.forEach((l, i) => {
    const p = `backbone.layers.${i}.`, s = `model.layers.${i}.`;
    one(`${p}norm.weight`, `${s}input_layernorm.weight`);
    if (l.mixer === 'attention') {
      for (const x of ['q', 'k', 'v', 'o']) one(`${p}mixer.${x}_proj.weight`, `${s}self_attn.${x}_proj.weight`);
    } else {
      for (const x of ['in_proj.weight', 'conv1d.weight', 'conv1d.bias', 'x_proj.weight', 'dt_proj.weight', 'dt_proj.bias', 'A_log', 'D', 'out_proj.weight']) {
        one(`${p}mixer.${x}`, `${s}mamba.${x}`);
      }
      one(`${p}mixer.dt_norm.weight`, `${s}mamba.dt_layernorm.weight`);
      one(`${p}mixer.B_norm.weight`, `${s}mamba.b_layernorm.weight`);
      one(`${p}mixer.C_norm.weight`, `${s}mamba.c_layernorm.weight`);
    }
    one(`${p}ffn_norm.weight`, `${s}pre_ff_layernorm.weight`);
    if (l.ffn === 'mlp') {
      for (const x of ['gate', 'up', 'down']) one(`${p}ffn.${x}_proj.weight`, `${s}feed_forward.${x}_proj.weight`);
    } else {
      one(`${p}ffn.router.weight`, `${s}feed_forward.router.weight`);
      for (let e = 0; e < c.moe!.experts; e++) {
        for (const x of ['gate', 'up', 'down']) one(`${p}ffn.experts.${e}.${x}_proj.weight`, `${s}feed_forward.experts.${e}.${x}_proj.weight`);
      }
    }
  });
  one('backbone.norm_f.weight', 'model.final_layernorm.weight');
  if (!c.tieEmbeddings) one('lm_head.weight', 'lm_head.weight');
  return m;
}

/** The contract's canonical names -> stored names (and row ranges) of a Granite 4.0-H checkpoint. */
function graniteSources(raw: Raw): Map<string, Source> {
  const c = normalizeConfig(raw, 'config.json');
  const d = c.dModel;
  const m = new Map<string, Source>();
  const one = (canonical: string, stored: string, rows?: [number, number]) => m.set(canonical, rows ? { stored, rows } : { stored });
  one('backbone.embeddings.weight', 'model.embed_tokens.weight');
  c.layers.forEach((l, i) => {
    const p = `backbone.layers.${i}.`, s = `model.layers.${i}.`;
    one(`${p}norm.weight`, `${s}input_layernorm.weight`);
    if (l.mixer === 'attention') {
      for (const x of ['q', 'k', 'v', 'o']) one(`${p}mixer.${x}_proj.weight`, `${s}self_attn.${x}_proj.weight`);
    } else {
      for (const x of ['in_proj.weight', 'conv1d.weight', 'conv1d.bias', 'dt_bias', 'A_log', 'D', 'norm.weight', 'out_proj.weight']) {
        one(`${p}mixer.${x}`, `${s}mamba.${x}`);
      }
    }
    one(`${p}ffn_norm.weight`, `${s}post_attention_layernorm.weight`);
    const shared = l.ffn === 'mlp' ? `${p}ffn.` : `${p}ffn.shared.`;
    const Is = l.ffn === 'mlp' ? c.mlpDim! : c.moe!.sharedDim;
    one(`${shared}gate_proj.weight`, `${s}shared_mlp.input_linear.weight`, [0, Is]);
    one(`${shared}up_proj.weight`, `${s}shared_mlp.input_linear.weight`, [Is, Is]);
    one(`${shared}down_proj.weight`, `${s}shared_mlp.output_linear.weight`);
    if (l.ffn === 'moe') {
      const I = c.moe!.dim;
      one(`${p}ffn.router.weight`, `${s}block_sparse_moe.router.layer.weight`);
      for (let e = 0; e < c.moe!.experts; e++) {
        one(`${p}ffn.experts.${e}.gate_proj.weight`, `${s}block_sparse_moe.input_linear.weight`, [2 * I * e, I]);
        one(`${p}ffn.experts.${e}.up_proj.weight`, `${s}block_sparse_moe.input_linear.weight`, [2 * I * e + I, I]);
        one(`${p}ffn.experts.${e}.down_proj.weight`, `${s}block_sparse_moe.output_linear.weight`, [d * e, d]);
      }
    }
  });
  one('backbone.norm_f.weight', 'model.norm.weight');
  if (!c.tieEmbeddings) one('lm_head.weight', 'lm_head.weight');
  return m;
}

function readBytes(file: string, offset: number, nbytes: number): Buffer {
  const buf = Buffer.alloc(nbytes);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, nbytes, offset);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Every canonical tensor: present exactly as the sources say, with the written bytes of its stored tensor (rows). */
function checkResolved(t: Test, ck: Checkpoint, w: WrittenHybrid, sources: Map<string, Source>, label: string): void {
  t.same([...ck.tensors.keys()].sort(), [...sources.keys()].sort(), `${label}: exactly the contract's canonical names`);
  const wantDtype = { F32: 'f32', F16: 'f16', BF16: 'bf16' } as const;
  let bad = 0;
  const problems: string[] = [];
  for (const [name, src] of sources) {
    const ct = ck.tensors.get(name);
    const st = w.tensors.get(src.stored);
    if (!ct || !st) { bad++; problems.push(`${name}: not resolved or not written`); continue; }
    const cols = st.shape[st.shape.length - 1];
    const rowBytes = (st.bytes.byteLength / st.shape.slice(0, -1).reduce((a, b) => a * b, 1));
    const [first, count] = src.rows ?? [0, st.bytes.byteLength / rowBytes];
    const want = st.bytes.subarray(first * rowBytes, (first + count) * rowBytes);
    const shape = src.rows ? [count, cols] : st.shape;
    const got = readBytes(ct.fileName, ct.offset, ct.nbytes);
    const ok = ct.fileName === st.file && ct.fileName === ck.files[ct.file] && ct.dtype === wantDtype[st.dtype] &&
      ct.nbytes === want.byteLength && Buffer.compare(got, Buffer.from(want)) === 0 &&
      ct.shape.length === shape.length && ct.shape.every((v, k) => v === shape[k]);
    if (!ok) { bad++; problems.push(`${name} <- ${src.stored}${src.rows ? ` rows ${src.rows}` : ''}: shape ${ct.shape}, ${ct.nbytes} bytes`); }
  }
  t.equal(bad, 0, `${label}: file, dtype, shape, size and bytes of every tensor${problems.length ? ` (${problems.slice(0, 3).join('; ')})` : ''}`);
}

function throwsLoad(t: Test, dir: string, file: string, field: string, msg?: RegExp): ModelLoadError | undefined {
  try {
    resolveCheckpoint(dir);
    t.fail(`expected a ModelLoadError naming ${field}`);
  } catch (err) {
    t.ok(err instanceof ModelLoadError, `ModelLoadError (got ${(err as Error).name}: ${(err as Error).message})`);
    const e = err as ModelLoadError;
    t.equal(e.file, file, 'file');
    t.equal(e.field, field, 'field');
    if (msg) t.match(e.message, msg, 'message');
    return e;
  }
  return undefined;
}

t.test('jamba: every tensor resolves to its canonical name (dtypes x shards)', async (t) => {
  const root = tmpdir(t);
  for (const dtype of ['F32', 'BF16'] as const) {
    for (const shards of [1, 3]) {
      const raw = jambaConfig();
      const dir = path.join(root, `${dtype}-${shards}`);
      const w = writeHybridCheckpoint(dir, raw, { dtype, shards });
      const ck = resolveCheckpoint(dir);
      t.same(ck.config, normalizeConfig(raw, 'c'), `${dtype} ${shards}: config`);
      t.same([...ck.files].sort(), [...w.files].sort());
      checkResolved(t, ck, w, jambaSources(raw), `${dtype} ${shards} file(s)`);
      t.ok(ck.tensors.has('backbone.layers.3.ffn.experts.3.down_proj.weight'), 'per-expert tensors');
      t.same(ck.tensors.get('backbone.layers.1.ffn.router.weight')?.shape, [4, 16]);
      t.same(ck.tensors.get('backbone.layers.2.mixer.k_proj.weight')?.shape, [8, 16], 'KV rows = 2 heads x 4');
      t.same(ck.tensors.get('backbone.layers.0.mixer.dt_norm.weight')?.shape, [1]);
    }
  }
  // Dense only (num_experts 1), tied.
  const raw = jambaConfig({ num_experts: 1, tie_word_embeddings: true });
  const dir = path.join(root, 'dense');
  const w = writeHybridCheckpoint(dir, raw);
  const ck = resolveCheckpoint(dir);
  checkResolved(t, ck, w, jambaSources(raw), 'dense, tied');
  t.equal(ck.config.tieEmbeddings, true);
});

t.test('granitemoehybrid: packed experts and shared MLP become row slices', async (t) => {
  const root = tmpdir(t);
  for (const dtype of ['BF16', 'F32', 'F16'] as const) {
    for (const shards of [1, 2]) {
      const raw = graniteConfig();
      const dir = path.join(root, `${dtype}-${shards}`);
      const w = writeHybridCheckpoint(dir, raw, { dtype, shards });
      const ck = resolveCheckpoint(dir);
      t.same(ck.config, normalizeConfig(raw, 'c'), `${dtype} ${shards}: config`);
      checkResolved(t, ck, w, graniteSources(raw), `${dtype} ${shards} file(s)`);
    }
  }
  // Offsets spelled out: expert 2's up rows of input_linear [3, 16, 16] (bf16: 32-byte rows).
  const dir = path.join(root, 'BF16-1');
  const ck = resolveCheckpoint(dir);
  const packed = readSafetensorsHeader(path.join(dir, 'model.safetensors')).tensors.get('model.layers.2.block_sparse_moe.input_linear.weight')!;
  const up2 = ck.tensors.get('backbone.layers.2.ffn.experts.2.up_proj.weight')!;
  t.equal(up2.offset, packed.offset + (2 * 16 + 8) * 32, 'offset = stored offset + first row x row bytes');
  t.equal(up2.nbytes, 8 * 32);
  t.same(up2.shape, [8, 16]);
  const down1 = ck.tensors.get('backbone.layers.2.ffn.experts.1.down_proj.weight')!;
  t.same(down1.shape, [16, 8], 'expert down [d, Ie]');
  const sharedUp = ck.tensors.get('backbone.layers.1.ffn.shared.up_proj.weight')!;
  t.same(sharedUp.shape, [12, 16]);
  t.equal(ck.tensors.get('backbone.layers.1.ffn.shared.gate_proj.weight')!.offset + 12 * 32, sharedUp.offset, 'up rows follow the gate rows');

  // Dense Granite (num_local_experts 0): the shared MLP is the layer's ffn.
  const dense = graniteConfig({ num_local_experts: 0, tie_word_embeddings: false, layer_types: ['mamba', 'mamba', 'attention'] });
  const dd = path.join(root, 'dense');
  const wd = writeHybridCheckpoint(dd, dense, { dtype: 'BF16' });
  const cd = resolveCheckpoint(dd);
  checkResolved(t, cd, wd, graniteSources(dense), 'dense');
  t.same(cd.tensors.get('backbone.layers.0.ffn.gate_proj.weight')?.shape, [12, 16]);
  t.notOk([...cd.tensors.keys()].some((k) => k.includes('experts') || k.includes('router')), 'no expert tensors');
});

t.test('granitemoehybrid: a tied config with a stored head uses it', async (t) => {
  const dir = tmpdir(t);
  const raw = graniteConfig();
  writeHybridCheckpoint(dir, raw, { mutate: (ts) => ts.push({ name: 'lm_head.weight', shape: [40, 16] }) });
  const ck = resolveCheckpoint(dir);
  t.equal(ck.config.tieEmbeddings, false);
  t.same(ck.tensors.get('lm_head.weight')?.shape, [40, 16]);
});

t.test('broken hybrid checkpoints name the stored tensor or the config key', async (t) => {
  const root = tmpdir(t);
  let k = 0;
  const fresh = (raw: Raw, mutate?: (ts: Array<{ name: string; shape: number[] }>) => void, shards = 1) => {
    const dir = path.join(root, `c${k++}`);
    const w = writeHybridCheckpoint(dir, raw, { mutate, shards });
    return { dir, w, file: w.files[0], cfg: path.join(dir, 'config.json') };
  };
  const reshape = (name: string, shape: number[]) => (ts: Array<{ name: string; shape: number[] }>) => {
    const x = ts.find((y) => y.name === name);
    if (!x) throw new Error(`no ${name}`);
    x.shape = shape;
  };
  const drop = (name: string) => (ts: Array<{ name: string; shape: number[] }>) => {
    const i = ts.findIndex((y) => y.name === name);
    if (i < 0) throw new Error(`no ${name}`);
    ts.splice(i, 1);
  };

  // Router with a wrong expert count.
  {
    const { dir, file } = fresh(jambaConfig(), reshape('model.layers.3.feed_forward.router.weight', [5, 16]));
    const e = throwsLoad(t, dir, file, 'model.layers.3.feed_forward.router.weight', /rows imply 5 experts, the config gives 4/);
    t.same([e?.expected, e?.actual], [[4, 16], [5, 16]]);
  }
  {
    const { dir, file } = fresh(graniteConfig(), reshape('model.layers.0.block_sparse_moe.router.layer.weight', [3, 8]));
    throwsLoad(t, dir, file, 'model.layers.0.block_sparse_moe.router.layer.weight', /expected \[3, 16\], got \[3, 8\]/);
  }
  // Packed experts with the wrong count or width: the packed tensor is named, with its whole shape.
  {
    const { dir, file } = fresh(graniteConfig(), reshape('model.layers.2.block_sparse_moe.input_linear.weight', [4, 16, 16]));
    const e = throwsLoad(t, dir, file, 'model.layers.2.block_sparse_moe.input_linear.weight', /holds 4 experts of 8 gate and up rows, the config gives 3/);
    t.same([e?.expected, e?.actual], [[3, 16, 16], [4, 16, 16]]);
  }
  {
    const { dir, file } = fresh(graniteConfig(), reshape('model.layers.1.block_sparse_moe.output_linear.weight', [3, 16, 6]));
    throwsLoad(t, dir, file, 'model.layers.1.block_sparse_moe.output_linear.weight', /3 experts of width 6/);
  }
  {
    const { dir, file } = fresh(graniteConfig(), reshape('model.layers.1.shared_mlp.input_linear.weight', [20, 16]));
    throwsLoad(t, dir, file, 'model.layers.1.shared_mlp.input_linear.weight', /intermediate width of 10.*gives 12/);
  }
  // Attention heads that disagree with the config.
  {
    const { dir, file } = fresh(jambaConfig());
    const raw = jambaConfig({ num_key_value_heads: 4 });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw));
    throwsLoad(t, dir, file, 'model.layers.2.self_attn.k_proj.weight', /2 key\/value heads of 4 channels, the config gives 4/);
  }
  // Missing tensors: an expert, an inner norm, the shared MLP; named as stored.
  {
    const { dir, file } = fresh(jambaConfig(), drop('model.layers.3.feed_forward.experts.2.up_proj.weight'));
    const e = throwsLoad(t, dir, file, 'model.layers.3.feed_forward.experts.2.up_proj.weight', /missing/);
    t.same(e?.expected, [24, 16]);
  }
  {
    const { dir, file } = fresh(jambaConfig(), drop('model.layers.0.mamba.b_layernorm.weight'));
    throwsLoad(t, dir, file, 'model.layers.0.mamba.b_layernorm.weight', /missing/);
  }
  {
    const { dir, file } = fresh(graniteConfig(), drop('model.layers.2.shared_mlp.input_linear.weight'));
    const e = throwsLoad(t, dir, file, 'model.layers.2.shared_mlp.input_linear.weight', /missing/);
    t.same(e?.expected, [24, 16], 'the packed shape is expected');
  }
  {
    const { dir, w } = fresh(graniteConfig(), drop('model.layers.0.mamba.dt_bias'), 2);
    throwsLoad(t, dir, path.join(dir, 'model.safetensors.index.json'), 'model.layers.0.mamba.dt_bias', /in no shard/);
    t.equal(w.files.length, 2);
  }
  // More experts in the config than stored: the router is found wrong first.
  {
    const { dir, file } = fresh(jambaConfig());
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(jambaConfig({ num_experts: 6 })));
    throwsLoad(t, dir, file, 'model.layers.1.feed_forward.router.weight', /rows imply 4 experts, the config gives 6/);
  }
  // Config errors through resolveCheckpoint name config.json and the key.
  {
    const { dir, cfg } = fresh(jambaConfig());
    fs.writeFileSync(cfg, JSON.stringify(jambaConfig({ num_experts_per_tok: 5 })));
    throwsLoad(t, dir, cfg, 'num_experts_per_tok', /5 experts per token but num_experts is 4/);
    fs.writeFileSync(cfg, JSON.stringify(jambaConfig({ quantization_config: { quant_method: 'bitsandbytes', load_in_8bit: true } })));
    throwsLoad(t, dir, cfg, 'quantization_config.quant_method', /unsupported quantization method "bitsandbytes"/);
  }
  {
    const { dir, cfg } = fresh(graniteConfig());
    fs.writeFileSync(cfg, JSON.stringify(graniteConfig({ num_experts_per_tok: 4 })));
    throwsLoad(t, dir, cfg, 'num_experts_per_tok', /num_local_experts is 3/);
  }
  // Untied config without a head.
  {
    const { dir, file, cfg } = fresh(graniteConfig());
    fs.writeFileSync(cfg, JSON.stringify(graniteConfig({ tie_word_embeddings: false })));
    throwsLoad(t, dir, file, 'lm_head.weight', /no lm_head\.weight/);
  }
  // Wrong dtype of a packed tensor names it.
  {
    const { dir, file } = fresh(graniteConfig());
    const bytes = fs.readFileSync(file);
    const len = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + len).toString('utf8');
    const at = header.indexOf('"model.layers.0.shared_mlp.output_linear.weight":{"dtype":"F32"');
    t.ok(at >= 0);
    bytes.write(header.slice(0, at) + header.slice(at).replace('"F32"', '"I32"'), 8, 'utf8');
    fs.writeFileSync(file, bytes);
    throwsLoad(t, dir, file, 'model.layers.0.shared_mlp.output_linear.weight', /unsupported dtype I32/);
  }
});

t.test('expectedTensors: published model sizes', async (t) => {
  const count = (raw: Raw) => expectedTensors(normalizeConfig(raw, 'c')).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  // Jamba-v0.1 (transformers' defaults): 52B parameters on its model card (51.6B).
  const jamba = count({ model_type: 'jamba', hidden_size: 4096, num_hidden_layers: 32, vocab_size: 65536 });
  t.ok(Math.abs(jamba / 51.6e9 - 1) < 0.005, `Jamba-v0.1: ${jamba}`);
  // granite-4.0-h-tiny (shared/REFERENCE.md 7(b)): 7B parameters, tied.
  const granite = count({
    model_type: 'granitemoehybrid', hidden_size: 1536, num_hidden_layers: 40, vocab_size: 100352, num_attention_heads: 12,
    num_key_value_heads: 4, num_local_experts: 64, num_experts_per_tok: 6, intermediate_size: 512, shared_intermediate_size: 1024,
    mamba_n_heads: 48, mamba_d_state: 128, layer_types: Array.from({ length: 40 }, (_, i) => (i % 10 === 5 ? 'attention' : 'mamba')),
    tie_word_embeddings: true,
  });
  t.ok(Math.abs(granite / 7e9 - 1) < 0.02, `granite-4.0-h-tiny: ${granite}`);
  // Expert tensors are listed once per expert, in expert order.
  const names = expectedTensors(normalizeConfig(jambaConfig(), 'c')).map((s) => s.name).filter((n) => n.startsWith('backbone.layers.1.ffn.'));
  t.same(names.slice(0, 4), ['backbone.layers.1.ffn.router.weight', 'backbone.layers.1.ffn.experts.0.gate_proj.weight',
    'backbone.layers.1.ffn.experts.0.up_proj.weight', 'backbone.layers.1.ffn.experts.0.down_proj.weight']);
  t.equal(names.length, 1 + 3 * 4);
});
