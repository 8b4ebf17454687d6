#!/usr/bin/env node
// Builds the optional native kernels (native/build/Release/fedkeeper_native.node) with node-gyp against Debian's
// OpenBLAS (apt-get install libopenblas-dev). Run by `npm ci` / `npm install` (the "install" script) and by
// `npm run build:native`. Never fails the install: without a compiler, node-gyp or libopenblas-dev it prints one line
// and exits 0, and training uses the pure-wasm kernels.
//
//   node native/build.mjs [--verbose]     (--verbose: show node-gyp's output)
//   FEDKEEPER_NATIVE=0                    skip the build
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const verbose = process.argv.includes('--verbose');
const FALLBACK = 'training uses the pure-wasm kernels';

function off(v) {
  return v !== undefined && ['0', 'false', 'off', 'no'].includes(v.trim().toLowerCase());
}

if (off(process.env.FEDKEEPER_NATIVE)) {
  if (verbose) console.error(`fedkeeper: native kernels not built (FEDKEEPER_NATIVE=0): ${FALLBACK}`);
  process.exit(0);
}

/** node-gyp as [command, ...args]: npm's own (npm sets npm_config_node_gyp for scripts), else npm's bundled copy. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return [process.execPath, c];
  return ['node-gyp'];
}

const [cmd, ...pre] = nodeGyp();
const r = spawnSync(cmd, [...pre, 'rebuild', '--release'], {
  cwd: here,
  stdio: verbose ? 'inherit' : 'pipe',
  encoding: 'utf8',
  timeout: 10 * 60 * 1000,
});
const built = r.status === 0 && existsSync(path.join(here, 'build', 'Release', 'fedkeeper_native.node'));
if (!built) {
  const why = r.error ? `node-gyp: ${r.error.message}` : 'libopenblas-dev missing?';
  console.error(`fedkeeper: native kernels not built (${why}): ${FALLBACK}`);
}
process.exit(0);
