// Typed reads of config.json keys for the config readers (config.ts and the
// per-family readers config_jamba.ts, config_granite.ts): every wrong type or
// impossible value is a ModelLoadError naming the file and the key (dotted for
// nested keys: ssm_cfg.d_state).
import { ModelLoadError } from '../errors';
import type { MambaConfig } from '../model/config';

export type Obj = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Typed reads of config keys; each failure names the key. */
export class Reader {
  constructor(readonly obj: Obj, readonly file: string, readonly prefix = '') {}

  key(k: string): string {
    return this.prefix + k;
  }

  fail(k: string, reason: string): never {
    throw new ModelLoadError(reason, { file: this.file, field: this.key(k) });
  }

  has(k: string): boolean {
    return this.obj[k] !== undefined && this.obj[k] !== null;
  }

  posInt(k: string, dflt?: number): number {
    const v = this.obj[k];
    if (v === undefined || v === null) {
      if (dflt === undefined) this.fail(k, 'required key is missing');
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(k, `must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  nonNegInt(k: string, dflt: number): number {
    const v = this.obj[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.fail(k, `must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  posNum(k: string, dflt: number): number {
    const v = this.obj[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(k, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(k: string, dflt: boolean): boolean {
    const v = this.obj[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') this.fail(k, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  optTokenId(k: string): number | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(k, `must be a token id, got ${JSON.stringify(v)}`);
    return v;
  }

  /** 'auto' (or absent) -> auto, else a positive integer. */
  autoInt(k: string, auto: number): number {
    const v = this.obj[k];
    if (v === undefined || v === null || v === 'auto') return auto;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(k, `must be "auto" or a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** [min, max] with 0 <= min < max; absent or null means no clamp. */
  limit(k: string): [number, number] {
    const v = this.obj[k];
    if (v === undefined || v === null) return [0, Infinity];
    if (
      !Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'number' || typeof v[1] !== 'number' ||
      Number.isNaN(v[0]) || Number.isNaN(v[1]) || v[0] < 0 || !(v[1] > v[0])
    ) {
      this.fail(k, `must be [min, max] with 0 <= min < max, got ${JSON.stringify(v)}`);
    }
    return [v[0], v[1]];
  }

  /** Fails when the key holds a value other than the one supported. */
  only(k: string, supported: unknown, what: string): void {
    const v = this.obj[k];
    if (v === undefined || v === null) return;
    if (v !== supported) this.fail(k, `${what} is not supported (got ${JSON.stringify(v)})`);
  }

  /** A string, or undefined when absent or null. */
  optString(k: string): string | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') this.fail(k, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
}

/** d_inner = int(expand * d_model), as the reference implementations compute it. */
export function innerSize(r: Reader, key: string, expand: number, dModel: number): number {
  const dInner = Math.trunc(expand * dModel);
  if (dInner <= 0) r.fail(key, `expand * d_model = ${expand * dModel} gives no inner channels`);
  return dInner;
}

/** Drops undefined token ids so that the result compares cleanly. */
export function finish(c: MambaConfig): MambaConfig {
  for (const k of ['bosTokenId', 'eosTokenId', 'padTokenId'] as const) if (c[k] === undefined) delete c[k];
  return c;
}
