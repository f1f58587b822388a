// GPTQ (lib/quant/gptq.ts): equal to a plain float64 twin of the algorithm
// (column by column, explicit inverse by Gauss-Jordan, Cholesky written out)
// on awkward sizes and block sizes; equal to round-to-nearest when H is
// diagonal; a smaller layer-output error than round-to-nearest on correlated
// inputs. The native calibration's Gram matrices (the Hessians' source)
// against float64 sums the test computes from inputs it controls. quantize()
// with recipe.gptq: bad input is a typed error; the checkpoint loads and runs.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, quantize, QuantizeError } from '../../lib';
import { dequantize, I4_GROUP, i4Groups, quantizeI4, roundHalfEven, unpackI4 } from '../../lib/quant/formats';
import { gptqQuantizeI4 } from '../../lib/quant/gptq';
import { rng, writeRandomCheckpoint } from '../../lib/testing/random_checkpoint';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-gptq-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

async function rejectsWith(t: Test, p: Promise<unknown>, pred: (e: unknown) => boolean, msg: string): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  t.ok(e !== undefined && pred(e), `${msg}${e === undefined ? ' (resolved)' : pred(e) ? '' : `: got ${String(e)} field=${String((e as { field?: string }).field)}`}`);
}

/** Standard normal samples (Box-Muller). */
function gauss(r: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** X = Z·M ([n, k]): correlated inputs, with some channels much larger (as activations have them). */
function correlatedInputs(n: number, k: number, seed: number, dead: number[] = []): Float64Array {
  const g = gauss(rng(seed));
  const Z = Float64Array.from({ length: n * k }, g);
  const M = Float64Array.from({ length: k * k }, g);
  for (let i = 0; i < k; i++) M[i * k + i] += 3;
  const X = new Float64Array(n * k);
  for (let a = 0; a < n; a++)
    for (let b = 0; b < k; b++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += Z[a * k + c] * M[c * k + b];
      X[a * k + b] = s * (b % 11 === 3 ? 8 : 1);
    }
  for (const d of dead) for (let a = 0; a < n; a++) X[a * k + d] = 0;
  return X;
}

/** H = 2/n · XᵀX, [k, k]. */
function hessianOf(X: Float64Array, n: number, k: number): Float64Array {
  const H = new Float64Array(k * k);
  for (let a = 0; a < n; a++)
    for (let i = 0; i < k; i++) {
      const xi = X[a * k + i];
      for (let j = 0; j < k; j++) H[i * k + j] += (2 / n) * xi * X[a * k + j];
    }
  return H;
}

function randomWeights(rows: number, cols: number, seed: number): Float32Array {
  const g = gauss(rng(seed));
  return Float32Array.from({ length: rows * cols }, () => 0.05 * g());
}

/** Inverse by Gauss-Jordan elimination with partial pivoting. */
function gaussJordanInverse(A: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(A), inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    if (p !== c) {
      for (let j = 0; j < n; j++) {
        [a[c * n + j], a[p * n + j]] = [a[p * n + j], a[c * n + j]];
        [inv[c * n + j], inv[p * n + j]] = [inv[p * n + j], inv[c * n + j]];
      }
    }
    const d = a[c * n + c];
    for (let j = 0; j < n; j++) { a[c * n + j] /= d; inv[c * n + j] /= d; }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r * n + c];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) { a[r * n + j] -= f * a[c * n + j]; inv[r * n + j] -= f * inv[c * n + j]; }
    }
  }
  return inv;
}

/**
 * The reference: GPTQ (arXiv:2210.17323, Algorithm 1 without the lazy blocks)
 * written plainly. U upper with UᵀU = H⁻¹; column j: q_j, e = (w_j − q_j) / U_jj,
 * w_k −= e · U_jk for k > j; a group's scales from its current weights when
 * its first column is reached.
 */
function referenceGptq(w: ArrayLike<number>, rows: number, cols: number, hessian: Float64Array, percdamp = 0.01) {
  const W = Float64Array.from(w), H = Float64Array.from(hessian);
  for (let i = 0; i < cols; i++) {
    if (H[i * cols + i] === 0) {
      H[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0;
    }
  }
  let mean = 0;
  for (let i = 0; i < cols; i++) mean += H[i * cols + i] / cols;
  for (let i = 0; i < cols; i++) H[i * cols + i] += percdamp * mean;
  const Hi = gaussJordanInverse(H, cols);
  const U = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    let s = Hi[i * cols + i];
    for (let k = 0; k < i; k++) s -= U[k * cols + i] ** 2;
    U[i * cols + i] = Math.sqrt(s);
    for (let j = i + 1; j < cols; j++) {
      let v = Hi[i * cols + j];
      for (let k = 0; k < i; k++) v -= U[k * cols + i] * U[k * cols + j];
      U[i * cols + j] = v / U[i * cols + i];
    }
  }
  const G = i4Groups(cols), scales = new Float32Array(rows * G), q = new Int8Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    const g = Math.floor(j / I4_GROUP);
    if (j % I4_GROUP === 0) {
      for (let r = 0; r < rows; r++) {
        let amax = 0;
        for (let c = j; c < Math.min(cols, j + I4_GROUP); c++) amax = Math.max(amax, Math.abs(W[r * cols + c]));
        scales[r * G + g] = Math.fround(amax * 2 / 15);
      }
    }
    for (let r = 0; r < rows; r++) {
      const s = scales[r * G + g], wv = W[r * cols + j];
      const qv = s === 0 ? 0 : Math.max(-8, Math.min(7, roundHalfEven(wv / s)));
      q[r * cols + j] = qv;
      const e = (wv - qv * s) / U[j * cols + j];
      for (let k = j + 1; k < cols; k++) W[r * cols + k] -= e * U[j * cols + k];
    }
  }
  return { q, scales };
}

t.test('gptqQuantizeI4 equals the plain float64 reference (awkward sizes, any block size)', async (t) => {
  const cases: Array<{ rows: number; cols: number; dead?: number[] }> = [
    { rows: 3, cols: 7 }, { rows: 17, cols: 130, dead: [5, 129] }, { rows: 8, cols: 200 }, { rows: 5, cols: 257, dead: [0, 128, 256] },
  ];
  let seed = 100;
  for (const { rows, cols, dead } of cases) {
    const n = 2 * cols + 16;
    const H = hessianOf(correlatedInputs(n, cols, seed++, dead), n, cols);
    const w = randomWeights(rows, cols, seed++);
    const ref = referenceGptq(w, rows, cols, H);
    for (const blockSize of [128, 1, 48, 200]) {
      const got = gptqQuantizeI4(w, rows, cols, H, { blockSize });
      const q = unpackI4(got.data as Uint8Array, rows, cols);
      let qDiff = 0, sErr = 0;
      for (let i = 0; i < q.length; i++) if (q[i] !== ref.q[i]) qDiff++;
      for (let i = 0; i < ref.scales.length; i++) sErr = Math.max(sErr, Math.abs(got.scales[i] - ref.scales[i]) / Math.max(Math.abs(ref.scales[i]), 1e-30));
      t.equal(qDiff, 0, `${rows}x${cols} blockSize ${blockSize}: every q equal (${qDiff} of ${q.length} differ)`);
      t.ok(sErr <= 1e-6, `${rows}x${cols} blockSize ${blockSize}: scales within 1e-6 (max rel ${sErr.toExponential(2)})`);
      t.same([got.dtype, got.rows, got.cols, got.scales.length, got.data.length], ['i4', rows, cols, rows * i4Groups(cols), quantizeI4(w, rows, cols).data.length], 'the layout of quantizeI4');
    }
    for (const d of dead ?? []) {
      const q = unpackI4(gptqQuantizeI4(w, rows, cols, H).data as Uint8Array, rows, cols);
      t.ok(Array.from({ length: rows }, (_, r) => q[r * cols + d]).every((v) => v === 0), `${rows}x${cols}: dead column ${d} is zero`);
    }
  }
});

t.test('with a diagonal Hessian GPTQ is round-to-nearest', async (t) => {
  for (const [rows, cols] of [[4, 7], [9, 130], [6, 257]]) {
    const w = randomWeights(rows, cols, rows * 1000 + cols);
    const rtn = quantizeI4(w, rows, cols);
    const I = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) I[i * cols + i] = 1;
    const D = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) D[i * cols + i] = 0.1 + (i % 7);
    for (const [label, H] of [['identity', I], ['diagonal', D]] as const) {
      const g = gptqQuantizeI4(w, rows, cols, H);
      t.same(Array.from(g.data), Array.from(rtn.data), `${rows}x${cols} H ${label}: same packed values`);
      t.same(Array.from(g.scales), Array.from(rtn.scales), `${rows}x${cols} H ${label}: same scales`);
    }
  }
});

t.test('on correlated inputs GPTQ has a smaller layer-output error than round-to-nearest', async (t) => {
  for (const [rows, cols, seed] of [[32, 256, 7], [24, 130, 8]]) {
    const n = 1024;
    const X = correlatedInputs(n, cols, seed);
    const H = hessianOf(X, n, cols);
    const w = randomWeights(rows, cols, seed + 1);
    const err = (wq: Float64Array) => {
      let e = 0;
      for (let a = 0; a < n; a++)
        for (let r = 0; r < rows; r++) {
          let d = 0;
          for (let k = 0; k < cols; k++) d += X[a * cols + k] * (w[r * cols + k] - wq[r * cols + k]);
          e += d * d;
        }
      return e;
    };
    const eRtn = err(dequantize(quantizeI4(w, rows, cols))), eGptq = err(dequantize(gptqQuantizeI4(w, rows, cols, H)));
    t.ok(eGptq < 0.8 * eRtn, `${rows}x${cols}: ‖XWᵀ − XŴᵀ‖² GPTQ ${eGptq.toExponential(3)} vs RTN ${eRtn.toExponential(3)} (ratio ${(eGptq / eRtn).toFixed(3)})`);
  }
});

t.test('gptqQuantizeI4 checks its arguments', async (t) => {
  const w = randomWeights(2, 4, 1);
  t.throws(() => gptqQuantizeI4(w, 2, 4, new Float64Array(9)), RangeError, 'Hessian of the wrong size');
  t.throws(() => gptqQuantizeI4(w, 2, 5, new Float64Array(25)), RangeError, 'w of the wrong size');
  t.throws(() => gptqQuantizeI4(w, 2, 4, new Float64Array(16), { blockSize: 0 }), RangeError, 'blockSize 0');
  const bad = new Float64Array(16);
  for (let i = 0; i < 4; i++) bad[i * 4 + i] = 1;
  bad[1] = bad[4] = 5;  // indefinite
  t.throws(() => gptqQuantizeI4(w, 2, 4, bad, { percdamp: 0 }), /not positive definite/, 'an indefinite Hessian');
});

t.test('native calibration: Gram matrices equal float64 sums of the inputs', async (t) => {
  for (const arch of ['mamba', 'mamba2'] as const) {
    // d_model 102: neither the 4-row bands nor the 8-column tiles divide it
    const dir = path.join(root, `gram-${arch}`);
    const ck = writeRandomCheckpoint(dir, {
      arch, dModel: 102, nLayer: 2, vocabSize: 256, dtype: 'f32', tied: true, dialect: 'hf', seed: 31, dState: 16, headdim: 17,
    });
    const c = ck.config, d = c.dModel, V = c.vocabSize;
    const r = rng(5);
    const tokens = Int32Array.from({ length: 700 }, () => Math.floor(r() * V));  // two 512-token chunks
    const model = await loadModel(dir);
    const nm = model.nativeModel();
    const plain = await nm.calibrate(tokens, 0, true);
    t.equal(plain.grams, undefined, `${arch}: no grams unless asked`);
    const res = await nm.calibrate(tokens, 0, true, true);
    const logits = (await nm.prefill(await nm.allocSequence(), tokens, 'all'))!;
    model.dispose();
    t.ok(res.grams && res.grams.length === res.names.length, `${arch}: one Gram matrix per tap`);
    const gramOf = (name: string) => res.grams![res.names.indexOf(name)];
    const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let m = 0, s = 0;
      for (let i = 0; i < b.length; i++) { m = Math.max(m, Math.abs(a[i] - b[i])); s = Math.max(s, Math.abs(b[i])); }
      return m / s;
    };

    // layer 0's in_proj sees RMSNorm(embedding row) ⊙ γ: computed here in float64
    const E = ck.weights.get('backbone.embeddings.weight')!, gamma = ck.weights.get('backbone.layers.0.norm.weight')!;
    const want = new Float64Array(d * d), x = new Float64Array(d);
    for (const tok of tokens) {
      let ss = 0;
      for (let k = 0; k < d; k++) ss += E[tok * d + k] ** 2;
      const inv = 1 / Math.sqrt(ss / d + c.normEps);
      for (let k = 0; k < d; k++) x[k] = E[tok * d + k] * inv * gamma[k];
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) want[i * d + j] += x[i] * x[j];
    }
    const g0 = gramOf('backbone.layers.0.mixer.in_proj');
    t.equal(g0.length, d * d, `${arch}: in_proj Gram is [d_model, d_model]`);
    const e0 = maxRel(g0, want);
    t.ok(e0 < 1e-5, `${arch}: layer 0 in_proj Gram equals Σ xᵀx of the normed embeddings (max rel ${e0.toExponential(2)})`);

    // lm_head: Σ_t l_t l_tᵀ = W (Σ x_t x_tᵀ) Wᵀ with l = logits, W = the (tied) head [V, d] of full column rank
    const gh = gramOf('lm_head');
    const WG = new Float64Array(V * d);
    for (let v = 0; v < V; v++) for (let j = 0; j < d; j++) { let s = 0; for (let i = 0; i < d; i++) s += E[v * d + i] * gh[i * d + j]; WG[v * d + j] = s; }
    const lhs = new Float64Array(V * V), rhs = new Float64Array(V * V);
    for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) { let s = 0; for (let j = 0; j < d; j++) s += WG[a * d + j] * E[b * d + j]; lhs[a * V + b] = s; }
    for (let n = 0; n < tokens.length; n++) for (let a = 0; a < V; a++) { const la = logits[n * V + a]; for (let b = 0; b < V; b++) rhs[a * V + b] += la * logits[n * V + b]; }
    const eh = maxRel(lhs, rhs);
    t.ok(eh < 1e-4, `${arch}: W·G_lm_head·Wᵀ equals Σ logitsᵀ·logits (max rel ${eh.toExponential(2)})`);

    // every tap: [K, K], symmetric, diagonal at most N · absmax²
    const K = (name: string) => name === 'lm_head' || name.endsWith('in_proj') ? d : name.endsWith('dt_proj') ? c.dtRank : c.dInner;
    for (const [i, name] of res.names.entries()) {
      const g = res.grams![i], k = K(name);
      let sym = true, diagOk = true;
      for (let a = 0; a < k; a++) {
        if (!(g[a * k + a] >= 0 && g[a * k + a] <= tokens.length * res.absmax[i] ** 2 * (1 + 1e-6))) diagOk = false;
        for (let b = 0; b < a; b++) if (g[a * k + b] !== g[b * k + a]) sym = false;
      }
      t.ok(g.length === k * k && sym && diagOk, `${arch} ${name}: [${k}, ${k}], symmetric, diagonal within N·absmax²`);
    }
  }
});

t.test('quantize() with recipe.gptq', async (t) => {
  const dir = path.join(root, 'q-src');
  writeRandomCheckpoint(dir, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 128, dtype: 'f32', tied: true, dialect: 'hf', seed: 9, dState: 16 });
  const r = rng(3);
  const calibration = Array.from({ length: 3 }, () => Array.from({ length: 200 }, () => Math.floor(r() * 128)));
  const isQErr = (field: string) => (e: unknown) => e instanceof QuantizeError && e.field === field;
  await rejectsWith(t, quantize({ model: dir, output: path.join(root, 'q-bad'), scheme: 'w4a16', recipe: { gptq: true } }),
    isQErr('calibration'), 'gptq with w4a16 and no calibration: QuantizeError naming calibration');
  await rejectsWith(t, quantize({ model: dir, output: path.join(root, 'q-bad'), scheme: 'w8a8', recipe: { gptq: true }, calibration }),
    (e) => isQErr('recipe.gptq')(e) && /4-bit/.test((e as Error).message), 'gptq with w8a8: QuantizeError, GPTQ is for the 4-bit schemes');
  t.notOk(fs.existsSync(path.join(root, 'q-bad')), 'nothing written');

  const tokens = Int32Array.from({ length: 64 }, () => Math.floor(r() * 128));
  const float = await loadModel(dir);
  const ref = await float.forward(tokens);
  for (const scheme of ['w4a8', 'w4a16'] as const) {
    const out = path.join(root, `q-${scheme}`), rtnOut = path.join(root, `q-${scheme}-rtn`);
    const s = await quantize({ model: dir, output: out, scheme, recipe: { gptq: true, quantizeLmHead: true }, calibration });
    await quantize({ model: dir, output: rtnOut, scheme, recipe: { quantizeLmHead: true }, calibration });
    t.equal(s.recipe.gptq, true, `${scheme}: the summary's recipe says gptq`);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    t.equal(cfg.quantization_config.recipe.gptq, true, `${scheme}: quantization_config echoes recipe.gptq`);
    const m = await loadModel(out);
    const got = await m.forward(tokens);
    m.dispose();
    const rtn = await loadModel(rtnOut);
    const gotRtn = await rtn.forward(tokens);
    rtn.dispose();
    let diff = 0, err = 0, errRtn = 0;
    for (let i = 0; i < got.length; i++) {
      if (!Number.isFinite(got[i])) diff = NaN;
      diff = Math.max(diff, Math.abs(got[i] - gotRtn[i]));
      err += (got[i] - ref[i]) ** 2; errRtn += (gotRtn[i] - ref[i]) ** 2;
    }
    t.ok(diff > 0, `${scheme}: the GPTQ checkpoint loads, runs and differs from round-to-nearest (max logit diff ${diff.toExponential(2)})`);
    t.comment(`${scheme} random model: squared logit error vs float, GPTQ ${err.toExponential(3)}, RTN ${errRtn.toExponential(3)}`);
  }
  float.dispose();
});
