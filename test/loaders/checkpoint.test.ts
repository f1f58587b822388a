// lib/loaders/checkpoint.ts: checkpoints written by test/helpers/checkpoint_writer
// (every arch x dialect x dtype x tied/untied x single/sharded) resolve to the
// writer's config and to offsets that point at the stored values; every broken
// checkpoint is a ModelLoadError naming the right file and tensor / field.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelLoadError } from '../../lib/errors';
import { canonicalTensorName, expectedTensors, resolveCheckpoint, type CheckpointTensor } from '../../lib/loaders/checkpoint';
import { normalizeConfig, parseConfigJson } from '../../lib/loaders/config';
import { readSafetensorsHeader } from '../../lib/loaders/safetensors';
import { bf16Value, f16Value, writeRandomCheckpoint, type RandomCheckpointOptions } from '../helpers/checkpoint_writer';
import { writeSafetensors, type StTensor } from '../helpers/safetensors_writer';

function tmpdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-ckpt-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Decodes a tensor's bytes straight from its file at the resolved offset. */
function readValues(ct: CheckpointTensor): Float64Array {
  const buf = Buffer.alloc(ct.nbytes);
  const fd = fs.openSync(ct.fileName, 'r');
  try {
    fs.readSync(fd, buf, 0, ct.nbytes, ct.offset);
  } finally {
    fs.closeSync(fd);
  }
  const size = ct.dtype === 'f32' ? 4 : 2;
  const out = new Float64Array(ct.nbytes / size);
  for (let i = 0; i < out.length; i++) {
    out[i] = ct.dtype === 'f32' ? buf.readFloatLE(4 * i) : ct.dtype === 'f16' ? f16Value(buf.readUInt16LE(2 * i)) : bf16Value(buf.readUInt16LE(2 * i));
  }
  return out;
}

/** Reads every tensor of a safetensors file back, lets `mutate` change the list, writes it again. */
function rewrite(file: string, mutate: (ts: StTensor[]) => void): void {
  const st = readSafetensorsHeader(file);
  const bytes = fs.readFileSync(file);
  const ts: StTensor[] = [...st.tensors].sort((a, b) => a[1].offset - b[1].offset).map(([name, info]) => ({
    name, dtype: info.dtype as StTensor['dtype'], shape: info.shape, data: new Uint8Array(bytes.subarray(info.offset, info.offset + info.nbytes)),
  }));
  mutate(ts);
  writeSafetensors(file, ts);
}

function editConfig(dir: string, mutate: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const c = parseConfigJson(fs.readFileSync(file, 'utf8'), file) as Record<string, unknown>;
  mutate(c);
  // written back the way Python does, with a bare Infinity
  fs.writeFileSync(file, JSON.stringify(c, (_k, v) => (v === Infinity ? 'PY_INF' : v)).replaceAll('"PY_INF"', 'Infinity'));
}

function throwsLoad(t: Test, dir: string, file: string, field: string | undefined, msg?: RegExp): ModelLoadError | undefined {
  try {
    resolveCheckpoint(dir);
    t.fail(`expected a ModelLoadError naming ${field ?? file}`);
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

const small = (o: Partial<RandomCheckpointOptions> & Pick<RandomCheckpointOptions, 'arch'>): RandomCheckpointOptions => ({
  dModel: 16, nLayer: 2, vocabSize: 50, dState: 8, headdim: 8, dtype: 'f32', tied: true, dialect: 'hf', seed: 1, ...o,
});

t.test('round trip: arch x dialect x dtype x tied x shards', async (t) => {
  let seed = 100;
  for (const arch of ['mamba', 'mamba2'] as const) {
    for (const dialect of ['hf', 'original'] as const) {
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        for (const tied of [true, false]) {
          for (const shards of [1, 3]) {
            const label = `${arch} ${dialect} ${dtype} ${tied ? 'tied' : 'untied'} ${shards} file(s)`;
            const dir = path.join(tmpdir(t), 'ckpt');
            const w = writeRandomCheckpoint(dir, small({ arch, dialect, dtype, tied, shards, seed: seed++, nLayer: 2, vocabSize: 45, useBias: seed % 3 === 0 }));
            const ck = resolveCheckpoint(dir);
            t.same(ck.config, w.config, `${label}: config`);
            t.equal(ck.dir, path.resolve(dir));
            t.equal(ck.configFile, path.resolve(dir, 'config.json'));
            t.same([...ck.files].sort(), [...w.files].sort(), `${label}: files`);
            t.same([...ck.tensors.keys()].sort(), [...w.weights.keys()].sort(), `${label}: exactly the architecture's tensors`);
            t.equal(ck.tensors.has('lm_head.weight'), !tied, `${label}: lm_head present iff untied`);
            let bad = 0;
            for (const [name, ct] of ck.tensors) {
              const want = w.weights.get(name)!;
              if (ct.dtype !== dtype || ct.fileName !== ck.files[ct.file] || ct.nbytes !== want.length * (dtype === 'f32' ? 4 : 2)) bad++;
              const got = readValues(ct);
              if (got.length !== want.length || got.some((v, i) => v !== want[i])) bad++;
            }
            t.equal(bad, 0, `${label}: dtype, file, size and every stored value read back at the resolved offsets`);
          }
        }
      }
    }
  }
});

t.test('shapes follow the config (d_inner, dt_rank, heads, groups, vocab)', async (t) => {
  const dir = tmpdir(t);
  const m1 = writeRandomCheckpoint(path.join(dir, 'm1'), small({ arch: 'mamba', dModel: 24, dState: 4, dtRank: 3, expand: 2, dConv: 3, vocabSize: 30, padVocabMultiple: 8, tied: false, useBias: true }));
  const c1 = resolveCheckpoint(path.join(dir, 'm1'));
  t.equal(c1.config.vocabSize, 32, 'vocab padded to a multiple of 8');
  const s = (n: string) => c1.tensors.get(n)!.shape;
  t.same(s('backbone.embeddings.weight'), [32, 24]);
  t.same(s('backbone.layers.1.mixer.in_proj.weight'), [96, 24]);
  t.same(s('backbone.layers.1.mixer.in_proj.bias'), [96]);
  t.same(s('backbone.layers.1.mixer.conv1d.weight'), [48, 1, 3]);
  t.same(s('backbone.layers.1.mixer.x_proj.weight'), [3 + 8, 48]);
  t.same(s('backbone.layers.1.mixer.dt_proj.weight'), [48, 3]);
  t.same(s('backbone.layers.1.mixer.A_log'), [48, 4]);
  t.same(s('backbone.layers.1.mixer.out_proj.bias'), [24]);
  t.same(s('lm_head.weight'), [32, 24]);
  t.same(c1.config, m1.config);

  // Mamba-2 with 4 groups: in_proj 2*di + 2*G*N + H rows, conv di + 2*G*N channels.
  for (const dialect of ['hf', 'original'] as const) {
    const sub = path.join(dir, `m2-${dialect}`);
    const w = writeRandomCheckpoint(sub, small({ arch: 'mamba2', dialect, dModel: 32, dState: 8, headdim: 8, ngroups: 4, chunkSize: 16 }));
    const c2 = resolveCheckpoint(sub);
    t.same([c2.config.dInner, c2.config.nheads, c2.config.ngroups, c2.config.headdim, c2.config.chunkSize], [64, 8, 4, 8, 16], `${dialect}: groups, heads`);
    t.same(c2.tensors.get('backbone.layers.0.mixer.in_proj.weight')!.shape, [2 * 64 + 2 * 4 * 8 + 8, 32]);
    t.same(c2.tensors.get('backbone.layers.0.mixer.conv1d.weight')!.shape, [64 + 2 * 4 * 8, 1, 4]);
    t.same(c2.tensors.get('backbone.layers.0.mixer.A_log')!.shape, [8]);
    t.same(c2.tensors.get('backbone.layers.0.mixer.norm.weight')!.shape, [64]);
    t.same(c2.config, w.config);
  }
});

t.test('expectedTensors reproduces the published shapes of mamba-130m and mamba2-130m', async (t) => {
  const m1 = normalizeConfig({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: {}, pad_vocab_size_multiple: 8 }, 'c');
  const s1 = new Map(expectedTensors(m1).map((s) => [s.name, s.shape]));
  t.same(s1.get('backbone.embeddings.weight'), [50280, 768]);
  t.same(s1.get('backbone.layers.23.mixer.in_proj.weight'), [3072, 768]);
  t.same(s1.get('backbone.layers.23.mixer.conv1d.weight'), [1536, 1, 4]);
  t.same(s1.get('backbone.layers.23.mixer.x_proj.weight'), [80, 1536]);
  t.same(s1.get('backbone.layers.23.mixer.dt_proj.weight'), [1536, 48]);
  t.same(s1.get('backbone.layers.23.mixer.A_log'), [1536, 16]);
  t.same(s1.get('backbone.layers.23.mixer.out_proj.weight'), [768, 1536]);
  t.notOk(s1.has('lm_head.weight'));
  t.notOk(s1.has('backbone.layers.24.norm.weight'));
  // 129,135,360 parameters (mamba-130m).
  t.equal(expectedTensors(m1).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0), 129135360);
  const m2 = normalizeConfig({ d_model: 768, n_layer: 24, vocab_size: 50277, ssm_cfg: { layer: 'Mamba2' }, pad_vocab_size_multiple: 16 }, 'c');
  const s2 = new Map(expectedTensors(m2).map((s) => [s.name, s.shape]));
  t.same(s2.get('backbone.embeddings.weight'), [50288, 768]);
  t.same(s2.get('backbone.layers.0.mixer.in_proj.weight'), [3352, 768]);
  t.same(s2.get('backbone.layers.0.mixer.conv1d.weight'), [1792, 1, 4]);
  t.same(s2.get('backbone.layers.0.mixer.dt_bias'), [24]);
});

t.test('names: model. prefix, original embedding name, extra tensors, tied config with a stored head', async (t) => {
  const dir = tmpdir(t);
  const w = writeRandomCheckpoint(dir, small({ arch: 'mamba', tied: true }));
  const file = path.join(dir, 'model.safetensors');
  rewrite(file, (ts) => {
    for (const x of ts) x.name = 'model.' + x.name;
    ts.push({ name: 'model.backbone.layers.0.mixer.unused_buffer', dtype: 'F32', shape: [2], data: new Uint8Array(8) });
    // a head in a config that says tied: the stored head is used
    ts.push({ name: 'lm_head.weight', dtype: 'F32', shape: [w.config.vocabSize, 16], data: new Uint8Array(4 * w.config.vocabSize * 16) });
  });
  const ck = resolveCheckpoint(dir);
  t.ok(ck.tensors.has('backbone.embeddings.weight'), 'model. prefix stripped');
  t.notOk([...ck.tensors.keys()].some((k) => k.includes('unused')), 'unknown tensors ignored');
  t.ok(ck.tensors.has('lm_head.weight'), 'stored head used');
  t.equal(ck.config.tieEmbeddings, false, 'tieEmbeddings false when the head is stored');
  t.same(readValues(ck.tensors.get('backbone.norm_f.weight')!), w.weights.get('backbone.norm_f.weight'));
  t.equal(canonicalTensorName('backbone.embedding.weight'), 'backbone.embeddings.weight');
  t.equal(canonicalTensorName('model.backbone.embedding.weight'), 'backbone.embeddings.weight');
  t.equal(canonicalTensorName('backbone.norm_f.weight'), 'backbone.norm_f.weight');
});

t.test('a directory with one differently named safetensors file', async (t) => {
  const dir = tmpdir(t);
  writeRandomCheckpoint(dir, small({ arch: 'mamba2' }));
  fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'consolidated.safetensors'));
  t.same(resolveCheckpoint(dir).files, [path.join(dir, 'consolidated.safetensors')]);
  fs.copyFileSync(path.join(dir, 'consolidated.safetensors'), path.join(dir, 'other.safetensors'));
  throwsLoad(t, dir, path.join(dir, 'model.safetensors'), undefined, /several other/);
});

t.test('bad checkpoints: directory and config', async (t) => {
  const root = tmpdir(t);
  const missingDir = path.join(root, 'nope');
  throwsLoad(t, missingDir, missingDir, undefined, /directory not found/);
  const notDir = path.join(root, 'file');
  fs.writeFileSync(notDir, 'x');
  throwsLoad(t, notDir, notDir, undefined, /not a checkpoint directory/);

  const dir = path.join(root, 'c');
  writeRandomCheckpoint(dir, small({ arch: 'mamba' }));
  const cfg = path.join(dir, 'config.json');
  const saved = fs.readFileSync(cfg);
  fs.rmSync(cfg);
  throwsLoad(t, dir, cfg, undefined, /config\.json not found/);
  fs.writeFileSync(cfg, '{"model_type": "mamba", ');
  throwsLoad(t, dir, cfg, undefined, /not valid JSON/);
  fs.writeFileSync(cfg, saved);
  editConfig(dir, (c) => { c.model_type = 'llama'; });
  throwsLoad(t, dir, cfg, 'model_type', /llama/);
  editConfig(dir, (c) => { c.model_type = 'mamba'; c.hidden_size = '16'; });
  throwsLoad(t, dir, cfg, 'hidden_size');
});

t.test('bad checkpoints: weights files', async (t) => {
  const root = tmpdir(t);
  // No weights at all.
  const none = path.join(root, 'none');
  writeRandomCheckpoint(none, small({ arch: 'mamba' }));
  fs.rmSync(path.join(none, 'model.safetensors'));
  throwsLoad(t, none, path.join(none, 'model.safetensors'), undefined, /no model\.safetensors/);
  // PyTorch pickle only.
  fs.writeFileSync(path.join(none, 'pytorch_model.bin'), 'PK\u0003\u0004');
  throwsLoad(t, none, path.join(none, 'pytorch_model.bin'), undefined, /convert them to safetensors/);

  // Truncated single file.
  const trunc = path.join(root, 'trunc');
  writeRandomCheckpoint(trunc, small({ arch: 'mamba2', tied: false }));
  const tf = path.join(trunc, 'model.safetensors');
  fs.truncateSync(tf, fs.statSync(tf).size - 3);
  throwsLoad(t, trunc, tf, 'lm_head.weight', /past the end/);
  // Corrupt header length.
  const fd = fs.openSync(tf, 'r+');
  fs.writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]), 0, 8, 0);
  fs.closeSync(fd);
  throwsLoad(t, trunc, tf, 'header length');
});

t.test('bad checkpoints: tensors', async (t) => {
  const root = tmpdir(t);
  let n = 0;
  const fresh = (o: Partial<RandomCheckpointOptions> & Pick<RandomCheckpointOptions, 'arch'>) => {
    const dir = path.join(root, `c${n++}`);
    const w = writeRandomCheckpoint(dir, small(o));
    return { dir, w, file: path.join(dir, 'model.safetensors'), cfg: path.join(dir, 'config.json') };
  };

  // Wrong shape for one tensor.
  {
    const { dir, file } = fresh({ arch: 'mamba', dState: 8 });
    rewrite(file, (ts) => {
      const i = ts.findIndex((x) => x.name === 'backbone.layers.1.mixer.A_log');
      ts[i] = { ...ts[i], shape: [32, 9], data: new Uint8Array(32 * 9 * 4) };
    });
    const e = throwsLoad(t, dir, file, 'backbone.layers.1.mixer.A_log', /d_state = 9/);
    t.same(e?.expected, [32, 8]);
    t.same(e?.actual, [32, 9]);
  }
  // conv1d stored without the middle dimension.
  {
    const { dir, file } = fresh({ arch: 'mamba2' });
    rewrite(file, (ts) => {
      const i = ts.findIndex((x) => x.name === 'backbone.layers.0.mixer.conv1d.weight');
      ts[i] = { ...ts[i], shape: [ts[i].shape[0], ts[i].shape[2]] };
    });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.conv1d.weight', /expected \[48, 1, 4\], got \[48, 4\]/);
  }
  // Config disagrees with the tensors: groups, heads, dt_rank, d_inner, vocab, d_model.
  {
    const { dir, file, cfg } = fresh({ arch: 'mamba2', dModel: 32, ngroups: 2 });
    editConfig(dir, (c) => { c.n_groups = 1; });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.in_proj.weight', /ngroups = 2.*config gives 1/);
    editConfig(dir, (c) => { c.n_groups = 2; c.head_dim = 16; c.num_heads = 4; });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.in_proj.weight');
    editConfig(dir, (c) => { c.head_dim = 8; c.num_heads = 8; c.vocab_size = 64; });
    throwsLoad(t, dir, file, 'backbone.embeddings.weight', /50 rows.*vocabulary is 64/);
    editConfig(dir, (c) => { c.vocab_size = 50; c.num_hidden_layers = 3; });
    throwsLoad(t, dir, file, 'backbone.layers.2.norm.weight', /missing/);
    t.ok(fs.existsSync(cfg));
  }
  {
    const { dir, file } = fresh({ arch: 'mamba', dModel: 32, dtRank: 2 });
    editConfig(dir, (c) => { c.time_step_rank = 3; });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.x_proj.weight', /dt_rank = 2.*config gives dt_rank 3/);
    editConfig(dir, (c) => { c.time_step_rank = 2; c.expand = 1; c.intermediate_size = 32; });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.in_proj.weight', /d_inner = 64, the config gives 32/);
    editConfig(dir, (c) => { c.expand = 2; c.intermediate_size = 32; c.hidden_size = 16; });
    throwsLoad(t, dir, file, 'backbone.embeddings.weight', /expected \[50, 16\], got \[50, 32\]/);
  }
  // Original dialect: the error names the stored (singular) embedding name.
  {
    const { dir, file } = fresh({ arch: 'mamba', dialect: 'original', padVocabMultiple: 1 });
    editConfig(dir, (c) => { c.vocab_size = 51; });
    throwsLoad(t, dir, file, 'backbone.embedding.weight');
  }
  // Missing tensor.
  {
    const { dir, file } = fresh({ arch: 'mamba' });
    rewrite(file, (ts) => ts.splice(ts.findIndex((x) => x.name === 'backbone.layers.1.mixer.D'), 1));
    const e = throwsLoad(t, dir, file, 'backbone.layers.1.mixer.D', /missing/);
    t.same(e?.expected, [32]);
  }
  // use_bias in the config but no bias tensors.
  {
    const { dir, file } = fresh({ arch: 'mamba2', useBias: false });
    editConfig(dir, (c) => { c.use_bias = true; });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.in_proj.bias', /missing/);
  }
  // Untied config without lm_head.
  {
    const { dir, file } = fresh({ arch: 'mamba', tied: true });
    editConfig(dir, (c) => { c.tie_word_embeddings = false; });
    throwsLoad(t, dir, file, 'lm_head.weight', /no lm_head\.weight/);
  }
  {
    const { dir, file } = fresh({ arch: 'mamba2', tied: true, dialect: 'original' });
    editConfig(dir, (c) => { c.tie_embeddings = false; });
    throwsLoad(t, dir, file, 'lm_head.weight');
  }
  // Unknown and unsupported dtypes.
  {
    const { dir, file } = fresh({ arch: 'mamba' });
    rewrite(file, (ts) => {
      const i = ts.findIndex((x) => x.name === 'backbone.layers.0.mixer.D');
      ts[i] = { ...ts[i], dtype: 'F64', shape: [16] }; // 16 f64 = the same 128 bytes as 32 f32
    });
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.D', /unsupported dtype F64/);
    const st = readSafetensorsHeader(file);
    const bytes = fs.readFileSync(file);
    const header = bytes.subarray(8, st.dataStart).toString('utf8').replace('"F64"', '"Q9"  ');
    bytes.write(header, 8, 'utf8');
    fs.writeFileSync(file, bytes);
    throwsLoad(t, dir, file, 'backbone.layers.0.mixer.D', /unknown dtype "Q9"/);
  }
  // The same tensor under two names.
  {
    const { dir, file } = fresh({ arch: 'mamba' });
    rewrite(file, (ts) => {
      const e = ts.find((x) => x.name === 'backbone.norm_f.weight')!;
      ts.push({ ...e, name: 'model.backbone.norm_f.weight' });
    });
    throwsLoad(t, dir, file, 'model.backbone.norm_f.weight', /stored twice/);
  }
});

t.test('bad checkpoints: shards and index', async (t) => {
  const root = tmpdir(t);
  let n = 0;
  const fresh = () => {
    const dir = path.join(root, `s${n++}`);
    const w = writeRandomCheckpoint(dir, small({ arch: 'mamba2', tied: false, shards: 3 }));
    const index = path.join(dir, 'model.safetensors.index.json');
    return { dir, w, index, map: JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> } };
  };
  {
    const { dir, w, map } = fresh();
    const first = Object.keys(map.weight_map).find((k) => map.weight_map[k] === path.basename(w.files[1]));
    t.ok(first && readSafetensorsHeader(w.files[1]).tensors.has(first));
    fs.rmSync(w.files[1]);
    throwsLoad(t, dir, w.files[1], first, /shard .* is missing/);
  }
  {
    const { dir, w } = fresh();
    fs.truncateSync(w.files[2], 100);
    throwsLoad(t, dir, w.files[2], 'header length');
  }
  {
    const { dir, w, index, map } = fresh();
    // Map a tensor of shard 1 to shard 2.
    const name = Object.keys(map.weight_map).find((k) => map.weight_map[k] === path.basename(w.files[0]))!;
    map.weight_map[name] = path.basename(w.files[1]);
    fs.writeFileSync(index, JSON.stringify(map));
    throwsLoad(t, dir, w.files[1], name, /not in it/);
  }
  {
    const { dir, index, map } = fresh();
    delete map.weight_map['backbone.layers.1.mixer.dt_bias'];
    fs.writeFileSync(index, JSON.stringify(map));
    throwsLoad(t, dir, index, 'backbone.layers.1.mixer.dt_bias', /missing/);
  }
  {
    const { dir, index, map } = fresh();
    map.weight_map['backbone.norm_f.weight'] = '../elsewhere.safetensors';
    fs.writeFileSync(index, JSON.stringify(map));
    throwsLoad(t, dir, index, 'weight_map.backbone.norm_f.weight', /inside the directory/);
    fs.writeFileSync(index, JSON.stringify({ metadata: {} }));
    throwsLoad(t, dir, index, 'weight_map', /no weight_map/);
    fs.writeFileSync(index, JSON.stringify({ weight_map: {} }));
    throwsLoad(t, dir, index, 'weight_map', /empty/);
    fs.writeFileSync(index, '[1]');
    throwsLoad(t, dir, index, undefined, /not a JSON object/);
    fs.writeFileSync(index, '[');
    throwsLoad(t, dir, index, undefined, /not valid JSON/);
  }
});
