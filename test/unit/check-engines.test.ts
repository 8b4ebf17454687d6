/**
 * `npm test` begins with scripts/check-engines.mjs: it fails when an installed package does not support the running
 * Node.js (what `npm ci` only warns about, EBADENGINE). Here: the project's own lockfile passes, and lockfiles with an
 * incompatible package (as @google-cloud/functions 5.1 and its google-gax line were: Node ≥ 22) fail, naming it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = path.join(ROOT, 'scripts', 'check-engines.mjs');
const work = mkdtempSync(path.join(os.tmpdir(), 'fk-engines-'));
after(() => rmSync(work, { recursive: true, force: true }));

function check(args: string[]): { code: number; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, npm_config_user_agent: '' } });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

let n = 0;
function lockfile(packages: Record<string, unknown>): string {
  const file = path.join(work, `lock-${++n}.json`);
  writeFileSync(file, JSON.stringify({ name: 'fedkeeper', lockfileVersion: 3, requires: true, packages: { '': { name: 'fedkeeper', engines: { node: '>=20' } }, ...packages } }));
  return file;
}

test('npm test runs the check first', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.scripts.test, /^node scripts\/check-engines\.mjs && /);
});

test("the project's package-lock.json: every package supports this Node.js", () => {
  const r = check([]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`packages support node ${process.version.replace(/\./g, '\\.')}`));
});

test('a package that wants a newer Node.js fails the check, named with what it wants', () => {
  const file = lockfile({
    'node_modules/@google-cloud/functions': { version: '5.1.0', engines: { node: '>=22' } },
    'node_modules/google-gax': { version: '6.17.0', engines: { node: '>=22' } },
    'node_modules/fine': { version: '1.0.0', engines: { node: '>=18' } },
  });
  const r = check(['--lockfile', file, '--node', 'v20.20.2']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /2 installed packages do not support this engine \(npm warns EBADENGINE\)/);
  assert.match(r.out, /@google-cloud\/functions@5\.1\.0 \(node_modules\/@google-cloud\/functions\) wants node >=22, this is v20\.20\.2/);
  assert.match(r.out, /google-gax@6\.17\.0 .* wants node >=22/);
  assert.doesNotMatch(r.out, /fine@/);
  // The same lockfile on Node.js 22 passes.
  assert.equal(check(['--lockfile', file, '--node', 'v22.12.0']).code, 0);
});

test('ranges as npm reads them; optional packages skipped as npm skips them; npm ranges when npm is known', () => {
  const file = lockfile({
    'node_modules/better-sqlite3': { version: '12.11.1', engines: { node: '20.x || 22.x || 23.x || 24.x || 25.x || 26.x' } },
    'node_modules/cloudevents': { version: '10.0.0', engines: { node: '>=20 <=24' } },
    'node_modules/a/node_modules/old': { version: '1.0.0', engines: { node: '^12.20 || >= 14.13' } },
    'node_modules/fsevents': { version: '2.3.3', optional: true, engines: { node: '>=99' } },
    'node_modules/wants-npm': { version: '1.0.0', engines: { npm: '>=12' } },
  });
  assert.equal(check(['--lockfile', file, '--node', 'v20.20.2']).code, 0);
  assert.equal(check(['--lockfile', file, '--node', 'v20.20.2', '--npm', '11.19.1']).code, 1);
  assert.equal(check(['--lockfile', file, '--node', 'v20.20.2', '--npm', '12.0.0']).code, 0);
  const tooOld = check(['--lockfile', file, '--node', 'v18.20.0']);
  assert.equal(tooOld.code, 1);
  assert.match(tooOld.out, /better-sqlite3@12\.11\.1/);
  assert.match(tooOld.out, /cloudevents@10\.0\.0/);
  assert.match(tooOld.out, /fedkeeper@\? \(\.\) wants node >=20/, "the project itself");
});

test('an unreadable lockfile fails the check', () => {
  const r = check(['--lockfile', path.join(work, 'missing.json')]);
  assert.equal(r.code, 1);
  assert.match(r.out, /cannot read/);
});
