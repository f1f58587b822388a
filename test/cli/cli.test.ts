// The node-mamba CLI (dist/cli/main.js, as installed): demo, info, logits,
// generate, and its errors.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeRandomCheckpoint } from '../helpers/checkpoint_writer';

const cli = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 * 1024 * 1024 });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const model = path.join(dir, 'model');
writeRandomCheckpoint(model, { arch: 'mamba2', dModel: 64, nLayer: 2, vocabSize: 50277, padVocabMultiple: 8, dtype: 'f16', tied: true, dialect: 'hf', seed: 4, headdim: 16, dState: 16 });

t.test('the CLI is built (npm run build)', (t) => {
  t.ok(fs.existsSync(cli), cli);
  t.end();
});

t.test('demo without a model says its weights are random and streams tokens', (t) => {
  const r = run('demo', '--max-tokens', '8');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /RANDOM WEIGHTS/);
  t.match(r.stderr, /8 tokens; first token after \d+ ms; decode [\d.]+ tokens\/s/);
  t.end();
});

t.test('info prints the normalised config', (t) => {
  const r = run('info', '--model', model);
  t.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  t.equal(o.config.arch, 'mamba2');
  t.equal(o.config.dModel, 64);
  t.ok(o.memory.weightBytes > 0);
  t.end();
});

t.test('logits to stdout and to a file agree', (t) => {
  const a = run('logits', '--model', model, '--tokens', '1,2,3');
  t.equal(a.status, 0, a.stderr);
  const o = JSON.parse(a.stdout);
  t.same(o.shape, [3, 50280]);
  const file = path.join(dir, 'logits.bin');
  const b = run('logits', '--model', model, '--tokens', '1,2,3', '--out', file);
  t.equal(b.status, 0, b.stderr);
  const buf = fs.readFileSync(file);
  const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  t.equal(f.length, 3 * 50280);
  t.same(Array.from(f.subarray(0, 5)), o.logits.slice(0, 5));
  t.end();
});

t.test('--input-rounding: auto (default) rounds the inputs of bf16 matrices, none keeps them exact', (t) => {
  const bf = path.join(dir, 'bf16');
  writeRandomCheckpoint(bf, { arch: 'mamba', dModel: 64, nLayer: 2, vocabSize: 300, dtype: 'bf16', tied: true, dialect: 'hf', seed: 5 });
  const logits = (...extra: string[]) => {
    const r = run('logits', '--model', bf, '--tokens', '1,2,3', ...extra);
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).logits as number[];
  };
  const auto = logits(), autoFlag = logits('--input-rounding', 'auto'), none = logits('--input-rounding', 'none');
  t.same(autoFlag, auto, 'auto is the default');
  t.ok(none.some((v, i) => v !== auto[i]), 'none gives other logits');
  const bad = run('logits', '--model', bf, '--tokens', '1', '--input-rounding', 'fast');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--input-rounding must be 'auto' or 'none'/);
  t.end();
});

t.test('generate streams to stdout', (t) => {
  const r = run('generate', '--model', model, '--prompt', 'abc', '--max-tokens', '5', '--seed', '1', '--temperature', '0');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /5 tokens/);
  t.end();
});

t.test('errors: missing flag, missing model directory, bad token id', (t) => {
  const a = run('generate', '--model', model);
  t.equal(a.status, 2);
  t.match(a.stderr, /missing --prompt/);
  const b = run('info', '--model', path.join(dir, 'nope'));
  t.equal(b.status, 1);
  t.match(b.stderr, /ModelLoadError: .*nope/);
  const c = run('logits', '--model', model, '--tokens', '1,60000');
  t.equal(c.status, 1);
  t.match(c.stderr, /RangeError: .*tokens\[1\]/);
  const d = run('frobnicate');
  t.equal(d.status, 2);
  t.end();
});
