// Helpers shared by the kernel tests: a seeded RNG, float64 math, half-float
// conversions, tolerance checks and a loop over every instruction-set level.
import tap, { type Test } from 'tap';
import { kernels } from '../../lib';

/** mulberry32, seedable (one implementation: lib/testing/random_checkpoint.ts). */
export { rng } from '../../lib/testing/random_checkpoint';

/** Uniform floats in [lo, hi). */
export function uniform(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Standard normal floats (Box-Muller), times `scale`. */
export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export const silu = (x: number): number => x / (1 + Math.exp(-x));
/** softplus with the threshold of the reference kernels (x > 20 -> x). */
export const softplus = (x: number): number => (x <= 20 ? Math.log1p(Math.exp(x)) : x);

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float32 -> bfloat16 bits, round to nearest even. */
export function toBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32buf[0] = src[i];
    const x = u32buf[0];
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}
export function fromBf16(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    u32buf[0] = src[i] << 16;
    out[i] = f32buf[0];
  }
  return out;
}

/** float32 -> IEEE half bits, round to nearest even (normal range and subnormals). */
export function toF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
    const a = Math.abs(v);
    if (Number.isNaN(v)) { out[i] = 0x7e00; continue; }
    if (a >= 65520) { out[i] = sign | 0x7c00; continue; }
    if (a < 6.103515625e-5) {
      // subnormal: units of 2^-24
      out[i] = sign | roundHalfEven(a / 5.960464477539063e-8);
      continue;
    }
    let e = Math.floor(Math.log2(a));
    if (2 ** e > a) e--;
    if (2 ** (e + 1) <= a) e++;
    let m = roundHalfEven((a / 2 ** e - 1) * 1024);
    if (m === 1024) { m = 0; e++; }
    out[i] = e + 15 >= 31 ? sign | 0x7c00 : sign | ((e + 15) << 10) | m;
  }
  return out;
}
export function fromF16(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i], s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}
function roundHalfEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/**
 * Largest |actual - expected| / (atol + rtol * |expected|) over all elements:
 * <= 1 means within tolerance. Also returns where the worst element is.
 */
export function worstError(
  actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number,
): { ratio: number; index: number; actual: number; expected: number } {
  let worst = { ratio: 0, index: -1, actual: 0, expected: 0 };
  if (actual.length !== expected.length) return { ratio: Infinity, index: -1, actual: actual.length, expected: expected.length };
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
    if (!(err <= worst.ratio)) worst = { ratio: Number.isNaN(err) ? Infinity : err, index: i, actual: actual[i], expected: expected[i] };
  }
  return worst;
}

/** tap assertion: every element within atol + rtol*|expected|. */
export function assertClose(
  t: Test, actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, msg: string,
): void {
  const w = worstError(actual, expected, atol, rtol);
  t.ok(w.ratio <= 1, `${msg} (worst err/tol ${w.ratio.toPrecision(3)} at ${w.index}: ${w.actual} vs ${w.expected}; atol ${atol}, rtol ${rtol})`);
}

const ISA_ORDER: kernels.Isa[] = ['scalar', 'avx2', 'avx512', 'avx512vnni'];

/** Instruction-set levels this CPU can run, lowest first. */
export function availableIsas(): kernels.Isa[] {
  const top = ISA_ORDER.indexOf(kernels.runtimeInfo().detectedIsa);
  return ISA_ORDER.slice(0, top + 1);
}

/** The note forEachIsa prints when the CPU lacks levels (null when it has them all). */
export function isaSkipNote(detected: kernels.Isa = kernels.runtimeInfo().detectedIsa): string | null {
  const missing = ISA_ORDER.slice(ISA_ORDER.indexOf(detected) + 1);
  return missing.length === 0 ? null
    : `forEachIsa: skipping ${missing.join(', ')}: this CPU's best level is ${detected}, so those paths are not tested here`;
}

let skipNoted = false;

/** The levels to run, after the once-per-file TAP comment naming those the CPU lacks. */
function levelsToRun(): kernels.Isa[] {
  const note = skipNoted ? null : isaSkipNote();
  if (note) {
    tap.comment(note);
    skipNoted = true;
  }
  return availableIsas();
}

/** Forces `isa`, checking that the addon took it. */
function forceIsa(isa: kernels.Isa): void {
  const active = kernels.setIsa(isa);
  if (active !== isa) throw new Error(`setIsa(${isa}) gave ${active}`);
}

/**
 * Runs fn once per available level (forced with setIsa), then restores the
 * top level. Levels the CPU lacks are skipped, with a TAP comment (once per
 * test file) that names them.
 */
export function forEachIsa(fn: (isa: kernels.Isa) => void): void {
  const isas = levelsToRun();
  try {
    for (const isa of isas) {
      forceIsa(isa);
      fn(isa);
    }
  } finally {
    kernels.setIsa(isas[isas.length - 1]);
  }
}

/** forEachIsa for async bodies: one level at a time, then restores the top level. */
export async function forEachIsaAsync(fn: (isa: kernels.Isa) => Promise<void>): Promise<void> {
  const isas = levelsToRun();
  try {
    for (const isa of isas) {
      forceIsa(isa);
      await fn(isa);
    }
  } finally {
    kernels.setIsa(isas[isas.length - 1]);
  }
}

/**
 * Comparison for rounded inputs (inputRounding 'auto') against a reference
 * that rounds the same way (reference_model.ts roundRows). The reference
 * rounds its float64 activations, the engine its float32 ones (~1e-5 apart
 * after a few layers), so an input close to a rounding boundary can land one
 * step apart (a bf16 ulp, or one int8 step of its block of 32). Such a flip
 * moves the logits of its token (and, through the state, a few following
 * ones) by up to a step times a weight, and is rare. So: at most
 * `maxOffFraction` of the token rows may exceed the tight tolerance
 * (atol + rtol·|ref|), and every element must be within the loose one
 * (loose + loose·|ref|). Without rounding every row would exceed the tight
 * tolerance (the tests check that too).
 */
export function roundedRowsError(
  got: ArrayLike<number>, ref: ArrayLike<number>, rowLength: number, atol: number, rtol: number, loose: number,
): { rows: number; off: number; worstTight: number; worstLoose: number } {
  const rows = ref.length / rowLength;
  let off = 0, worstTight = 0, worstLoose = 0;
  for (let r = 0; r < rows; r++) {
    let tight = 0;
    for (let i = r * rowLength; i < (r + 1) * rowLength; i++) {
      const e = Math.abs(got[i] - ref[i]);
      tight = Math.max(tight, e / (atol + rtol * Math.abs(ref[i])));
      worstLoose = Math.max(worstLoose, e / (loose + loose * Math.abs(ref[i])));
    }
    if (!(tight <= 1)) off++;
    worstTight = Math.max(worstTight, tight);
  }
  return { rows, off, worstTight, worstLoose };
}

/** tap assertion over roundedRowsError: at most maxOffFraction rows past tight, all within loose. */
export function assertRoundedClose(
  t: Test, got: ArrayLike<number>, ref: ArrayLike<number>, rowLength: number,
  tol: { atol: number; rtol: number; loose: number; maxOffFraction: number }, msg: string,
): void {
  const w = roundedRowsError(got, ref, rowLength, tol.atol, tol.rtol, tol.loose);
  t.ok(w.off <= w.rows * tol.maxOffFraction && w.worstLoose <= 1,
    `${msg}: ${w.off} of ${w.rows} token rows past the tight tolerance (worst ${w.worstTight.toPrecision(3)}; at most ${tol.maxOffFraction} of rows), worst err/loose tol ${w.worstLoose.toPrecision(3)}`);
}

