// Restores a snapshot in another Node process holding the same model (loaded
// from `modelPath` with inputRounding 'none') and steps one token there: the
// cross-process check of Sequence.snapshot / restore.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ChildResult {
  /** Exit status and stderr of the child. */
  status: number | null;
  stderr: string;
  /** The restored sequence's length and the logits of its step (absent when the child failed). */
  length?: number;
  logits?: number[];
}

export function restoreInAnotherProcess(modelPath: string, snapshot: Uint8Array, file: string, token: number): ChildResult {
  fs.writeFileSync(file, snapshot);
  const dist = path.resolve(__dirname, '..', '..', 'dist', 'index.js');
  const code = `(async () => {
    const { loadModel } = require(${JSON.stringify(dist)});
    const m = await loadModel(${JSON.stringify(modelPath)}, { inputRounding: 'none' });
    const s = await m.createSequence();
    await s.restore(new Uint8Array(require('fs').readFileSync(${JSON.stringify(file)})));
    const out = { length: s.length, logits: Array.from(await s.step(${token})) };
    process.stdout.write(JSON.stringify(out));
    await s.dispose(); m.dispose();
  })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = JSON.parse(r.stdout || '{}') as { length?: number; logits?: number[] };
  return { status: r.status, stderr: r.stderr, ...out };
}
