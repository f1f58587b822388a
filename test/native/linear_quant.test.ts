// linear with ggml block-quantized weights (Q8_0, Q4_0) against a float64
// reference that dequantises the blocks exactly, both algorithms, every ISA;
// the engine with quantized tensors (embedding lookup and every linear).
// (Block formats: test/helpers/quant_blocks.ts.)
import t, { Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { kernels } from '../../lib';
import { native } from '../../lib/native/binding';
import type { NativeLoadArgs } from '../../lib/native/types';
import { expectedTensors } from '../../lib/loaders/checkpoint';
import { nativeModelShape } from '../../lib/model/native_args';
import { writeRandomCheckpoint } from '../../lib/testing/random_checkpoint';
import type { MambaConfig } from '../../lib/model/config';
import { forEachIsa, randn, rng, toF16 } from '../helpers/reference';
import {
  ALGOS, ATOL, BLOCK_BYTES, QDTS, RTOL, bitEqual, checkLinear, dequant, firstBitDiff, halfValue, linearRef, randomBlocks, type QDt,
} from '../helpers/quant_blocks';


t.test('quantized linear matches the float64 reference and equals the f32 path on the dequantised weights bit for bit', (t) => {
  const r = rng(41);
  const Ms = [1, 2, 3, 5, 8, 9, 17, 64, 129], Ns = [1, 7, 33, 100, 257], Ks = [32, 64, 800, 96, 288, 544];
  let idx = 0;
  for (const M of Ms) {
    for (const N of Ns) {
      const K = Ks[idx % Ks.length];
      const withBias = idx % 2 === 0;
      idx++;
      const x = randn(r, M * K), b = withBias ? randn(r, N) : null;
      for (const dt of QDTS) {
        const data = randomBlocks(r, N, K, dt, dt === 'q8_0' ? 0.5 / 127 : 0.5 / 8);
        const wd = dequant(data, N, K, dt);
        const w32 = Float32Array.from(wd);
        const ref = linearRef(x, wd, b, M, N, K);
        forEachIsa((isa) => {
          for (const algorithm of ALGOS) {
            const args = { x, bias: b ?? undefined, rows: M, inFeatures: K, outFeatures: N, algorithm };
            const got = kernels.linear({ ...args, weight: { data, dtype: dt } });
            const msg = `M=${M} N=${N} K=${K} ${dt} bias=${withBias} ${algorithm} ${isa}`;
            checkLinear(t, got, ref, msg);
            bitEqual(t, got, kernels.linear({ ...args, weight: w32 }), `${msg}: = f32 path on the dequantised weight`);
          }
        });
      }
    }
  }
  t.end();
});

t.test('quantized linear: cache-block and threading boundaries (K over several 256 blocks, N over 256, many row groups)', (t) => {
  const r = rng(42);
  for (const [M, N, K] of [[40, 600, 800], [300, 20, 320], [7, 1029, 544], [1, 2000, 768], [13, 33, 1024]]) {
    const x = randn(r, M * K), b = randn(r, N);
    for (const dt of QDTS) {
      const data = randomBlocks(r, N, K, dt, 0.01);
      const wd = dequant(data, N, K, dt);
      const ref = linearRef(x, wd, b, M, N, K);
      forEachIsa((isa) => {
        for (const algorithm of ALGOS) {
          const got = kernels.linear({ x, weight: { data, dtype: dt }, bias: b, rows: M, inFeatures: K, outFeatures: N, algorithm });
          checkLinear(t, got, ref, `M=${M} N=${N} K=${K} ${dt} ${algorithm} ${isa}`);
        }
      });
    }
  }
  t.end();
});

t.test('quantized GEMV is batch invariant: row m of an M=8 (and M=16) call equals the M=1 call on row m, bit for bit', (t) => {
  const r = rng(43);
  const N = 131, K = 800;
  const x = randn(r, 16 * K), b = randn(r, N);
  for (const dt of QDTS) {
    const data = randomBlocks(r, N, K, dt, 0.01);
    forEachIsa((isa) => {
      for (const M of [8, 16]) {
        const all = kernels.linear({ x: x.subarray(0, M * K), weight: { data, dtype: dt }, bias: b, rows: M, inFeatures: K, outFeatures: N, algorithm: 'gemv' });
        let firstBad = -1;
        for (let m = 0; m < M && firstBad < 0; m++) {
          const one = kernels.linear({ x: x.subarray(m * K, (m + 1) * K), weight: { data, dtype: dt }, bias: b, rows: 1, inFeatures: K, outFeatures: N, algorithm: 'gemv' });
          if (firstBitDiff(all.subarray(m * N, (m + 1) * N), one) >= 0) firstBad = m;
        }
        t.equal(firstBad, -1, `${dt} ${isa}: every row of M=${M} equals its M=1 result`);
      }
    });
  }
  t.end();
});

t.test('quantized linear: K = 0 gives the bias; the checks can fail (one changed byte is caught)', (t) => {
  const b = new Float32Array([1.5, -2, 3.25]);
  for (const dt of QDTS) {
    forEachIsa((isa) => {
      for (const algorithm of ALGOS) {
        const got = kernels.linear({ x: new Float32Array(0), weight: { data: new Uint8Array(0), dtype: dt }, bias: b, rows: 2, inFeatures: 0, outFeatures: 3, algorithm });
        t.same(Array.from(got), [...b, ...b], `K=0 ${dt} ${algorithm} ${isa}`);
      }
    });
    const r = rng(44);
    const M = 3, N = 5, K = 64;
    const x = randn(r, M * K), data = randomBlocks(r, N, K, dt, 0.05);
    // Make block 0 of row 1 an ordinary block so that changing a quant changes the output.
    const o = 1 * 2 * BLOCK_BYTES[dt];
    data[o] = 0x00; data[o + 1] = 0x2c; // d = 2^-4
    const ref = linearRef(x, dequant(data, N, K, dt), null, M, N, K);
    const bad = data.slice();
    bad[o + 2 + 3] ^= 0x01; // one quant of row 1 changes by one step
    const got = kernels.linear({ x, weight: { data: bad, dtype: dt }, rows: M, inFeatures: K, outFeatures: N });
    let caught = false;
    for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - ref.y[i]) > RTOL * ref.mag[i] + ATOL) caught = true;
    t.ok(caught, `${dt}: a one-step change of one quant exceeds the tolerance`);
  }
  t.end();
});

t.test('quantized linear rejects bad input with named errors', (t) => {
  const M = 2, N = 3, K = 64;
  const x = new Float32Array(M * K);
  const ok = { x, rows: M, inFeatures: K, outFeatures: N };
  for (const dt of QDTS) {
    const need = N * (K / 32) * BLOCK_BYTES[dt];
    t.equal(kernels.linear({ ...ok, weight: { data: new Uint8Array(need), dtype: dt } }).length, M * N, `${dt}: the valid call works`);
    t.throws(() => kernels.linear({ ...ok, weight: { data: new Uint8Array(need - 1), dtype: dt } }),
      { name: 'RangeError', message: new RegExp(`'weight' must have ${need} bytes`) }, `${dt}: short weight`);
    t.throws(() => kernels.linear({ ...ok, weight: { data: new Uint8Array(need + BLOCK_BYTES[dt]), dtype: dt } }),
      { name: 'RangeError', message: /'weight' must have/ }, `${dt}: long weight`);
    t.throws(() => kernels.linear({ ...ok, x: new Float32Array(M * 40), inFeatures: 40, weight: { data: new Uint8Array(N * 2 * BLOCK_BYTES[dt]), dtype: dt } }),
      { name: 'RangeError', message: /'inFeatures' must be a multiple of 32/ }, `${dt}: K not a multiple of 32`);
    t.throws(() => kernels.linear({ ...ok, weight: { data: new Uint16Array(need / 2), dtype: dt } as never }),
      { name: 'TypeError', message: /'weight'.*Uint8Array/ }, `${dt}: not a Uint8Array`);
    t.throws(() => kernels.linear({ ...ok, weight: { data: new Float32Array(N * K), dtype: dt } as never }),
      { name: 'TypeError', message: /'weight'/ }, `${dt}: Float32Array`);
  }
  t.throws(() => kernels.linear({ ...ok, weight: new Uint8Array(N * 2 * 34) as never }),
    { name: 'TypeError', message: /'weight' is a Uint8Array, so 'weightDtype' must be 'q8_0' or 'q4_0'/ }, 'Uint8Array without a dtype');
  t.throws(() => kernels.linear({ ...ok, weight: { data: new Uint8Array(N * 2 * 34), dtype: 'q5_0' as 'q8_0' } }),
    { name: 'TypeError', message: /weightDtype/ }, 'unknown quantized dtype');
  t.end();
});

// ---------------------------------------------------------------------------
// Engine: a model whose matrices are quantized gives exactly the logits of the
// same model with the dequantised weights stored as f32 (every linear is
// bit-identical and the embedding lookup dequantises exactly).

/** ggml-style quantization of a row-major [rows, K] matrix (only a source of realistic blocks). */
function quantize(v: Float64Array, rows: number, K: number, dt: QDt): Uint8Array {
  const bb = BLOCK_BYTES[dt], nb = K / 32, out = new Uint8Array(rows * nb * bb);
  const dv = new Float32Array(1);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const x = v.subarray(r * K + b * 32, r * K + b * 32 + 32), o = (r * nb + b) * bb;
      let amax = 0, max = 0;
      for (const e of x) if (Math.abs(e) > amax) { amax = Math.abs(e); max = e; }
      dv[0] = dt === 'q8_0' ? amax / 127 : max / -8;
      const h = toF16(dv)[0], d = halfValue(h);
      out[o] = h & 0xff; out[o + 1] = h >> 8;
      const q = (e: number) => (d === 0 ? 0 : e / d);
      for (let j = 0; j < 32; j++) {
        if (dt === 'q8_0') out[o + 2 + j] = Math.max(-127, Math.min(127, Math.round(q(x[j])))) & 0xff;
        else {
          const n = Math.max(0, Math.min(15, Math.floor(q(x[j]) + 8.5)));
          out[o + 2 + (j & 15)] |= j < 16 ? n : n << 4;
        }
      }
    }
  }
  return out;
}

type TensorArg = NativeLoadArgs['tensors'][number];

function nativeArgsFor(c: MambaConfig, file: string, tensors: TensorArg[]): NativeLoadArgs {
  return {
    arch: c.arch, dModel: c.dModel, nLayer: c.nLayer, vocabSize: c.vocabSize, dState: c.dState, dConv: c.dConv,
    dInner: c.dInner, dtRank: c.dtRank, headdim: c.headdim, nheads: c.nheads, ngroups: c.ngroups, normEps: c.normEps,
    dtMin: c.timeStepLimit[0], ...(Number.isFinite(c.timeStepLimit[1]) ? { dtMax: c.timeStepLimit[1] } : {}),
    ...nativeModelShape(c, 4096, 'f16'),
    files: [file], tensors,
    // Exact inputs: the q8_0 / q4_0 model must equal the f32 one bit for bit
    // (the default rounds the inputs of quantized matrices; test/gguf/quantized.test.ts).
    roundActivations: false,
  };
}

/**
 * Writes one raw file holding every tensor of `weights`: those named in
 * `quant` as quantized blocks (or, with `dequantised`, as f32 holding exactly
 * the blocks' values), the rest as f32. Returns the native tensor table.
 */
function writeRaw(file: string, c: MambaConfig, weights: Map<string, Float64Array>, quant: Map<string, QDt>, dequantised: boolean): TensorArg[] {
  const parts: Uint8Array[] = [];
  const tensors: TensorArg[] = [];
  let off = 0;
  for (const spec of expectedTensors(c)) {
    const v = weights.get(spec.name);
    if (!v) continue;
    const dt = quant.get(spec.name);
    let bytes: Uint8Array, dtype: TensorArg['dtype'] = 'f32';
    if (dt) {
      const [rows, K] = spec.shape;
      const q = quantize(v, rows, K, dt);
      if (dequantised) bytes = new Uint8Array(Float32Array.from(dequant(q, rows, K, dt)).buffer);
      else { bytes = q; dtype = dt; }
    } else {
      bytes = new Uint8Array(Float32Array.from(v).buffer);
    }
    const pad = (32 - (off % 32)) % 32;
    if (pad) { parts.push(new Uint8Array(pad)); off += pad; }
    tensors.push({ name: spec.name, file: 0, offset: off, nbytes: bytes.length, dtype, shape: spec.shape });
    parts.push(bytes);
    off += bytes.length;
  }
  fs.writeFileSync(file, Buffer.concat(parts));
  return tensors;
}

t.test('engine: q8_0 / q4_0 embedding, in/out/x/dt projections and lm_head give the logits of the dequantised f32 model, bit for bit', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-quant-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const cases = [
    { name: 'mamba tied', opts: { arch: 'mamba' as const, dModel: 64, nLayer: 2, vocabSize: 70, dtRank: 32, tied: true } },
    { name: 'mamba2 untied', opts: { arch: 'mamba2' as const, dModel: 64, nLayer: 2, vocabSize: 50, headdim: 16, dState: 32, ngroups: 2, tied: false } },
  ];
  let seed = 5;
  for (const { name, opts } of cases) {
    const dir = path.join(root, name.replace(/\W+/g, '_'));
    const ck = writeRandomCheckpoint(dir, { ...opts, dtype: 'f32', dialect: 'hf', seed: seed++ });
    const c = ck.config;
    const quant = new Map<string, QDt>([['backbone.embeddings.weight', 'q8_0'], ['lm_head.weight', 'q4_0']]);
    for (let i = 0; i < c.nLayer; i++) {
      const m = `backbone.layers.${i}.mixer.`;
      quant.set(`${m}in_proj.weight`, i % 2 ? 'q8_0' : 'q4_0');
      quant.set(`${m}out_proj.weight`, i % 2 ? 'q4_0' : 'q8_0');
      if (c.arch === 'mamba') {
        quant.set(`${m}x_proj.weight`, 'q8_0');
        quant.set(`${m}dt_proj.weight`, 'q4_0');
      }
    }
    const qFile = path.join(root, `${opts.arch}-q.bin`), fFile = path.join(root, `${opts.arch}-f.bin`);
    const qm = await native.loadModel(nativeArgsFor(c, qFile, writeRaw(qFile, c, ck.weights, quant, false)));
    const fm = await native.loadModel(nativeArgsFor(c, fFile, writeRaw(fFile, c, ck.weights, quant, true)));
    t.ok(qm.info().weightBytes < fm.info().weightBytes, `${name}: quantized weights take fewer bytes (${qm.info().weightBytes} vs ${fm.info().weightBytes})`);
    const tokens = Int32Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % c.vocabSize);
    const qs = await qm.allocSequence(), fs2 = await fm.allocSequence();
    const ql = (await qm.prefill(qs, tokens, 'all'))!, fl = (await fm.prefill(fs2, tokens, 'all'))!;
    t.equal(ql.length, tokens.length * c.vocabSize, `${name}: logits of every position`);
    bitEqual(t, ql, fl, `${name}: prefill (GEMM path) logits equal the dequantised model's`);
    let anyNonZero = false;
    for (const v of ql) if (v !== 0 && Number.isFinite(v)) anyNonZero = true;
    t.ok(anyNonZero, `${name}: logits are finite and not all zero`);
    const qd = await qm.step(Int32Array.of(qs), Int32Array.of(3)), fd = await fm.step(Int32Array.of(fs2), Int32Array.of(3));
    bitEqual(t, qd, fd, `${name}: decode step (GEMV path) logits equal the dequantised model's`);
    qm.dispose();
    fm.dispose();
  }
});

t.test('engine: quantized tensors are refused where they cannot be used, with the tensor named', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-quant-bad-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const ck = writeRandomCheckpoint(path.join(root, 'ck'), { arch: 'mamba', dModel: 64, nLayer: 1, vocabSize: 40, dtRank: 4, dtype: 'f32', tied: true, dialect: 'hf', seed: 9 });
  const c = ck.config;
  const file = path.join(root, 'm.bin');
  const base = writeRaw(file, c, ck.weights, new Map(), false);
  const size = fs.statSync(file).size;
  const load = (patch: (ts: TensorArg[]) => void) => {
    const ts = base.map((x) => ({ ...x, shape: [...x.shape] }));
    patch(ts);
    return native.loadModel(nativeArgsFor(c, file, ts));
  };
  const m = 'backbone.layers.0.mixer.';
  const find = (ts: TensorArg[], n: string) => ts.find((x) => x.name === n)!;
  const rejects = async (what: string, patch: (ts: TensorArg[]) => void, field: string, msg: RegExp) => {
    await t.rejects(async () => load(patch), { code: 'ERR_MODEL_LOAD', field, message: msg }, what);
  };
  t.ok(size > 0);
  // A small parameter converted to float32 (get_f32): D [d_inner].
  await rejects('quantized D', (ts) => { const x = find(ts, `${m}D`); x.dtype = 'q8_0'; x.nbytes = (c.dInner / 32) * 34; }, `${m}D`, /D has quantized dtype q8_0/);
  // A norm weight (read by the norm kernel).
  await rejects('quantized norm', (ts) => { const x = find(ts, 'backbone.norm_f.weight'); x.dtype = 'q4_0'; x.nbytes = (c.dModel / 32) * 18; }, 'backbone.norm_f.weight', /quantized dtype q4_0/);
  // dt_proj [d_inner, 4]: rows of 4 elements cannot be blocks of 32.
  await rejects('quantized dt_proj with rows of 4', (ts) => { const x = find(ts, `${m}dt_proj.weight`); x.dtype = 'q8_0'; x.nbytes = 34; }, `${m}dt_proj.weight`, /multiple of 32/);
  // Wrong byte count for a quantized matrix.
  await rejects('quantized in_proj with the f32 byte count', (ts) => { find(ts, `${m}in_proj.weight`).dtype = 'q8_0'; }, `${m}in_proj.weight`, /bytes, its shape and dtype need/);
  await t.rejects(async () => load((ts) => { (find(ts, `${m}in_proj.weight`) as { dtype: string }).dtype = 'q5_1'; }), { name: 'TypeError', message: /q8_0/ }, 'unknown dtype named');
  t.end();
});
