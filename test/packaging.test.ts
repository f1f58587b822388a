// The package as users get it: require() from CommonJS, import from ESM,
// shipped types, and the linux-x64 prebuild loaded when no local build exists.
import t, { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

// A scratch project whose node_modules/node-mamba points at this checkout.
function scratchProject(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-mamba-pkg-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'node-mamba'), 'dir');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function run(cwd: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
}

t.test('the compiled package exists (npm run build)', (t) => {
  t.ok(fs.existsSync(path.join(dist, 'index.js')), 'dist/index.js');
  t.ok(fs.existsSync(path.join(dist, 'index.mjs')), 'dist/index.mjs');
  t.ok(fs.existsSync(path.join(dist, 'index.d.ts')), 'dist/index.d.ts (types ship with the package)');
  t.end();
});

t.test("require('node-mamba') works from CommonJS", (t) => {
  const dir = scratchProject(t);
  const r = run(dir, ['-e', "const m = require('node-mamba'); console.log(typeof m.kernels.rmsNorm, m.kernels.runtimeInfo().isa)"]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^function (scalar|avx2|avx512)/);
  t.end();
});

t.test("import { kernels } from 'node-mamba' works from ESM", (t) => {
  const dir = scratchProject(t);
  const r = run(dir, ['--input-type=module', '-e', "import { kernels } from 'node-mamba'; console.log(typeof kernels.gatedRmsNorm)"]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^function/);
  t.end();
});

const prebuildFolder = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const noPrebuild = !fs.existsSync(prebuildFolder) && `no ${prebuildFolder}: run \`npm run prebuilds\` first (CI does)`;

t.test('the linux-x64 prebuild is what loads when no local build exists', { skip: noPrebuild }, (t) => {
  const dir = scratchProject(t);
  // PREBUILDS_ONLY makes node-gyp-build skip build/Release, as on a user's
  // machine where only the published prebuilds exist.
  const r = run(dir, ['-e', "const m = require('node-mamba'); const i = m.kernels.runtimeInfo(); console.log(i.addonPath); console.log(i.addonSource); m.kernels.rmsNorm({ x: new Float32Array(4), weight: new Float32Array(4), rows: 1, dim: 4 })"], { PREBUILDS_ONLY: '1', NODE_MAMBA_ADDON: '' });
  t.equal(r.status, 0, r.stderr);
  const [file, source] = r.stdout.trim().split('\n');
  t.match(file, new RegExp(`prebuilds/${process.platform}-${process.arch}/node-mamba[^/]*\\.node$`));
  t.equal(source, 'prebuild', 'runtimeInfo (and node-mamba doctor) says why');
  t.end();
});

t.test('the CUDA package loads when installed; skipped on request; a broken one falls back to the prebuild', { skip: noPrebuild }, (t) => {
  const dir = scratchProject(t);
  const name = `@node-mamba/${process.platform}-${process.arch}-cuda`;
  const pkg = path.join(dir, 'node_modules', ...name.split('/'));
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name, version: '0.0.0' }));
  // A stand-in for the CUDA build: the CPU prebuild's addon (the loader cannot
  // tell them apart; scripts/check-cuda-build.sh installs the real one).
  const prebuilt = fs.readdirSync(prebuildFolder).find((f) => f.endsWith('.node'));
  fs.copyFileSync(path.join(prebuildFolder, prebuilt!), path.join(pkg, 'node_mamba.node'));
  const env = { PREBUILDS_ONLY: '1', NODE_MAMBA_ADDON: '', NODE_MAMBA_CUDA_PACKAGE: '' };
  const probe = () => {
    const r = run(dir, ['-e', "const i = require('node-mamba').kernels.runtimeInfo(); console.log(JSON.stringify({ file: i.addonPath, source: i.addonSource, cuda: i.cudaPackage }))"], env);
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { file: string; source: string; cuda: { name: string; status: string; reason?: string } };
  };

  let got = probe();
  t.equal(got.source, 'cuda package', 'installed: the CUDA package is what loads');
  t.equal(fs.realpathSync(got.file), fs.realpathSync(path.join(pkg, 'node_mamba.node')));
  t.same(got.cuda, { name, status: 'loaded' });

  env.NODE_MAMBA_CUDA_PACKAGE = '0';
  got = probe();
  t.equal(got.source, 'prebuild', 'NODE_MAMBA_CUDA_PACKAGE=0: the CPU prebuild');
  t.same(got.cuda, { name, status: 'not tried', reason: 'NODE_MAMBA_CUDA_PACKAGE=0' });
  env.NODE_MAMBA_CUDA_PACKAGE = '';

  fs.writeFileSync(path.join(pkg, 'node_mamba.node'), 'not a shared object');
  got = probe();
  t.equal(got.source, 'prebuild', 'a package whose addon does not load: the CPU prebuild');
  t.equal(got.cuda.status, 'failed to load');
  t.match(got.cuda.reason, /node_mamba\.node/, 'the reason names the file');
  const doctor = run(dir, [path.join(dist, 'cli', 'main.js'), 'doctor'], env);
  t.equal(doctor.status, 0, doctor.stderr);
  t.match(doctor.stdout, new RegExp(`CUDA package ${name}: failed to load`), 'node-mamba doctor says so');

  fs.rmSync(path.join(dir, 'node_modules', '@node-mamba'), { recursive: true });
  got = probe();
  t.same(got.cuda, { name, status: 'not installed' });
  t.end();
});
