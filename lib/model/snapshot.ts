// Self-describing sequence snapshots (Sequence.snapshot / restore): bytes a
// service can keep in its own store and restore on any process that holds
// the same model.
//
// Layout (little-endian):
//   [0, 8)    magic "NMSNAPSH"
//   [8, 12)   u32 format version (SNAPSHOT_VERSION)
//   [12, 16)  u32 header length h (UTF-8 JSON, padded with spaces to 4 bytes)
//   [16, 16 + h)        header: { fingerprint, position, layers, stateBytes, logits }
//   then                state [stateBytes] (engine/model.h Model::snapshot),
//                       float32 logits [logits]
//   last 4 bytes        u32 CRC-32 (IEEE) of everything before
// `layers` describes each layer's part of the state in layer order, e.g.
// { kind: 'mamba', conv: [channels, width - 1], ssm: [...] } or
// { kind: 'attention', tokens, kvHeads, headDim, dtype }, so that a reader
// can tell what the bytes are: first every Mamba layer's float32 conv then
// SSM state (layer order), then every attention layer's K then V rows
// [tokens, kvHeads, headDim] in `dtype` (layer order). `fingerprint`
// identifies the model (lib/model/fingerprint.ts). Restoring checks magic,
// version, checksum, fingerprint and layout before any state is touched.
import { SnapshotError } from '../errors';

export const SNAPSHOT_VERSION = 2;
const MAGIC = 'NMSNAPSH';

export interface MambaSnapshotLayer {
  kind: 'mamba';
  /** Conv state shape, [channels, width - 1]. */
  conv: number[];
  /** SSM state shape: Mamba-1 [d_inner, d_state], Mamba-2 [nheads, headdim, d_state]. */
  ssm: number[];
}

export interface AttentionSnapshotLayer {
  kind: 'attention';
  /** Cached positions (the sequence's position). */
  tokens: number;
  kvHeads: number;
  headDim: number;
  dtype: 'f16' | 'f32';
}

export type SnapshotLayer = MambaSnapshotLayer | AttentionSnapshotLayer;

export interface SnapshotHeader {
  fingerprint: string;
  /** Tokens the sequence had consumed. */
  position: number;
  layers: SnapshotLayer[];
  stateBytes: number;
  /** Floats of the last logits (0: none). */
  logits: number;
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  state: Uint8Array;
  lastLogits: Float32Array | undefined;
}

/** What decoding checks a snapshot against: the model's fingerprint and its layout at a position. */
export interface SnapshotExpectation {
  fingerprint: string;
  layers(position: number): SnapshotLayer[];
  stateBytes(position: number): number;
  vocabSize: number;
}

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodeSnapshot(header: SnapshotHeader, state: Uint8Array, lastLogits: Float32Array | undefined): Uint8Array {
  let json = JSON.stringify(header);
  while (Buffer.byteLength(json) % 4 !== 0) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const logits = lastLogits ?? new Float32Array(0);
  const total = 16 + hb.length + state.length + 4 * logits.length + 4;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(Buffer.from(MAGIC, 'latin1'), 0);
  dv.setUint32(8, SNAPSHOT_VERSION, true);
  dv.setUint32(12, hb.length, true);
  out.set(hb, 16);
  out.set(state, 16 + hb.length);
  let o = 16 + hb.length + state.length;
  for (let i = 0; i < logits.length; i++, o += 4) dv.setFloat32(o, logits[i], true);
  dv.setUint32(o, crc32(out.subarray(0, o)), true);
  return out;
}

/** Parses and checks a snapshot against the model's fingerprint and state layout. */
export function decodeSnapshot(bytes: unknown, expect: SnapshotExpectation): DecodedSnapshot {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("node-mamba: restore: 'snapshot' must be the Uint8Array from Sequence.snapshot()");
  if (bytes.length < 20 || Buffer.from(bytes.buffer, bytes.byteOffset, 8).toString('latin1') !== MAGIC) {
    throw new SnapshotError('not a node-mamba snapshot (no NMSNAPSH magic)', 'magic');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_VERSION) {
    throw new SnapshotError(`snapshot format version ${version}; this node-mamba reads version ${SNAPSHOT_VERSION}`, 'version');
  }
  const end = bytes.length - 4;
  if (crc32(bytes.subarray(0, end)) !== dv.getUint32(end, true)) throw new SnapshotError('the snapshot is corrupt (checksum mismatch)', 'checksum');
  const hl = dv.getUint32(12, true);
  let header: SnapshotHeader;
  try {
    if (16 + hl > end) throw new Error('header past the end');
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 16, hl).toString('utf8')) as SnapshotHeader;
  } catch (err) {
    throw new SnapshotError(`the snapshot header is unreadable (${(err as Error).message})`, 'header');
  }
  if (header.fingerprint !== expect.fingerprint) {
    throw new SnapshotError('the snapshot was made by another model (fingerprints differ)', 'fingerprint');
  }
  const position = header.position;
  if (!(Number.isSafeInteger(position) && position >= 0)) throw new SnapshotError("the snapshot's position is not a token count", 'layout');
  const sameLayers = JSON.stringify(header.layers) === JSON.stringify(expect.layers(position));
  const logits = header.logits;
  const stateBytes = expect.stateBytes(position);
  if (!sameLayers || header.stateBytes !== stateBytes || !(logits === 0 || logits === expect.vocabSize) ||
    16 + hl + stateBytes + 4 * logits !== end) {
    throw new SnapshotError("the snapshot's state layout does not match this model's", 'layout');
  }
  const state = bytes.slice(16 + hl, 16 + hl + stateBytes);
  let lastLogits: Float32Array | undefined;
  if (logits > 0) {
    lastLogits = new Float32Array(logits);
    for (let i = 0, o = 16 + hl + stateBytes; i < logits; i++, o += 4) lastLogits[i] = dv.getFloat32(o, true);
  }
  return { header, state, lastLogits };
}
