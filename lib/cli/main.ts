#!/usr/bin/env node
// node-mamba command line: generate, info, logits, eval, demo, quantize, doctor. Uses only the public API.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { evaluate, kernels, loadModel, quantize, type EvaluateResult, type GenerateOptions, type MambaModel, type QuantRecipe, type QuantScheme } from '../index';
import { progressReporter } from './progress';
import { booleanFlag, numberFlag, parseArgs, stringFlag, UsageError, type ParsedArgs } from './args';

const USAGE = `usage: node-mamba <command> [options]

commands:
  demo     [--model DIR] [--prompt TEXT] [--max-tokens N]
           with no --model: streams text from the small byte-level model the package ships
           (trained on Tiny Shakespeare); with --model: runs that checkpoint. Prints tokens/s.
  generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
           [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]
           streams the continuation to stdout; timing to stderr
  info     --model DIR                 prints the normalised config and memory use (JSON)
  logits   --model DIR --tokens 1,2,3 [--out FILE]
           logits of every position: JSON to stdout, or raw little-endian float32 to FILE
  eval     --model DIR --text FILE [--reference DIR] [--window N] [--stride N]
           [--max-tokens N] [--json]
           perplexity and bits per byte of the model over the UTF-8 text FILE, in windows of
           N tokens (default 1024; --stride < N: overlapping windows, only the last stride
           tokens of each later window scored); with --reference, the mean KL divergence
           KL(reference || model) and top-1 agreement per token, and the reference's perplexity.
           --json prints the result object
  quantize --model IN --out OUT --scheme w8a8|w4a8|w4a16 [--calib FILE] [--samples N]
           [--seq-len L] [--recipe naive] [--no-hadamard] [--percentile P|off] [--quantize-lm-head] [--quantize-embedding]
           [--gptq] [--float-ssm] [--no-sort-and-cluster] [--no-per-state-group]
           Quamba-style quantization of a float checkpoint (directory or GGUF) into OUT; the int8
           schemes (and --gptq) calibrate on the UTF-8 text FILE. Progress bar with ETA on a
           terminal. --float-ssm keeps the conv / scan activations float32 (int8 by default).
  doctor   [--json]  which native binary loaded and why, the CPU's instruction-set level and
           threads, and whether CUDA is compiled in and usable here (and why not)
  options for every command: --threads N, --input-rounding auto|none
           (none: exact float32 inputs for bf16 / q8_0 / q4_0 matrices; default auto);
           hybrid models (attention layers): --context-size N (tokens a sequence may hold),
           --kv-cache f16|f32`;

function generateOptions(p: ParsedArgs): GenerateOptions {
  const o: GenerateOptions = {};
  const maxTokens = numberFlag(p, 'max-tokens');
  if (maxTokens !== undefined) o.maxTokens = maxTokens;
  const map: Array<[string, keyof GenerateOptions]> = [
    ['temperature', 'temperature'], ['top-k', 'topK'], ['top-p', 'topP'], ['min-p', 'minP'],
    ['repetition-penalty', 'repetitionPenalty'], ['seed', 'seed'],
  ];
  for (const [flag, key] of map) {
    const v = numberFlag(p, flag);
    if (v !== undefined) (o as Record<string, unknown>)[key] = v;
  }
  const stop = stringFlag(p, 'stop');
  if (stop !== undefined) o.stop = [stop];
  return o;
}

async function open(p: ParsedArgs, dir: string): Promise<MambaModel> {
  const threads = numberFlag(p, 'threads');
  const rounding = stringFlag(p, 'input-rounding');
  if (rounding !== undefined && rounding !== 'auto' && rounding !== 'none') {
    throw new UsageError(`--input-rounding must be 'auto' or 'none', got '${rounding}'`);
  }
  const contextSize = numberFlag(p, 'context-size');
  const kv = stringFlag(p, 'kv-cache');
  if (kv !== undefined && kv !== 'f16' && kv !== 'f32') throw new UsageError(`--kv-cache must be 'f16' or 'f32', got '${kv}'`);
  return loadModel(dir, {
    ...(threads !== undefined ? { threads } : {}),
    ...(rounding !== undefined ? { inputRounding: rounding } : {}),
    ...(contextSize !== undefined ? { contextSize } : {}),
    ...(kv !== undefined ? { kvCacheType: kv } : {}),
  });
}

async function stream(model: MambaModel, prompt: string, opts: GenerateOptions, out: NodeJS.WritableStream): Promise<void> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const t0 = performance.now();
  let first = 0, n = 0;
  try {
    for await (const chunk of model.generate(prompt, { ...opts, signal: controller.signal })) {
      if (n === 0) first = performance.now();
      n++;
      out.write(chunk.text);
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  const t1 = performance.now();
  const decodeRate = n > 1 ? ((n - 1) / ((t1 - first) / 1000)).toFixed(1) : 'n/a';
  process.stderr.write(`\n[node-mamba] ${n} tokens; first token after ${(first - t0).toFixed(0)} ms; decode ${decodeRate} tokens/s\n`);
}

/** The small trained model the package ships for the demo (assets/models). */
const DEMO_MODEL = path.join(__dirname, '..', '..', 'assets', 'models', 'tiny-shakespeare-mamba');

async function demo(p: ParsedArgs): Promise<void> {
  let dir = stringFlag(p, 'model');
  const shipped = dir === undefined;
  if (dir === undefined) {
    dir = DEMO_MODEL;
    process.stderr.write(
      '[node-mamba] No --model given, and no weights can be downloaded here: running the small model the package ships\n' +
        `[node-mamba] (${dir}: a byte-level Mamba, 0.5M parameters, trained on Tiny Shakespeare by scripts/train_byte_mamba.py).\n` +
        '[node-mamba] Point --model at a real checkpoint (e.g. a local mamba-130m-hf) for more.\n',
    );
  }
  const t0 = performance.now();
  const model = await open(p, dir);
  const c = model.config;
  process.stderr.write(`[node-mamba] loaded ${c.arch} (d_model ${c.dModel}, ${c.nLayer} layers, vocab ${c.vocabSize}) in ${(performance.now() - t0).toFixed(0)} ms\n`);
  const prompt = stringFlag(p, 'prompt') ?? (shipped ? 'ROMEO:\n' : 'The state space model');
  process.stdout.write(prompt);
  await stream(model, prompt, { maxTokens: shipped ? 300 : 64, temperature: 0.8, seed: 1, ...generateOptions(p) }, process.stdout);
  model.dispose();
}

async function generateCmd(p: ParsedArgs): Promise<void> {
  const model = await open(p, stringFlag(p, 'model', true));
  await stream(model, stringFlag(p, 'prompt', true), generateOptions(p), process.stdout);
  model.dispose();
}

async function info(p: ParsedArgs): Promise<void> {
  const model = await open(p, stringFlag(p, 'model', true));
  process.stdout.write(JSON.stringify({ path: model.path, config: model.config, memory: model.memory }, null, 2) + '\n');
  model.dispose();
}

function doctor(p: ParsedArgs): void {
  const r = kernels.runtimeInfo();
  const report = {
    node: process.version, platform: `${process.platform}-${process.arch}`,
    addon: { path: r.addonPath, source: r.addonSource, cudaPackage: r.cudaPackage },
    cpu: { isa: r.isa, detectedIsa: r.detectedIsa, threads: r.threads, physicalCores: r.physicalCores },
    cuda: r.cuda,
  };
  if (booleanFlag(p, 'json')) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const why = {
    NODE_MAMBA_ADDON: 'named by NODE_MAMBA_ADDON', 'local build': 'a local build (build/Release) takes precedence over the prebuilds',
    'cuda package': `the CUDA build from ${r.cudaPackage.name}`, prebuild: `the prebuild for ${report.platform}`,
  }[r.addonSource];
  const cp = r.cudaPackage;
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const cv = (v: number) => (v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : 'none');
  const lines = [
    `node-mamba on Node.js ${report.node} (${report.platform})`,
    `addon:   ${r.addonPath}`,
    `         ${why}`,
    `         CUDA package ${cp.name}: ${cp.status}${cp.reason ? ` (${cp.reason})` : ''}`,
    `CPU:     ${r.isa} kernels (best this CPU has: ${r.detectedIsa}), ${r.threads} thread${r.threads === 1 ? '' : 's'}, ${r.physicalCores} physical core${r.physicalCores === 1 ? '' : 's'}`,
    `CUDA:    ${r.cuda.usable ? 'usable' : `not usable: ${r.cuda.reason}`}`,
    `         kernels compiled in: ${r.cuda.compiled ? 'yes' : 'no'}; runtime ${cv(r.cuda.runtimeVersion)}, driver ${cv(r.cuda.driverVersion)}`,
    ...r.cuda.devices.map((d) => `         device ${d.index}: ${d.name}, compute capability ${d.computeCapability}, ${gb(d.totalBytes)}, ` +
      `${d.multiprocessors} SMs${d.supported ? '' : ' (below 7.5: not supported)'}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

async function logits(p: ParsedArgs): Promise<void> {
  const model = await open(p, stringFlag(p, 'model', true));
  const text = stringFlag(p, 'tokens', true);
  const tokens = text.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new UsageError(`--tokens must be comma-separated integers, got '${s}'`);
    return n;
  });
  const out = stringFlag(p, 'out');
  const values = await model.forward(tokens);
  if (out !== undefined) {
    const tmp = `${out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    fs.renameSync(tmp, out);
    process.stdout.write(JSON.stringify({ shape: [tokens.length, model.vocabSize], dtype: 'float32', file: out }) + '\n');
  } else {
    process.stdout.write(JSON.stringify({ shape: [tokens.length, model.vocabSize], logits: Array.from(values) }) + '\n');
  }
  model.dispose();
}

/** 6 significant digits; exponent form for magnitudes below 1e-3 or from 1e6. */
function figure(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e6 ? x.toPrecision(6) : x.toExponential(5);
}

function evalReport(r: EvaluateResult): string {
  const lines: Array<[string, string]> = [
    ['perplexity', figure(r.perplexity)],
    ['bits per byte', figure(r.bitsPerByte)],
    ['nll', `${figure(r.nll)} nats/token`],
    ['tokens scored', `${r.tokens} of ${r.textTokens} (${r.windows} window${r.windows === 1 ? '' : 's'} of ${r.windowSize}, stride ${r.stride}; ${r.bytes} bytes)`],
    ['time', `${r.seconds.toFixed(2)} s`],
  ];
  if (r.reference) {
    lines.push(
      ['reference perplexity', figure(r.reference.referencePerplexity)],
      ['KL divergence', `${figure(r.reference.klDivergence)} nats/token, KL(reference || model)`],
      ['top-1 agreement', `${(100 * r.reference.top1Agreement).toFixed(2)}%`],
    );
  }
  return lines.map(([k, v]) => `${k.padEnd(21)} ${v}`).join('\n') + '\n';
}

async function evalCmd(p: ParsedArgs): Promise<void> {
  const modelDir = stringFlag(p, 'model', true);
  const textFile = stringFlag(p, 'text', true);
  const referenceDir = stringFlag(p, 'reference');
  const windowSize = numberFlag(p, 'window');
  const stride = numberFlag(p, 'stride');
  const maxTokens = numberFlag(p, 'max-tokens');
  const json = booleanFlag(p, 'json');
  const text = fs.readFileSync(textFile, 'utf8');
  const model = await open(p, modelDir);
  let reference: MambaModel | undefined;
  try {
    if (referenceDir !== undefined) reference = await open(p, referenceDir);
    const progress = process.stderr.isTTY
      ? ({ done, total }: { done: number; total: number }) => process.stderr.write(`\r[node-mamba] window ${done}/${total}${done === total ? '\n' : ''}`)
      : undefined;
    const r = await evaluate({
      model, text,
      ...(reference ? { reference } : {}),
      ...(windowSize !== undefined ? { windowSize } : {}),
      ...(stride !== undefined ? { stride } : {}),
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      ...(progress ? { onProgress: progress } : {}),
    });
    process.stdout.write(json ? JSON.stringify(r, null, 2) + '\n' : evalReport(r));
  } finally {
    reference?.dispose();
    model.dispose();
  }
}

async function quantizeCmd(p: ParsedArgs): Promise<void> {
  const model = stringFlag(p, 'model', true);
  const output = stringFlag(p, 'out', true);
  const scheme = stringFlag(p, 'scheme', true) as QuantScheme;
  const calibFile = stringFlag(p, 'calib');
  const samples = numberFlag(p, 'samples');
  const sequenceLength = numberFlag(p, 'seq-len');
  const threads = numberFlag(p, 'threads');
  let recipe: QuantRecipe | 'naive' = {};
  const named = stringFlag(p, 'recipe');
  if (named !== undefined) {
    if (named !== 'naive') throw new UsageError(`--recipe must be 'naive' (or absent for the full recipe), got '${named}'`);
    recipe = 'naive';
  } else {
    if (booleanFlag(p, 'no-hadamard')) recipe.hadamard = false;
    if (booleanFlag(p, 'quantize-lm-head')) recipe.quantizeLmHead = true;
    if (booleanFlag(p, 'quantize-embedding')) recipe.quantizeEmbedding = true;
    if (booleanFlag(p, 'gptq')) recipe.gptq = true;
    if (booleanFlag(p, 'float-ssm')) recipe.quantizeSsm = false;
    if (booleanFlag(p, 'no-sort-and-cluster')) recipe.sortAndCluster = false;
    if (booleanFlag(p, 'no-per-state-group')) recipe.perStateGroup = false;
    const pct = stringFlag(p, 'percentile');
    if (pct !== undefined) {
      const v = Number(pct);
      if (pct !== 'off' && !(v > 0 && v <= 1)) throw new UsageError(`--percentile must be a number in (0, 1] or 'off', got '${pct}'`);
      recipe.percentile = pct === 'off' ? false : v;
    }
  }
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const s = await quantize({
      model, output, scheme, recipe,
      ...(calibFile !== undefined ? { calibration: fs.readFileSync(calibFile, 'utf8') } : {}),
      ...(samples !== undefined ? { samples } : {}),
      ...(sequenceLength !== undefined ? { sequenceLength } : {}),
      ...(threads !== undefined ? { threads } : {}),
      onProgress: progressReporter(process.stderr),
      signal: controller.signal,
    });
    const mb = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
    process.stdout.write(`${s.output}: ${s.scheme}, ${mb(s.bytesBefore)} -> ${mb(s.bytesAfter)} (${(s.bytesAfter / s.bytesBefore).toFixed(3)}x), ` +
      `${s.samples} calibration sample${s.samples === 1 ? '' : 's'}; ` +
      Object.entries(s.seconds).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ') + '\n');
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

export async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  try {
    switch (p.command) {
      case 'demo': await demo(p); break;
      case 'generate': await generateCmd(p); break;
      case 'info': await info(p); break;
      case 'logits': await logits(p); break;
      case 'eval': await evalCmd(p); break;
      case 'quantize': await quantizeCmd(p); break;
      case 'doctor': doctor(p); break;
      case undefined: case 'help': case '--help': process.stdout.write(USAGE + '\n'); return p.command ? 0 : 2;
      default: throw new UsageError(`unknown command '${p.command}'`);
    }
    return 0;
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`node-mamba: ${e.name === 'UsageError' ? `${e.message}\n${USAGE}` : `${e.name}: ${e.message}`}\n`);
    return e.name === 'UsageError' ? 2 : 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
