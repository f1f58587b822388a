// Sequences: prefill then step-by-step decode reproduces one forward pass;
// snapshot/restore reproduces a continuation exactly; batched decode of
// several sequences equals decoding each alone; bad input and use after
// dispose raise typed errors.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DisposedError, loadModel, SnapshotError, type MambaModel } from '../../lib';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';
import { worstError } from '../helpers/reference';
import { restoreInAnotherProcess } from '../helpers/restore_elsewhere';

// Prefill uses the blocked GEMM and the chunked scans, decode the GEMV and
// the step kernels: same math, different float32 summation order.
const ATOL = 1e-4, RTOL = 1e-4;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-seq-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

const archs = [
  { arch: 'mamba' as const, dModel: 32, nLayer: 2, vocabSize: 61, dtype: 'f32' as const, tied: true, dialect: 'hf' as const },
  { arch: 'mamba2' as const, dModel: 64, nLayer: 2, vocabSize: 61, dtype: 'bf16' as const, tied: false, dialect: 'hf' as const, headdim: 16, dState: 16, ngroups: 2 },
];

function tokensFor(n: number, V: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => (s = (s * 48271) % 2147483647) % V);
}

async function load(i: number): Promise<MambaModel> {
  const dir = path.join(root, `m${i}`);
  if (!fs.existsSync(dir)) writeRandomCheckpoint(dir, { ...archs[i], seed: 100 + i });
  // Exact inputs: prefill (GEMM) and steps (GEMV) then differ only in float32
  // summation order. With the default rounding of the bf16 matrices' inputs an
  // input within that noise of a bf16 boundary can round one ulp apart
  // (test/gguf/quantized.test.ts, test/model/logits.test.ts cover rounding).
  return loadModel(dir, { inputRounding: 'none' });
}

for (let i = 0; i < archs.length; i++) {
  const name = archs[i].arch;

  t.test(`${name}: prefill then steps reproduce forward()`, async (t) => {
    const model = await load(i);
    t.teardown(() => model.dispose());
    const V = model.vocabSize, toks = tokensFor(23, V, 5);
    const full = await model.forward(toks);
    for (const split of [1, 7, 22]) {
      const seq = await model.createSequence();
      const first = await seq.prefill(toks.slice(0, split));
      let w = worstError(first, full.subarray((split - 1) * V, split * V), ATOL, RTOL);
      t.ok(w.ratio <= 1, `prefill ${split}: err/tol ${w.ratio.toPrecision(3)}`);
      for (let k = split; k < toks.length; k++) {
        const row = await seq.step(toks[k]);
        w = worstError(row, full.subarray(k * V, (k + 1) * V), ATOL, RTOL);
        if (!(w.ratio <= 1)) t.fail(`step ${k} after prefill ${split}: err/tol ${w.ratio}`);
      }
      t.equal(seq.length, toks.length);
      t.pass(`steps after prefill ${split} match`);
      await seq.dispose();
    }
  });

  t.test(`${name}: snapshot/restore reproduces a continuation exactly`, async (t) => {
    const model = await load(i);
    t.teardown(() => model.dispose());
    const V = model.vocabSize, toks = tokensFor(30, V, 9);
    const a = await model.createSequence();
    await a.prefill(toks.slice(0, 12));
    const snap = await a.snapshot();
    const cont1: Float32Array[] = [];
    for (const id of toks.slice(12)) cont1.push(Float32Array.from(await a.step(id)));
    const b = await model.createSequence();
    await b.prefill(tokensFor(5, V, 77)); // some other state first
    await b.restore(snap);
    t.equal(b.length, 12);
    for (let k = 12; k < toks.length; k++) {
      t.same(Array.from(await b.step(toks[k])), Array.from(cont1[k - 12]), `restored step ${k} identical`);
    }
    await a.restore(snap); // restore into the original too
    t.same(Array.from(await a.step(toks[12])), Array.from(cont1[0]));
    await a.dispose();
    await b.dispose();
  });

  t.test(`${name}: results do not depend on earlier calls (activation memory is reused between calls)`, async (t) => {
    // A model keeps its activation blocks from call to call (engine/buffers.h
    // BufCache), unzeroed: a kernel that read a buffer before writing it would
    // see another call's values. The same prompt and steps, on a fresh model
    // and after calls of other sizes (a prefill past one 512-token chunk, a
    // batched step), give the same logits bit for bit.
    const V = (await load(i)).vocabSize;
    const prompt = tokensFor(37, V, 11), next = tokensFor(3, V, 12);
    const run = async (model: MambaModel) => {
      const seq = await model.createSequence();
      const rows = [await seq.prefill(prompt)];
      for (const tok of next) rows.push(await seq.step(tok));
      await seq.dispose();
      return rows;
    };
    const fresh = await load(i);
    const want = await run(fresh);
    fresh.dispose();
    const used = await load(i);
    t.teardown(() => used.dispose());
    const others = [await used.createSequence(), await used.createSequence()];
    await others[0].prefill(tokensFor(600, V, 13));
    await others[1].prefill(tokensFor(5, V, 14));
    await Promise.all(others.map((s, k) => s.step(k + 1)));
    const got = await run(used);
    for (let k = 0; k < want.length; k++) t.same(Array.from(got[k]), Array.from(want[k]), `${k === 0 ? 'prefill' : `step ${k}`}: same logits`);
  });

  t.test(`${name}: 8 sequences decoded together equal each decoded alone`, async (t) => {
    const model = await load(i);
    t.teardown(() => model.dispose());
    const V = model.vocabSize;
    const prompts = Array.from({ length: 8 }, (_, j) => tokensFor(3 + j, V, 11 + j));
    const steps = 6;
    const alone: number[][][] = [];
    for (const p of prompts) {
      const s = await model.createSequence();
      await s.prefill(p);
      const rows: number[][] = [];
      for (let k = 0; k < steps; k++) rows.push(Array.from(await s.step((p[0] + k) % V)));
      alone.push(rows);
      await s.dispose();
    }
    const seqs = await Promise.all(prompts.map(() => model.createSequence()));
    await Promise.all(seqs.map((s, j) => s.prefill(prompts[j])));
    for (let k = 0; k < steps; k++) {
      const rows = await Promise.all(seqs.map((s, j) => s.step((prompts[j][0] + k) % V)));
      rows.forEach((r, j) => { if (JSON.stringify(Array.from(r)) !== JSON.stringify(alone[j][k])) t.fail(`seq ${j} step ${k} differs`); });
    }
    t.pass('batched rows are bit-identical to single-sequence rows');
    await Promise.all(seqs.map((s) => s.dispose()));
  });
}

t.test('bad input and use after dispose', async (t) => {
  const model = await load(0);
  const V = model.vocabSize;
  await t.rejects(model.forward([0, V]), { name: 'RangeError', message: /tokens\[1\]/ });
  await t.rejects(model.forward([-1]), RangeError);
  await t.rejects(model.forward([1.5]), RangeError);
  await t.rejects(model.forward([]), RangeError);
  const seq = await model.createSequence();
  await t.rejects(seq.step(V + 3), { name: 'RangeError', message: /token/ });
  await t.rejects(seq.restore({ data: new Float32Array(3), length: 0, lastLogits: undefined } as never), { name: 'TypeError', message: /Uint8Array/ });
  await seq.dispose();
  await seq.dispose(); // twice is fine
  await t.rejects(seq.step(1), DisposedError);
  const other = await model.createSequence();
  model.dispose();
  model.dispose();
  await t.rejects(model.forward([1]), DisposedError);
  await t.rejects(model.createSequence(), DisposedError);
  await t.rejects(other.prefill([1]), DisposedError);
  await other.dispose();
  t.throws(() => model.memory, DisposedError);
});

t.test('snapshots are self-describing bytes: restored in another process, refused from another model or corrupt', async (t) => {
  const model = await load(1);
  t.teardown(() => model.dispose());
  const V = model.vocabSize, toks = tokensFor(20, V, 5);
  const a = await model.createSequence();
  await a.prefill(toks.slice(0, 12));
  const snap = await a.snapshot();
  t.type(snap, Uint8Array);
  t.equal(Buffer.from(snap.subarray(0, 8)).toString('latin1'), 'NMSNAPSH', 'magic');
  const next = Array.from(await a.step(toks[12]));
  await a.dispose();

  // Another process holding the same model restores it and continues identically.
  const child = restoreInAnotherProcess(path.join(root, 'm1'), snap, path.join(root, 'snap.bin'), toks[12]);
  t.equal(child.status, 0, child.stderr);
  t.equal(child.length, 12, 'the position travels with the state');
  t.same(child.logits, next, 'the other process continues bit for bit');

  // The same bytes into another model of the same shapes: refused by fingerprint.
  const otherDir = path.join(root, 'm1-other');
  writeRandomCheckpoint(otherDir, { ...archs[1], seed: 999 });
  const other = await loadModel(otherDir, { inputRounding: 'none' });
  const o = await other.createSequence();
  await t.rejects(o.restore(snap), { name: 'SnapshotError', code: 'ERR_SNAPSHOT', field: 'fingerprint' }, 'another model');
  const err = await o.restore(snap).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof SnapshotError, 'the exported SnapshotError class');
  await o.dispose();
  other.dispose();
  // Another architecture altogether.
  const m0 = await load(0);
  const z = await m0.createSequence();
  await t.rejects(z.restore(snap), { name: 'SnapshotError', code: 'ERR_SNAPSHOT', field: 'fingerprint' }, 'another architecture');
  await z.dispose();
  m0.dispose();

  // Corrupt, truncated, foreign, newer.
  const b = await model.createSequence();
  await b.prefill(toks.slice(0, 3));
  const flipped = Uint8Array.from(snap);
  flipped[snap.length >> 1] ^= 0x40;
  await t.rejects(b.restore(flipped), { name: 'SnapshotError', code: 'ERR_SNAPSHOT', field: 'checksum' }, 'a flipped bit');
  await t.rejects(b.restore(snap.subarray(0, snap.length - 100)), { name: 'SnapshotError', code: 'ERR_SNAPSHOT', field: 'checksum' }, 'truncated');
  await t.rejects(b.restore(new TextEncoder().encode('hello, this is not a snapshot')), { name: 'SnapshotError', code: 'ERR_SNAPSHOT', field: 'magic' }, 'foreign bytes');
  const newer = Uint8Array.from(snap);
  newer[8] = 99;
  await t.rejects(b.restore(newer), { name: 'SnapshotError', code: 'ERR_SNAPSHOT', field: 'version' }, 'a newer format');
  t.equal(b.length, 3, 'a refused restore leaves the sequence as it was');
  await b.restore(snap);
  t.same(Array.from(await b.step(toks[12])), next, 'and the good snapshot still restores');
  await b.dispose();
});
