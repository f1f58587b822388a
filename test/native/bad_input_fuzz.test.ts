// No input from JavaScript can crash the process: every kernel is called with
// thousands of mutated argument objects (wrong types, lengths, dtypes, sizes,
// index arrays) and must either compute or throw a TypeError / RangeError
// that names a kernel argument. A crash, hang or any other error fails.
import t from 'tap';
import { kernels } from '../../lib';
import { rng } from '../helpers/reference';

type Args = Record<string, unknown>;
const f32 = (n: number) => new Float32Array(n).fill(0.25);

// One small valid call per kernel; the fuzzer mutates these.
const valid: Record<string, () => Args> = {
  rmsNorm: () => ({ x: f32(6), residual: f32(6), weight: f32(3), rows: 2, dim: 3 }),
  gatedRmsNorm: () => ({ y: f32(8), z: f32(8), weight: f32(4), rows: 2, dim: 4, groupSize: 2 }),
  linear: () => ({ x: f32(6), weight: f32(12), bias: f32(4), rows: 2, inFeatures: 3, outFeatures: 4 }),
  causalConv1d: () => ({ x: f32(10), weight: f32(8), bias: f32(2), tokens: 5, channels: 2, width: 4, cuSeqlens: Int32Array.from([0, 2, 5]), initialState: f32(12), activation: 'silu' }),
  causalConv1dUpdate: () => ({ x: f32(4), convState: f32(18), weight: f32(8), bias: f32(2), batch: 2, channels: 2, width: 4, stateIndices: Int32Array.from([2, 0]), stateSlots: 3 }),
  selectiveScan: () => ({ u: f32(12), delta: f32(12), A: f32(6), B: f32(18), C: f32(18), D: f32(2), z: f32(12), deltaBias: f32(2), initialState: f32(12), batch: 2, seqlen: 3, dim: 2, dstate: 3, ngroups: 1, deltaSoftplus: true }),
  selectiveStateUpdate: () => ({ state: f32(3 * 2 * 2 * 4), x: f32(8), dt: f32(4), A: f32(2), B: f32(8), C: f32(8), D: f32(2), z: f32(8), dtBias: f32(2), batch: 2, nheads: 2, headdim: 2, dstate: 4, ngroups: 1, stateIndices: Int32Array.from([1, 2]), stateSlots: 3, dtSoftplus: true }),
  ssdChunkScan: () => ({ x: f32(5 * 2 * 3), dt: f32(10), A: f32(2), B: f32(5 * 4), C: f32(5 * 4), D: f32(2), z: f32(30), dtBias: f32(2), cuSeqlens: Int32Array.from([0, 1, 5]), initialStates: f32(2 * 2 * 3 * 4), tokens: 5, nheads: 2, headdim: 3, ngroups: 1, dstate: 4, chunkSize: 2, dtSoftplus: true }),
  hadamard: () => ({ x: f32(2 * 14), rows: 2, n: 12, xStride: 14, transpose: true, inPlace: false }),
  qlinear: () => ({ x: f32(2 * 70), xScale: 0.1, weight: { dtype: 'i8', data: new Int8Array(4 * 70).fill(3), scales: f32(4) }, bias: f32(4), rows: 2, inFeatures: 70, outFeatures: 4 }),
  qlinearW4: () => ({ x: f32(2 * 130), weight: { dtype: 'i4', data: new Uint8Array(3 * 96).fill(0x88), scales: f32(3 * 2) }, rows: 2, inFeatures: 130, outFeatures: 3 }),
  quantizeInt8: () => ({ x: f32(6), rows: 2, cols: 3, scale: 0.5 }),
  hadamardQuantize: () => ({ x: f32(3 * 40), rows: 3, n: 40, scale: 0.5, xStride: 40 }),
};

function mutations(v: unknown, r: () => number): unknown[] {
  const out: unknown[] = [undefined, null, 'x', {}, [], true, NaN, -1, 0, 2 ** 31, 2 ** 53, -(2 ** 40), 1.5, Infinity];
  if (ArrayBuffer.isView(v)) {
    const n = (v as Float32Array).length;
    out.push(new Float32Array(Math.max(0, n - 1)), new Float32Array(n + 1), new Float32Array(0), new Float64Array(n),
      new Uint16Array(n), new Int32Array(n), new Uint8Array(n * 4), new Float32Array(new SharedArrayBuffer(n * 4)),
      Int32Array.from({ length: n }, () => Math.floor((r() - 0.5) * 2 ** 32)), Int32Array.from({ length: n }, (_, i) => n - i),
      { data: new Uint16Array(n), dtype: 'bf16' }, { data: new Uint16Array(n), dtype: 'f8' }, { data: new Float32Array(n) });
  } else if (typeof v === 'number') {
    out.push(v + 1, v - 1, v * 1000, -v, v * 2 ** 30);
  }
  return out;
}

const callable = { ...kernels, qlinearW4: kernels.qlinear } as unknown as Record<string, (a: Args) => unknown>;

for (const [name, make] of Object.entries(valid)) {
  t.test(`${name}: mutated arguments compute or throw a named TypeError/RangeError`, (t) => {
    t.doesNotThrow(() => callable[name](make()), 'the unmutated call is valid');
    const r = rng(name.length * 7919);
    let calls = 0, threw = 0, bad = 0;
    const check = (args: Args, what: string) => {
      calls++;
      try {
        callable[name](args);
      } catch (e) {
        threw++;
        const ok = (e instanceof TypeError || e instanceof RangeError) && /node-mamba: /.test((e as Error).message);
        if (!ok) { bad++; t.fail(`${what}: ${(e as Error).name}: ${(e as Error).message}`); }
      }
    };
    // Single mutations of every argument.
    for (const key of Object.keys(make())) {
      for (const m of mutations(make()[key], r)) check({ ...make(), [key]: m }, `${key} = ${String(m)?.slice(0, 40)}`);
      check({ ...make(), [key + 'Dtype']: 'bf16' }, `${key}Dtype = bf16`);
    }
    // Random double mutations.
    const keys = Object.keys(make());
    for (let i = 0; i < 400; i++) {
      const args = make();
      for (let j = 0; j < 2; j++) {
        const key = keys[Math.floor(r() * keys.length)];
        const ms = mutations(args[key], r);
        args[key] = ms[Math.floor(r() * ms.length)];
      }
      check(args, `random mutation ${i}`);
    }
    t.equal(bad, 0, `${calls} calls, ${threw} rejected, none with another error`);
    t.end();
  });
}

t.test('the sizes of the fuzzed calls never crossed into other memory (sanity)', (t) => {
  // If a mutated call had written out of bounds, this fresh computation would
  // very likely be wrong or crash.
  const x = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  const { out } = kernels.rmsNorm({ x, weight: new Float32Array(4).fill(1), rows: 3, dim: 4 });
  const rms = Math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-5);
  t.ok(Math.abs(out[0] - 1 / rms) < 1e-6);
  t.end();
});
