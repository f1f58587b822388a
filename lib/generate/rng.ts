// A small seedable pseudo-random generator for sampling: xoshiro128** (Blackman
// and Vigna), its 128-bit state filled from the seed by splitmix32. The same
// seed gives the same sequence on every platform; state can be copied, so a
// sampler can be snapshotted with its sequence.

/** What the sampler needs: uniform numbers in [0, 1). */
export interface Rng {
  next(): number;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Xoshiro128 implements Rng {
  private readonly s = new Uint32Array(4);

  /** @param seed any safe integer (negative ones too); both 32-bit halves are used. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 4294967296) >>> 0;
    const sm = { s: lo ^ Math.imul(hi ^ 0x5bd1e995, 0x27d4eb2d) };
    for (let i = 0; i < 4; i++) this.s[i] = splitmix32(sm);
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1; // the one forbidden state
  }

  /** Next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const a = this.nextUint32() >>> 5, b = this.nextUint32() >>> 6; // 27 + 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** An independent copy that continues the same sequence. */
  clone(): Xoshiro128 {
    const c = Object.create(Xoshiro128.prototype) as Xoshiro128;
    (c as unknown as { s: Uint32Array }).s = Uint32Array.from(this.s);
    return c;
  }

  /** The state, for snapshots (4 uint32). */
  getState(): Uint32Array {
    return Uint32Array.from(this.s);
  }

  setState(state: ArrayLike<number>): void {
    if (state.length !== 4) throw new RangeError(`state must have 4 elements, got ${state.length}`);
    const next = Uint32Array.from(state);
    if ((next[0] | next[1] | next[2] | next[3]) === 0) throw new RangeError('state must not be all zero');
    this.s.set(next);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A generator from `seed`, or from a random seed when none is given. */
export function createRng(seed?: number): Xoshiro128 {
  if (seed === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { randomInt } = require('crypto') as typeof import('crypto');
    seed = randomInt(0, 2 ** 48 - 1);
  }
  return new Xoshiro128(seed);
}
