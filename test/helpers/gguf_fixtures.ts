// Helpers for the GGUF tests: a tiny byte-level BPE tokenizer.json (so small
// random checkpoints can carry their own tokenizer; lib/testing/tiny_tokenizer.ts),
// and a raw GGUF builder for malformed-file tests (every field under the
// test's control).

export { byteLevelAlphabet, writeTinyTokenizer } from '../../lib/testing/tiny_tokenizer';

/** Raw GGUF bytes, little-endian, written exactly as told. */
export class RawGguf {
  private parts: Buffer[] = [];

  u8(v: number): this { const b = Buffer.alloc(1); b.writeUInt8(v); this.parts.push(b); return this; }
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  i32(v: number): this { const b = Buffer.alloc(4); b.writeInt32LE(v); this.parts.push(b); return this; }
  f32(v: number): this { const b = Buffer.alloc(4); b.writeFloatLE(v); this.parts.push(b); return this; }
  u64(v: number | bigint): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); return this; }
  str(s: string): this { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.parts.push(b); return this; }
  raw(b: Uint8Array): this { this.parts.push(Buffer.from(b)); return this; }
  pad(align: number): this {
    const n = this.length;
    this.parts.push(Buffer.alloc((align - (n % align)) % align));
    return this;
  }
  get length(): number { return this.parts.reduce((a, b) => a + b.length, 0); }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}
