#!/usr/bin/env node
/**
 * Fails (exit 1) when an installed package does not support the running Node.js (or npm): the check behind npm's
 * `EBADENGINE` warning, made an error. `npm test` runs it first, so a dependency that wants a newer Node.js line than
 * the one the README names cannot land silently.
 *
 * It reads package-lock.json (no network): every entry of `packages` with `engines.node` (and `engines.npm`, when
 * the npm version is known) is checked with semver, as npm does (npm-install-checks: `semver.satisfies(version,
 * range, {includePrerelease: true})`; optional packages are skipped, as npm skips them).
 *
 *   node scripts/check-engines.mjs [--lockfile FILE] [--node VERSION] [--npm VERSION]
 *
 * Defaults: the package-lock.json next to this script's package, the running Node.js, and npm's version from
 * `npm_config_user_agent` (set when npm runs the script; otherwise npm ranges are not checked).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import semver from 'semver';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const lockfile = arg('--lockfile', path.join(root, 'package-lock.json'));
const nodeVersion = arg('--node', process.version);
const npmVersion = arg('--npm', /\bnpm\/(\S+)/.exec(process.env.npm_config_user_agent ?? '')?.[1]);

let lock;
try {
  lock = JSON.parse(readFileSync(lockfile, 'utf8'));
} catch (e) {
  console.error(`check-engines: cannot read ${lockfile}: ${e.message}`);
  process.exit(1);
}
if (!lock.packages || typeof lock.packages !== 'object') {
  console.error(`check-engines: ${lockfile} has no "packages" (lockfileVersion 2 or 3 expected)`);
  process.exit(1);
}

const bad = [];
const opt = { includePrerelease: true };
for (const [where, entry] of Object.entries(lock.packages)) {
  if (!entry || entry.optional || !entry.engines || typeof entry.engines !== 'object') continue;
  const name = where === '' ? (lock.name ?? 'the project') : where.replace(/^.*node_modules\//, '');
  const id = `${name}@${entry.version ?? '?'}`;
  for (const [engine, version] of [['node', nodeVersion], ['npm', npmVersion]]) {
    const range = entry.engines[engine];
    if (!version || typeof range !== 'string') continue;
    if (!semver.validRange(range, opt)) continue; // npm cannot check what it cannot parse either
    if (!semver.satisfies(version, range, opt)) bad.push(`${id} (${where || '.'}) wants ${engine} ${range}, this is ${version}`);
  }
}

if (bad.length > 0) {
  console.error(`check-engines: ${bad.length} installed package${bad.length === 1 ? '' : 's'} do not support this engine (npm warns EBADENGINE):`);
  for (const b of bad) console.error(`  ${b}`);
  console.error('check-engines: pick versions that support the Node.js line package.json and the README name.');
  process.exit(1);
}
console.log(`check-engines: ${Object.keys(lock.packages).length} packages support node ${nodeVersion}${npmVersion ? ` and npm ${npmVersion}` : ''}`);
