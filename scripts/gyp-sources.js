#!/usr/bin/env node
// Lists csrc/**/*.cpp for binding.gyp, split the way CMakeLists.txt splits
// them: `base` (baseline flags), `avx2` (*_avx2.cpp), `avx512` (*_avx512.cpp),
// `avx512vnni` (*_avx512vnni.cpp). A second argument `qlinear` keeps only
// kernels/qlinear*.cpp, `rest` drops them: CMakeLists.txt builds those with
// -ffp-contract=off (qlinear_impl.h spells out its roundings), and node-gyp
// sets flags per target, not per file.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const kind = process.argv[2] || 'base';
const part = process.argv[3] || 'all';
const isQlinear = (f) => /^csrc\/kernels\/qlinear[^/]*\.cpp$/.test(f);
const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) walk(rel);
    else if (e.name.endsWith('.cpp')) files.push(rel);
  }
})('csrc');
const pick = files.filter((f) => {
  if (kind === 'avx2') return f.endsWith('_avx2.cpp');
  if (kind === 'avx512') return f.endsWith('_avx512.cpp');
  if (kind === 'avx512vnni') return f.endsWith('_avx512vnni.cpp');
  return !f.endsWith('_avx2.cpp') && !f.endsWith('_avx512.cpp') && !f.endsWith('_avx512vnni.cpp');
});
const chosen = pick.filter((f) => part === 'all' || (part === 'qlinear') === isQlinear(f));
process.stdout.write(chosen.sort().join(' '));
